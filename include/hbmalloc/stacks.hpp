// Where allocations come from, for the recorder. hbmalloc cannot walk a
// caller's stack itself (Python frames, TorchScript); a caller that can
// (PyTorch's memory history) captures a stack cheaply at each allocation and
// hands it over as an opaque token; the recorder asks the caller's namer for
// the frames later, outside every allocator lock, as PyTorch does at
// snapshot time.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hbmalloc {

struct StackFrame {
  std::string filename;
  std::string name;
  int64_t line = 0;
};

// A captured stack, opaque to hbmalloc; kept alive until it is named.
using StackToken = std::shared_ptr<const void>;

class StackNamer {
 public:
  virtual ~StackNamer() = default;
  // The frames of each token, innermost first (an empty list: unknown). Called
  // with no hbmalloc lock held; may throw (the stacks are then lost, the trace
  // goes on).
  virtual std::vector<std::vector<StackFrame>> name(const std::vector<StackToken>& stacks) = 0;
};

// While it lives, allocations this thread makes carry `token` to the
// recorders that have a namer. Scopes nest; the innermost wins.
class StackScope {
 public:
  explicit StackScope(const StackToken& token) noexcept;
  ~StackScope();
  StackScope(const StackScope&) = delete;
  StackScope& operator=(const StackScope&) = delete;

  // This thread's innermost token, or nullptr.
  static const StackToken* current() noexcept;

 private:
  const StackToken* saved_;
};

}  // namespace hbmalloc
