// GPT training: the project's own example trace (the README's main job) and
// the first synthetic workload. A GPT-2 medium-like model (hidden 1024, 12
// layers, vocabulary 50304) trained with Adam; the sequence length changes
// from step to step (packed or bucketed batches), so cached blocks stop
// fitting and fragmentation builds up.
#pragma once

#include <cstdint>

#include "record/trace.h"

namespace hbmalloc::synth {

struct GptOptions {
  int steps = 6;
  int layers = 12;
  uint64_t hidden = 1024;
  uint64_t vocab = 50304;
  uint64_t batch = 8;
  uint64_t min_seq = 128, max_seq = 1024;  // multiples of 64 between these
  uint64_t seed = 1;
  // Activation checkpointing: forward keeps only each layer's input; backward
  // recomputes the layer's activations, then frees them.
  bool checkpointing = false;
};

trace::Trace gpt_training(const GptOptions& options);

}  // namespace hbmalloc::synth
