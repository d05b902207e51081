// What only a replay asks of an Allocator, kept out of the public header:
// starting from a recorded picture, and the policy's own segment events for
// the fidelity measure. analysis/replay is its one user.
#pragma once

#include <vector>

#include "hbmalloc/allocator.hpp"
#include "hbmalloc/layout.hpp"

namespace hbmalloc {

struct ReplayHooks {
  // Starts a fresh allocator from a recorded picture (a replay's trace
  // start): each segment of `start` is taken anew and its listed blocks
  // (allocated, requested bytes; size 0: as the policy rounds) are live at
  // the same offsets, the rest free. Returns the live blocks' addresses in the
  // order given. Throws Error(kInvalidArgument) when the allocator holds
  // memory already, the picture is inconsistent or the policy cannot (hbm).
  static std::vector<void*> adopt(Allocator& a, const Layout& start);
  // Appends every segment change of the policy to `log` from now on (nullptr:
  // stop); `log` must outlive that. What a fidelity check compares with a trace.
  static void log_segment_events(Allocator& a, std::vector<SegmentEvent>* log);
};

}  // namespace hbmalloc
