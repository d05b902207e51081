// Pieces of a transformer step the workloads share: its dimensions, its
// weights, and one training step over a batch (activations kept for
// backward, gradients made in reverse, then let go as zero_grad does).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "synth/trace_builder.h"

namespace hbmalloc::synth {

struct TransformerDims {
  uint64_t hidden = 1024, ffn = 4096, heads = 16, layers = 12, vocab = 50304;
  uint64_t bytes = 2;  // per element (bf16 / fp16)
  // The weights of one layer: attention's four matrices and the MLP's two
  // (three when gated), each one tensor.
  std::vector<uint64_t> layer_weights(bool gated = false) const {
    std::vector<uint64_t> w{3 * hidden * hidden * bytes, hidden * hidden * bytes, hidden * ffn * bytes,
                            ffn * hidden * bytes, hidden * bytes, hidden * bytes};
    if (gated) w.push_back(hidden * ffn * bytes);
    return w;
  }
};

// Allocates every weight (embedding, layers, head), returns their sizes.
inline std::vector<uint64_t> allocate_weights(TraceBuilder& b, const TransformerDims& m) {
  std::vector<uint64_t> sizes{m.vocab * m.hidden * m.bytes};
  for (uint64_t l = 0; l < m.layers; ++l)
    for (uint64_t w : m.layer_weights()) sizes.push_back(w);
  sizes.push_back(m.vocab * m.hidden * m.bytes);
  for (uint64_t s : sizes) b.alloc(s);
  return sizes;
}

// One forward and backward over `batch` sequences of `seq` tokens; the
// gradients of `weights` appear during backward and are freed at the end.
inline void transformer_train_step(TraceBuilder& b, std::mt19937_64& rng, const TransformerDims& m,
                                   const std::vector<uint64_t>& weights, uint64_t batch, uint64_t seq) {
  const uint64_t tokens = batch * seq, h = m.hidden, e = m.bytes;
  std::uniform_int_distribution<uint64_t> small(512, 128 << 10);
  std::vector<uint32_t> saved{b.alloc(tokens * 8), b.alloc(tokens * h * e)};
  for (uint64_t l = 0; l < m.layers; ++l) {
    saved.push_back(b.alloc(tokens * h * e));
    saved.push_back(b.alloc(tokens * 3 * h * e));
    const uint32_t scores = b.alloc(batch * m.heads * seq * seq * e);
    saved.push_back(b.alloc(batch * m.heads * seq * seq * e));
    b.free(scores);
    saved.push_back(b.alloc(tokens * h * e));
    saved.push_back(b.alloc(tokens * m.ffn * e));
    saved.push_back(b.alloc(tokens * m.ffn * e));
    const uint32_t temp = b.alloc(small(rng), 1);
    b.free(temp);
    b.compute(int64_t(tokens * h / 2048));
  }
  const uint32_t logits = b.alloc(tokens * m.vocab * 4);
  std::vector<uint32_t> grads;
  size_t next = weights.size();
  const uint32_t dlogits = b.alloc(tokens * m.vocab * 4);
  b.free(logits);
  while (!saved.empty()) {
    const uint32_t grad_in = b.alloc(tokens * h * e);
    if (next > 0) grads.push_back(b.alloc(weights[--next]));
    b.free(saved.back());
    saved.pop_back();
    b.free(grad_in);
    b.compute(int64_t(tokens * h / 8192));
  }
  while (next > 0) grads.push_back(b.alloc(weights[--next]));
  b.free(dlogits);
  b.free_all(grads);
}

}  // namespace hbmalloc::synth
