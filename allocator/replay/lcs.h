// Length of the longest common subsequence of two symbol sequences, by the
// bit-parallel method (Allison-Dix, Hyyro): O(|a| |b| / 64) word operations
// and O(|a| + |b|) memory, after the common prefix and suffix are set aside.
#pragma once

#include <cstdint>
#include <span>

namespace hbmalloc::replay {

uint64_t lcs_length(std::span<const uint64_t> a, std::span<const uint64_t> b);

}  // namespace hbmalloc::replay
