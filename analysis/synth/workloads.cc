#include "synth/workloads.h"

#include "synth/gpt_training.h"

namespace hbmalloc::synth {
namespace {

trace::Trace gpt(const WorkloadOptions& o) {
  GptOptions g;
  g.seed = o.seed;
  if (o.steps > 0) g.steps = o.steps;
  return gpt_training(g);
}

}  // namespace

const std::vector<Workload>& workloads() {
  static const std::vector<Workload> all = {
      {"gpt", "GPT-2 medium-like training with Adam (hidden 1024, 12 layers, vocabulary 50304, batch 8), "
              "sequence length 128..1024 changing per step",
       6, gpt},
      {"checkpointing", "the same model with activation checkpointing at GPT-2 large size (hidden 1280, 36 layers, "
                        "batch 4): forward keeps layer inputs only, backward recomputes each layer",
       4, checkpointing},
      {"zero-offload", "ZeRO-3 style training of a Llama-7B-like model (hidden 4096, FFN 11008, 32 layers, bf16): "
                       "each layer's parameters gathered into a transient flat buffer, gradients reduced in 500 MB "
                       "buckets, optimizer offloaded",
       3, zero_offload},
      {"moe", "Mixtral-like mixture of experts (hidden 4096, FFN 14336, 8 experts, top-2, 16 layers shown, bf16): "
              "each expert's token count, so its buffers, changes per layer and step",
       4, mixture_of_experts},
      {"kv-serving", "LLM serving of a Llama-2-7B-like model (32 layers, 32 heads of 128, fp16): requests arrive "
                     "with prompts of 16..2048 tokens, their KV caches grow in 256-token chunks while decoding, "
                     "the batch changes as requests finish",
       40, kv_serving},
      {"cnn-resolution", "ResNet-50-like training at batch 64, fp16, the input resolution changing per step "
                         "(224..1024): a few multi-GB activations whose sizes change every step",
       8, cnn_resolution},
      {"pipeline", "pipeline-parallel 1F1B stage of a GPT-3 2.7B-like model (hidden 2560, 8 layers per stage) "
                   "over 8 streams: micro-batch activations and the buffers sent between stages are used by "
                   "other streams (record_stream) and return late",
       4, stream_pipeline},
      {"rl", "RL fine-tuning (PPO-like) of a GPT-2 large-like policy (hidden 1280, 36 layers): generation with "
             "growing KV caches alternates with training on the rollouts, batch and lengths varying",
       4, rl_alternating},
  };
  return all;
}

const Workload* find_workload(std::string_view name) {
  for (const Workload& w : workloads())
    if (w.name == name) return &w;
  return nullptr;
}

}  // namespace hbmalloc::synth
