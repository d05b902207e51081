// A ResNet-50-like CNN trained at batch 64 in fp16 whose input resolution
// changes per step (multi-scale training, detection, 224..1024): the stem's and first
// stage's activations are multi-GB at large resolutions and change size
// every step, so a cached block rarely fits the next request.
#include <algorithm>
#include <iterator>
#include <random>
#include <vector>

#include "synth/trace_builder.h"
#include "synth/workloads.h"

namespace hbmalloc::synth {

trace::Trace cnn_resolution(const WorkloadOptions& o) {
  const int steps = o.steps > 0 ? o.steps : 8;
  constexpr uint64_t kBatch = 64, e = 2;
  trace::Trace t = new_trace("cnn-resolution", {{"model", "resnet-50-like batch=64 fp16"},
                                                {"resolution", "224..1024"},
                                                {"steps", std::to_string(steps)},
                                                {"seed", std::to_string(o.seed)}});
  TraceBuilder b(t.devices.front());
  std::mt19937_64 rng(o.seed);
  // Weights and Adam's moments (25.6 M parameters, fp32), a few big tensors.
  for (uint64_t bytes : {9408ull * 4, 215808ull * 4, 1219584ull * 4, 7098368ull * 4, 14964736ull * 4, 2049000ull * 4})
    for (int copy = 0; copy < 3; ++copy) b.alloc(bytes);
  constexpr uint64_t kResolutions[] = {224, 320, 448, 512, 640, 800, 896, 1024};
  struct Stage {
    uint64_t blocks, width, out, stride;  // bottleneck blocks, inner and output channels, downsampling so far
  };
  constexpr Stage kStages[] = {{3, 64, 256, 4}, {4, 128, 512, 8}, {6, 256, 1024, 16}, {3, 512, 2048, 32}};
  std::uniform_int_distribution<uint64_t> workspace(1 << 20, 256 << 20);
  std::vector<uint64_t> order(std::begin(kResolutions), std::end(kResolutions));
  for (int step = 0; step < steps; ++step) {
    b.marker();
    // Each resolution once per 8 steps, in an order the seed picks.
    if (step % 8 == 0) std::shuffle(order.begin(), order.end(), rng);
    const uint64_t r = order[size_t(step) % 8];
    auto act = [&](uint64_t channels, uint64_t stride) { return kBatch * channels * (r / stride) * (r / stride) * e; };
    std::vector<uint32_t> saved{b.alloc(act(3, 1)), b.alloc(act(64, 2)), b.alloc(act(64, 2))};  // input, conv, bn
    saved.push_back(b.alloc(act(64, 4)));  // max pool
    for (const Stage& s : kStages) {
      for (uint64_t k = 0; k < s.blocks; ++k) {
        for (uint64_t c : {s.width, s.width, s.out}) {
          const uint32_t ws = b.alloc(workspace(rng));  // cuDNN's workspace
          saved.push_back(b.alloc(act(c, s.stride)));  // conv out
          saved.push_back(b.alloc(act(c, s.stride)));  // batch norm out
          b.free(ws);
        }
        saved.push_back(b.alloc(act(s.out, s.stride)));  // residual sum
        b.compute(int64_t(act(s.out, s.stride) / 65536));
      }
    }
    const uint32_t logits = b.alloc(kBatch * 1000 * 4);
    // Backward: each saved activation's gradient, then it goes.
    while (!saved.empty()) {
      const uint64_t bytes = b.size_of(saved.back());
      const uint32_t grad = b.alloc(bytes);
      const uint32_t ws = b.alloc(workspace(rng));
      b.free(ws);
      b.free(saved.back());
      saved.pop_back();
      b.free(grad);
      b.compute(int64_t(bytes / 131072));
    }
    b.free(logits);
  }
  return t;
}

}  // namespace hbmalloc::synth
