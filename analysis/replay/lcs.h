// Length of the longest common subsequence of two symbol sequences, by the
// bit-parallel method (Allison-Dix, Hyyro): O(|a| |b| / 64) word operations
// and O(|a| + |b|) memory, after the common prefix and suffix are set aside.
#pragma once

#include <cstdint>
#include <span>

namespace hbmalloc::replay {

uint64_t lcs_length(std::span<const uint64_t> a, std::span<const uint64_t> b);

// About a second of work on one core: 2^30 word operations.
constexpr uint64_t kMaxLcsWork = uint64_t{1} << 30;

struct BoundedLcs {
  uint64_t length = 0;
  bool exact = true;  // false: a lower bound (the work was bounded)
};
// The LCS when it costs at most `max_work` word operations; otherwise a lower
// bound in near-linear time: both sequences are cut into as many aligned
// parts as it takes (the i-th part of each covers the same share of it), and
// the parts' LCS lengths add up (matches of part i precede those of part i+1,
// so together they are a common subsequence).
BoundedLcs lcs_length_bounded(std::span<const uint64_t> a, std::span<const uint64_t> b,
                              uint64_t max_work = kMaxLcsWork);

}  // namespace hbmalloc::replay
