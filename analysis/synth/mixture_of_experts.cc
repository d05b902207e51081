// Mixture of experts: each layer routes every token to 2 of 8 experts, and
// how many tokens each expert gets changes per layer and per step (routing
// is skewed and drifts), so the experts' buffers never have the same sizes
// twice.
#include <algorithm>
#include <random>

#include "synth/trace_builder.h"
#include "synth/workloads.h"

namespace hbmalloc::synth {

trace::Trace mixture_of_experts(const WorkloadOptions& o) {
  const int steps = o.steps > 0 ? o.steps : 4;
  constexpr uint64_t h = 4096, ffn = 14336, kExperts = 8, kTopK = 2, kLayers = 16, e = 2, kBatch = 4;
  constexpr uint64_t kLocalExperts = 2;  // expert parallel over 4 ranks
  trace::Trace t = new_trace("moe", {{"model", "mixtral-like hidden=4096 ffn=14336 experts=8 top2 layers=16 bf16"},
                                     {"steps", std::to_string(steps)}, {"seed", std::to_string(o.seed)}});
  TraceBuilder b(t.devices.front());
  std::mt19937_64 rng(o.seed);
  for (uint64_t l = 0; l < kLayers; ++l) {
    for (int k = 0; k < 4; ++k) b.alloc(h * h * e);  // attention
    for (uint64_t x = 0; x < kLocalExperts; ++x)
      for (int k = 0; k < 3; ++k) b.alloc(h * ffn * e);  // gate, up, down
  }
  std::uniform_int_distribution<uint64_t> seq_dist(4, 16);  // x 256 tokens
  std::gamma_distribution<double> skew(0.7, 1.0);
  for (int step = 0; step < steps; ++step) {
    b.marker();
    const uint64_t tokens = kBatch * seq_dist(rng) * 256;
    struct Saved {
      std::vector<uint32_t> blocks;
    };
    std::vector<Saved> layers;
    for (uint64_t l = 0; l < kLayers; ++l) {
      Saved s;
      s.blocks.push_back(b.alloc(tokens * h * e));      // attention out
      s.blocks.push_back(b.alloc(tokens * 3 * h * e));  // qkv
      s.blocks.push_back(b.alloc(tokens * kExperts * 4));  // router logits (fp32)
      // Tokens per local expert: a skewed share of tokens x top-k.
      double weights[kExperts], sum = 0;
      for (double& w : weights) sum += (w = skew(rng) + 0.05);
      for (uint64_t x = 0; x < kLocalExperts; ++x) {
        const uint64_t n = std::max<uint64_t>(1, uint64_t(double(tokens * kTopK) * weights[x] / sum));
        const uint32_t in = b.alloc(n * h * e);
        s.blocks.push_back(b.alloc(n * ffn * e));  // gate
        s.blocks.push_back(b.alloc(n * ffn * e));  // up
        const uint32_t act = b.alloc(n * ffn * e);
        s.blocks.push_back(b.alloc(n * h * e));  // down
        b.free(act);
        b.free(in);
      }
      s.blocks.push_back(b.alloc(tokens * h * e));  // combined
      layers.push_back(std::move(s));
      b.compute(int64_t(tokens * 4));
    }
    // Backward: each layer's saved blocks go, expert weight gradients come
    // and are reduced at once.
    while (!layers.empty()) {
      const uint32_t grad_in = b.alloc(tokens * h * e);
      std::vector<uint32_t> grads;
      for (uint64_t x = 0; x < kLocalExperts; ++x)
        for (int k = 0; k < 3; ++k) grads.push_back(b.alloc(h * ffn * e));
      b.free_all(layers.back().blocks);
      layers.pop_back();
      b.free_all(grads);
      b.free(grad_in);
      b.compute(int64_t(tokens * 8));
    }
  }
  return t;
}

}  // namespace hbmalloc::synth
