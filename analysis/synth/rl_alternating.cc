// RL fine-tuning (PPO-like): each step generates rollouts with growing KV
// caches, then trains on them; batch and lengths vary, and the two phases'
// block sizes have nothing in common.
#include <random>

#include "synth/trace_builder.h"
#include "synth/transformer.h"
#include "synth/workloads.h"

namespace hbmalloc::synth {

trace::Trace rl_alternating(const WorkloadOptions& o) {
  const int steps = o.steps > 0 ? o.steps : 4;
  TransformerDims m{1280, 5120, 20, 36, 50304, 2};
  constexpr uint64_t kChunk = 64;
  trace::Trace t = new_trace("rl", {{"model", "gpt2-large-like hidden=1280 layers=36 fp16"},
                                    {"steps", std::to_string(steps)}, {"seed", std::to_string(o.seed)}});
  TraceBuilder b(t.devices.front());
  std::mt19937_64 rng(o.seed);
  const std::vector<uint64_t> weights = allocate_weights(b, m);
  std::uniform_int_distribution<uint64_t> batch_dist(8, 32), prompt_dist(64, 512), gen_dist(128, 512);
  for (int step = 0; step < steps; ++step) {
    b.marker();
    // Generation: caches per layer grow by kChunk tokens as they fill.
    const uint64_t batch = batch_dist(rng), prompt = prompt_dist(rng), gen = gen_dist(rng);
    uint64_t capacity = round_to(prompt, kChunk);
    std::vector<uint32_t> caches;
    for (uint64_t l = 0; l < 2 * m.layers; ++l) caches.push_back(b.alloc(batch * capacity * m.hidden * m.bytes));
    for (uint64_t len = prompt; len < prompt + gen; len += 16) {
      const uint32_t act = b.alloc(batch * m.ffn * m.bytes);
      b.free(act);
      if (len + 16 > capacity) {
        capacity += kChunk;
        for (uint32_t& c : caches) {
          const uint32_t grown = b.alloc(batch * capacity * m.hidden * m.bytes);
          b.free(c);
          c = grown;
        }
      }
      b.compute(3000);
    }
    b.free_all(caches);
    // Training on the rollouts, in two minibatches.
    for (int mb = 0; mb < 2; ++mb) transformer_train_step(b, rng, m, weights, batch / 2, prompt + gen);
  }
  return t;
}

}  // namespace hbmalloc::synth
