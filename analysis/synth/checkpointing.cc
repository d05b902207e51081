// Activation checkpointing: GPT training whose forward keeps only each
// layer's input and whose backward recomputes the layer first.
#include "synth/gpt_training.h"
#include "synth/workloads.h"

namespace hbmalloc::synth {

trace::Trace checkpointing(const WorkloadOptions& o) {
  GptOptions g;
  g.seed = o.seed;
  g.steps = o.steps > 0 ? o.steps : 4;
  g.layers = 36;
  g.hidden = 1280;
  g.batch = 4;
  g.min_seq = 256;
  g.max_seq = 1024;
  g.checkpointing = true;
  return gpt_training(g);
}

}  // namespace hbmalloc::synth
