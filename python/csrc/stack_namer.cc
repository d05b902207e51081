#include "stack_namer.h"

#include <torch/csrc/profiler/combined_traceback.h>

#include <vector>

namespace hbmalloc::torch_ext {
namespace {

class TorchStackNamer final : public StackNamer {
 public:
  std::vector<std::vector<StackFrame>> name(const std::vector<StackToken>& stacks) override {
    std::vector<torch::CapturedTraceback*> captured;
    std::vector<size_t> which;  // index into stacks of each captured one
    for (size_t i = 0; i < stacks.size(); ++i) {
      auto* context = static_cast<c10::GatheredContext*>(const_cast<void*>(stacks[i].get()));
      if (auto* tb = dynamic_cast<torch::CapturedTraceback*>(context); tb != nullptr) {
        captured.push_back(tb);
        which.push_back(i);
      }
    }
    std::vector<std::vector<StackFrame>> out(stacks.size());
    if (captured.empty()) return out;
    const torch::SymbolizedTracebacks named = torch::symbolize(captured);
    for (size_t k = 0; k < which.size(); ++k) {
      std::vector<StackFrame>& frames = out[which[k]];
      for (uint64_t f : named.tracebacks[k]) {
        const torch::unwind::Frame& frame = named.all_frames.at(f);
        frames.push_back(StackFrame{frame.filename, frame.funcname, int64_t(frame.lineno)});
      }
    }
    return out;
  }
};

}  // namespace

std::shared_ptr<StackNamer> torch_stack_namer() {
  static const auto namer = std::make_shared<TorchStackNamer>();
  return namer;
}

}  // namespace hbmalloc::torch_ext
