// What only a replay asks of an Allocator, kept out of the public header:
// starting from a recorded picture. analysis/replay is its one user (its
// fidelity log is an ordinary observer, hbmalloc/observer.hpp).
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
  // Observers hear nothing of it: a start is where their story begins, not
  // something that happened (nor is undoing a start that failed).
  static std::vector<void*> adopt(Allocator& a, const Layout& start);
};

}  // namespace hbmalloc
