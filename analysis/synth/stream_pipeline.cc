// One stage of a pipeline-parallel (1F1B) GPT: eight micro-batches per step,
// each on its own stream, the activations received from the previous stage
// on communication streams and the ones sent on used by them (record_stream),
// so blocks come back to the allocator well after the caller let go.
#include <random>

#include "synth/trace_builder.h"
#include "synth/transformer.h"
#include "synth/workloads.h"

namespace hbmalloc::synth {

trace::Trace stream_pipeline(const WorkloadOptions& o) {
  const int steps = o.steps > 0 ? o.steps : 4;
  TransformerDims m{2560, 10240, 32, 8, 50304, 2};
  constexpr int kMicro = 8, kWarmup = 4;
  constexpr uint64_t kMicroBatch = 2;
  trace::Trace t = new_trace("pipeline", {{"model", "gpt3-2.7b-like hidden=2560 layers=8 per stage fp16"},
                                          {"micro_batches", "8"}, {"streams", "8 compute + 2 communication"},
                                          {"steps", std::to_string(steps)}, {"seed", std::to_string(o.seed)}});
  TraceBuilder b(t.devices.front());
  std::mt19937_64 rng(o.seed);
  for (uint64_t l = 0; l < m.layers; ++l)
    for (uint64_t w : m.layer_weights()) b.alloc(w);
  std::uniform_int_distribution<uint64_t> seq_dist(4, 8);  // x 256 tokens
  const uint64_t h = m.hidden, e = m.bytes;
  for (int step = 0; step < steps; ++step) {
    b.marker();
    const uint64_t tokens = kMicroBatch * seq_dist(rng) * 256;
    std::vector<std::vector<uint32_t>> saved(kMicro);
    auto forward = [&](int mb) {
      const uint64_t stream = 2 + uint64_t(mb);
      const uint32_t received = b.alloc(tokens * h * e, 0);  // recv on the communication stream
      b.free_used_elsewhere(received, 40);
      for (uint64_t l = 0; l < m.layers; ++l) {
        saved[mb].push_back(b.alloc(tokens * 3 * h * e, stream));
        saved[mb].push_back(b.alloc(tokens * h * e, stream));
        saved[mb].push_back(b.alloc(tokens * m.ffn * e, stream));
      }
      const uint32_t sent = b.alloc(tokens * h * e, stream);
      b.free_used_elsewhere(sent, 60);  // the send stream still reads it
      b.settle();
      b.compute(int64_t(tokens * 2));
    };
    auto backward = [&](int mb) {
      const uint64_t stream = 2 + uint64_t(mb);
      const uint32_t grad_recv = b.alloc(tokens * h * e, 1);
      std::vector<uint32_t> grads;
      for (uint64_t l = 0; l < m.layers; ++l) grads.push_back(b.alloc(m.layer_weights()[2], stream));
      b.free_all(saved[mb]);
      const uint32_t grad_sent = b.alloc(tokens * h * e, stream);
      b.free_used_elsewhere(grad_sent, 60);
      b.free_used_elsewhere(grad_recv, 20);
      b.free_all(grads);
      b.settle();
      b.compute(int64_t(tokens * 4));
    };
    int next_forward = 0, next_backward = 0;
    for (; next_forward < kWarmup; ++next_forward) forward(next_forward);
    while (next_backward < kMicro) {
      if (next_forward < kMicro) forward(next_forward++);
      backward(next_backward++);
    }
    b.settle_all();
  }
  return t;
}

}  // namespace hbmalloc::synth
