#include "synth/gpt_training.h"

#include <random>
#include <string>
#include <vector>

#include "synth/trace_builder.h"

namespace hbmalloc::synth {
namespace {

constexpr uint64_t kFloat = 4;
constexpr uint64_t kTempStream = 1;  // side stream for small temporaries

}  // namespace

trace::Trace gpt_training(const GptOptions& o) {
  trace::Trace t = new_trace(o.checkpointing ? "checkpointing" : "gpt",
                             {{"model", "gpt layers=" + std::to_string(o.layers) + " hidden=" + std::to_string(o.hidden) +
                                            " vocab=" + std::to_string(o.vocab)},
                              {"batch", std::to_string(o.batch)},
                              {"seq", std::to_string(o.min_seq) + ".." + std::to_string(o.max_seq)},
                              {"steps", std::to_string(o.steps)},
                              {"seed", std::to_string(o.seed)}});
  TraceBuilder b(t.devices.front());
  std::mt19937_64 rng(o.seed);
  const uint64_t h = o.hidden, heads = std::max<uint64_t>(1, h / 64);

  // Parameters: embedding, then per layer qkv, projection, two MLP matrices,
  // their biases and two layer norms.
  std::vector<uint64_t> params{o.vocab * h * kFloat};  // bytes of each
  for (int l = 0; l < o.layers; ++l) {
    for (uint64_t bytes : {3 * h * h, 3 * h, h * h, h, 4 * h * h, 4 * h, 4 * h * h, h, h, h, h, h})
      params.push_back(bytes * kFloat);
  }
  params.push_back(h * kFloat);
  params.push_back(h * kFloat);
  for (uint64_t bytes : params) b.alloc(bytes);  // the weights live to the end

  std::uniform_int_distribution<uint64_t> seq_dist(o.min_seq / 64, o.max_seq / 64);
  std::uniform_int_distribution<uint64_t> small_dist(512, 256 << 10);
  for (int step = 0; step < o.steps; ++step) {
    b.marker();
    const uint64_t seq = seq_dist(rng) * 64, tokens = o.batch * seq;
    std::vector<uint32_t> saved;  // activations kept for backward
    std::vector<uint32_t> temps;
    uint32_t input = b.alloc(tokens * 8);  // int64 token ids
    saved.push_back(b.alloc(tokens * h * kFloat));  // embedding output
    // One layer's forward: the activations backward needs, in `into`.
    auto layer_forward = [&](std::vector<uint32_t>& into) {
      into.push_back(b.alloc(tokens * h * kFloat));      // layer norm 1 out
      into.push_back(b.alloc(tokens * 3 * h * kFloat));  // qkv
      uint32_t scores = b.alloc(o.batch * heads * seq * seq * kFloat);
      into.push_back(b.alloc(o.batch * heads * seq * seq * kFloat));  // softmax out
      b.free(scores);
      into.push_back(b.alloc(tokens * h * kFloat));      // attention out
      into.push_back(b.alloc(tokens * h * kFloat));      // layer norm 2 out
      into.push_back(b.alloc(tokens * 4 * h * kFloat));  // mlp up
      into.push_back(b.alloc(tokens * 4 * h * kFloat));  // gelu out
      for (int k = 0; k < 6; ++k) temps.push_back(b.alloc(small_dist(rng), kTempStream));
      b.free_all(temps);
      b.compute(int64_t(tokens * h / 4096));  // the layer's matmuls
    };
    std::vector<uint32_t> layer_inputs;  // checkpointing: what forward keeps
    for (int l = 0; l < o.layers; ++l) {
      if (!o.checkpointing) {
        layer_forward(saved);
        continue;
      }
      std::vector<uint32_t> dropped;
      layer_forward(dropped);
      layer_inputs.push_back(dropped.back());  // the layer's output, the next layer's input
      dropped.pop_back();
      b.free_all(dropped);
    }
    uint32_t logits = b.alloc(tokens * o.vocab * kFloat);
    uint32_t probs = b.alloc(tokens * o.vocab * kFloat);
    uint32_t loss = b.alloc(kFloat);
    b.free(probs);

    // Backward: gradients appear as activations go, in reverse layer order.
    std::vector<uint32_t> grads(params.size(), trace::kNoBlock);
    uint32_t dlogits = b.alloc(tokens * o.vocab * kFloat);
    b.free(logits);
    size_t next_param = params.size();
    // Backward through `acts`, last first: each one's gradient, two weights' gradients, then it goes.
    auto backward_through = [&](std::vector<uint32_t>& acts, bool with_temps) {
      while (!acts.empty()) {
        uint32_t grad_in = b.alloc(tokens * h * kFloat);
        for (int k = 0; k < 2 && next_param > 0; ++k) {
          --next_param;
          grads[next_param] = b.alloc(params[next_param]);
        }
        b.free(acts.back());
        acts.pop_back();
        if (with_temps && rng() % 3 == 0) temps.push_back(b.alloc(small_dist(rng), kTempStream));
        b.free(grad_in);
        b.compute(int64_t(tokens * h / 16384));  // backward costs twice the forward
      }
    };
    // Checkpointing: each layer, last first, computes its activations again first.
    while (!layer_inputs.empty()) {
      std::vector<uint32_t> again;
      layer_forward(again);
      backward_through(again, false);
      b.free(layer_inputs.back());
      layer_inputs.pop_back();
    }
    backward_through(saved, true);
    while (next_param > 0) {
      --next_param;
      grads[next_param] = b.alloc(params[next_param]);
    }
    b.free_all(temps);
    b.free(dlogits);
    b.free(loss);
    b.free(input);

    // Adam's two moments appear at the first step and stay.
    if (step == 0)
      for (uint64_t bytes : params) {
        b.alloc(bytes);
        b.alloc(bytes);
      }
    // zero_grad(set_to_none=True)
    for (uint32_t g : grads) b.free(g);
  }
  return t;
}

}  // namespace hbmalloc::synth
