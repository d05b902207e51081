// Hands out ranges of a window [base, base + size): best fit over the ranges
// given back (coalesced with their neighbours), else the next fresh bytes.
// The sim backend's fake addresses and the host backend's file offsets.
#pragma once

#include <cstdint>
#include <utility>

#include "absl/container/btree_map.h"
#include "absl/container/btree_set.h"

namespace hbmalloc {

class RangeAllocator {
 public:
  static constexpr uint64_t kNone = UINT64_MAX;

  RangeAllocator(uint64_t base, uint64_t size) : base_(base), end_(base + size), top_(base) {}

  // The start of `bytes` free bytes, or kNone when the window has no room.
  uint64_t take(uint64_t bytes);
  // Gives back a range from take().
  void give_back(uint64_t addr, uint64_t bytes);
  // One past the highest byte ever handed out and not given back at the top.
  uint64_t top() const { return top_; }

 private:
  uint64_t base_, end_;
  uint64_t top_;                                                 // fresh bytes start here
  absl::btree_map<uint64_t, uint64_t> free_by_addr_;             // addr -> size, coalesced
  absl::btree_set<std::pair<uint64_t, uint64_t>> free_by_size_;  // (size, addr)
};

}  // namespace hbmalloc
