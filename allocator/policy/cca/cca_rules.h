// PyTorch's CUDACachingAllocator size rules, as pure functions of the
// settings: how a request is rounded, which pool serves it, how large a new
// segment is, and whether a block found for it is split.
#pragma once

#include <bit>
#include <cstdint>

#include "core/helpers.h"
#include "policy/cca/cca_config.h"

namespace hbmalloc::cca {

constexpr uint64_t kMinBlockSize = 512;         // every size is a multiple of this
constexpr uint64_t kSmallSize = 1 * kMiB;       // the largest small-pool request
constexpr uint64_t kSmallBuffer = 2 * kMiB;     // small-pool segments (and expandable pages)
constexpr uint64_t kMinLargeAlloc = 10 * kMiB;  // below this a large request gets a large_segment_size segment
constexpr uint64_t kRoundLarge = 2 * kMiB;      // larger segments are rounded to this


// The next of `divisions` equal steps between the powers of two around size
// (1200 with 4 divisions: steps 1024, 1280, 1536, 1792 -> 1280).
constexpr uint64_t roundup_power2_next_division(uint64_t size, uint64_t divisions) {
  if (std::has_single_bit(size)) return size;
  const uint64_t floor = std::bit_floor(size);
  const uint64_t step = floor >> (std::bit_width(divisions) - 1);
  if (step == 0) return floor << 1;
  const uint64_t below = size & ~(step - 1);
  return below == size ? size : below + step;
}

// What a request of `size` bytes occupies.
inline uint64_t round_size(uint64_t size, const CcaConfig& c) {
  if (size < kMinBlockSize) return kMinBlockSize;
  const uint64_t divisions = c.divisions_for(size);
  if (divisions > 1 && size > kMinBlockSize * divisions) return roundup_power2_next_division(size, divisions);
  return round_up(size, kMinBlockSize);
}

inline bool is_small(uint64_t rounded) { return rounded <= kSmallSize; }

// The segment cudaMalloc'd when no cached block fits a rounded request.
inline uint64_t allocation_size(uint64_t rounded, const CcaConfig& c) {
  if (rounded <= kSmallSize) return kSmallBuffer;
  if (rounded < kMinLargeAlloc) return c.large_segment_size;
  return round_up(rounded, kRoundLarge);
}

// Whether a free block of `block_size` handed to a request of `rounded` bytes
// keeps its remainder as a separate free block.
inline bool should_split(uint64_t block_size, uint64_t rounded, bool small_pool, bool expandable, const CcaConfig& c) {
  const uint64_t remaining = block_size - rounded;
  if (small_pool || expandable) return remaining >= kMinBlockSize;
  return rounded < c.max_split_size && remaining > kSmallSize;
}

}  // namespace hbmalloc::cca
