// A deterministic, training-like trace made from nothing: the project's own
// example for the README's main job and for tests that need a realistic mix.
#pragma once

#include <cstdint>

#include "record/trace.h"

namespace hbmalloc::trace {

// A GPT-style model trained with Adam for `steps` steps; the sequence length
// changes from step to step (as with packed or bucketed batches), so cached
// blocks stop fitting and fragmentation builds up.
struct SyntheticOptions {
  int steps = 6;
  int layers = 12;
  uint64_t hidden = 1024;
  uint64_t vocab = 50304;
  uint64_t batch = 8;
  uint64_t min_seq = 128, max_seq = 1024;  // multiples of 64 between these
  uint64_t seed = 1;
};

Trace synthetic_training_trace(const SyntheticOptions& options);

}  // namespace hbmalloc::trace
