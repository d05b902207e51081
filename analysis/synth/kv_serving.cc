// LLM serving with a cache per request and layer that grows as it decodes
// (the Hugging Face style, no paged cache): requests arrive with prompts of
// any length, their caches are reallocated 256 tokens larger when full, and
// they finish at any length, so the batch and every size keep changing.
#include <random>

#include "synth/trace_builder.h"
#include "synth/transformer.h"
#include "synth/workloads.h"

namespace hbmalloc::synth {

trace::Trace kv_serving(const WorkloadOptions& o) {
  const int iterations = o.steps > 0 ? o.steps : 40;
  TransformerDims m{4096, 11008, 32, 32, 32000, 2};
  constexpr uint64_t kChunk = 256, kTokensPerIteration = 32;
  trace::Trace t = new_trace("kv-serving", {{"model", "llama-2-7b-like layers=32 heads=32x128 fp16"},
                                            {"iterations", std::to_string(iterations)},
                                            {"seed", std::to_string(o.seed)}});
  TraceBuilder b(t.devices.front());
  std::mt19937_64 rng(o.seed);
  allocate_weights(b, m);
  const uint64_t per_token = m.hidden * m.bytes;  // K or V of one layer
  struct Request {
    uint64_t length = 0, capacity = 0, target = 0;
    std::vector<uint32_t> caches;  // K and V per layer
  };
  std::vector<Request> active;
  std::uniform_int_distribution<uint64_t> prompt(16, 2048), output(64, 1024);
  for (int it = 0; it < iterations; ++it) {
    b.marker();
    // Arrivals, prefilled at once.
    const int arrivals = int(rng() % 4);
    for (int a = 0; a < arrivals && active.size() < 24; ++a) {
      Request r;
      r.length = prompt(rng);
      r.target = r.length + output(rng);
      r.capacity = round_to(r.length, kChunk);
      for (uint64_t l = 0; l < 2 * m.layers; ++l) r.caches.push_back(b.alloc(r.capacity * per_token));
      const uint32_t act = b.alloc(r.length * m.ffn * m.bytes);
      const uint32_t logits = b.alloc(r.length * m.vocab * 2);
      b.free(act);
      b.free(logits);
      active.push_back(std::move(r));
    }
    // Decode: the batch's activations, then each cache that filled grows.
    if (!active.empty()) {
      const uint32_t act = b.alloc(active.size() * m.ffn * m.bytes);
      const uint32_t logits = b.alloc(active.size() * m.vocab * 4);
      b.free(act);
      b.free(logits);
    }
    for (Request& r : active) {
      r.length += kTokensPerIteration;
      if (r.length <= r.capacity) continue;
      r.capacity += kChunk;
      for (uint32_t& c : r.caches) {  // torch.cat: the larger copy, then the old one goes
        const uint32_t grown = b.alloc(r.capacity * per_token);
        b.free(c);
        c = grown;
      }
    }
    b.compute(int64_t(20000 + 500 * active.size()));
    for (size_t i = 0; i < active.size();) {
      if (active[i].length >= active[i].target) {
        b.free_all(active[i].caches);
        active[i] = std::move(active.back());
        active.pop_back();
      } else {
        ++i;
      }
    }
  }
  return t;
}

}  // namespace hbmalloc::synth
