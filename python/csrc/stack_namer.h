// PyTorch's captured stacks (torch::CapturedTraceback, what
// torch.cuda.memory._record_memory_history gathers) named for hbmalloc's
// recorder, as torch.cuda.memory._snapshot names them.
#pragma once

#include <memory>

#include "hbmalloc/stacks.hpp"

namespace hbmalloc::torch_ext {

// Names tokens holding a c10::GatheredContext; a context that is not a
// CapturedTraceback (a custom gatherer's) has no frames. Symbolizing Python
// frames takes the GIL: call it with no lock held that a Python thread may wait on.
std::shared_ptr<StackNamer> torch_stack_namer();

}  // namespace hbmalloc::torch_ext
