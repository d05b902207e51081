// ZeRO-3 style training with the optimizer offloaded: each rank keeps 1/8 of
// the parameters; a layer's parameters are gathered into one flat transient
// buffer for its forward and again for its backward, and gradients go out in
// fixed-size buckets. Large transient buffers come and go around the
// activations, whose sizes follow the sequence length.
#include <random>

#include "synth/trace_builder.h"
#include "synth/transformer.h"
#include "synth/workloads.h"

namespace hbmalloc::synth {

trace::Trace zero_offload(const WorkloadOptions& o) {
  const int steps = o.steps > 0 ? o.steps : 3;
  TransformerDims m{4096, 11008, 32, 32, 32000, 2};
  constexpr uint64_t kRanks = 8, kBucket = 500ull << 20, kBatch = 4;
  trace::Trace t = new_trace("zero-offload", {{"model", "llama-7b-like hidden=4096 ffn=11008 layers=32 bf16"},
                                              {"ranks", "8"}, {"bucket", "500MB"},
                                              {"steps", std::to_string(steps)}, {"seed", std::to_string(o.seed)}});
  TraceBuilder b(t.devices.front());
  std::mt19937_64 rng(o.seed);
  uint64_t layer_bytes = 0;
  for (uint64_t w : m.layer_weights(true)) layer_bytes += w;
  for (uint64_t l = 0; l < m.layers; ++l) b.alloc(round_to(layer_bytes / kRanks, 512));  // this rank's shards
  b.alloc(m.vocab * m.hidden * m.bytes / kRanks);
  std::uniform_int_distribution<uint64_t> seq_dist(2, 16);  // x 256 tokens
  for (int step = 0; step < steps; ++step) {
    b.marker();
    const uint64_t seq = seq_dist(rng) * 256, tokens = kBatch * seq, h = m.hidden, e = m.bytes;
    std::vector<uint32_t> inputs{b.alloc(tokens * h * e)};  // checkpointed layer inputs
    for (uint64_t l = 0; l < m.layers; ++l) {
      const uint32_t gathered = b.alloc(layer_bytes);
      std::vector<uint32_t> act{b.alloc(tokens * 3 * h * e), b.alloc(tokens * h * e), b.alloc(tokens * m.ffn * e),
                                b.alloc(tokens * m.ffn * e)};
      inputs.push_back(b.alloc(tokens * h * e));
      b.free_all(act);
      b.free(gathered);
      b.compute(int64_t(tokens * h / 1024));
    }
    // Backward, last layer first: gather, recompute, gradients into buckets.
    uint64_t in_bucket = 0;
    uint32_t bucket = b.alloc(kBucket);
    while (inputs.size() > 1) {
      const uint32_t gathered = b.alloc(layer_bytes);
      std::vector<uint32_t> act{b.alloc(tokens * 3 * h * e), b.alloc(tokens * h * e), b.alloc(tokens * m.ffn * e),
                                b.alloc(tokens * m.ffn * e)};
      const uint32_t grads = b.alloc(layer_bytes);
      const uint32_t grad_in = b.alloc(tokens * h * e);
      b.free_all(act);
      b.free(gathered);
      in_bucket += layer_bytes;
      b.free(grads);
      if (in_bucket >= kBucket) {  // reduce-scattered and copied to the host
        b.free(bucket);
        bucket = b.alloc(kBucket);
        in_bucket = 0;
      }
      b.free(inputs.back());
      inputs.pop_back();
      b.free(grad_in);
      b.compute(int64_t(tokens * h / 512));
    }
    b.free(bucket);
    b.free_all(inputs);
  }
  return t;
}

}  // namespace hbmalloc::synth
