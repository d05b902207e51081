// Remapping that recurs, bought out (VmmConfig::remap_overhead). A steady
// training step can move the same pages back and forth every step: a block
// of one size needs granules another size's free block holds, and the next
// step the other way round, at the same point of each step. Each move costs
// unmap + map + set_access; new granules cost create + map + set_access once
// and end the moves. The ski rental's rule decides without knowing how many
// steps are left: rent (remap) until renting has cost what buying would,
// then buy (create).
#pragma once

#include <algorithm>
#include <cstdint>
#include <unordered_map>

#include "hbmalloc/stats.hpp"

namespace hbmalloc::hbm {

class RecurringRemaps {
 public:
  // How many remaps of one granule cost its creation, by the price table
  // (about 3.7): a need remapped this many times is bought.
  static double rentals(const DevicePrices& p = kDevicePrices) {
    return VmmCounts::create_seconds(1, p) / VmmCounts::remap_seconds(1, p);
  }

  // A request of `size` bytes wants granules remapped, `requested` bytes
  // being in use before it; `peak` is the requested high-water mark and
  // `flat` whether the request stays within it. True when its granules
  // should be created instead: the request keeps to a peak already reached,
  // requests of its size at its point of the step have been remapped
  // rentals() times since the peak last moved, and remapping so far
  // (`remap_seconds`) has cost more than `overhead` of what creating memory
  // did (`create_seconds`): remapping within that share is never bought out.
  // Counts the request either way.
  bool buy(uint64_t size, uint64_t requested, uint64_t peak, bool flat, double remap_seconds, double create_seconds,
           double overhead) {
    if (peak != peak_) {  // a new phase (or reset_peak_memory_stats): what recurred before says nothing
      peak_ = peak;
      seen_.clear();
    }
    if (!flat) return false;
    // A job with this many needs at one peak is not repeating a step; the
    // bound keeps the table small.
    if (seen_.size() >= kMaxNeeds) seen_.clear();
    uint32_t& times = times_at(size, requested);
    const bool recurs = double(times) >= rentals();
    ++times;
    return recurs && remap_seconds > overhead * create_seconds;
  }

 private:
  // The remaps of one need: requests of `size` at one point of a step, the
  // point being the bytes in use before them in buckets of `size`, a
  // neighbouring bucket counting as the same (the step's other requests may
  // shift it a little). The same size at another point, such as the next
  // layer's block of a forward or backward pass, is another need: buying
  // there leaves a granule per layer cached and ends no recurring move.
  uint32_t& times_at(uint64_t size, uint64_t requested) {
    const uint64_t bucket = requested / std::max<uint64_t>(size, 1);
    auto key = [size](uint64_t b) { return size * 0x9E3779B97F4A7C15ull ^ b; };  // collisions only merge counts
    for (const uint64_t near : {bucket, bucket - 1, bucket + 1})
      if (near != ~uint64_t(0))
        if (auto it = seen_.find(key(near)); it != seen_.end()) return it->second;
    return seen_[key(bucket)];
  }

  static constexpr size_t kMaxNeeds = 4096;
  uint64_t peak_ = 0;
  std::unordered_map<uint64_t, uint32_t> seen_;  // need (size and point) -> remaps at this peak
};

}  // namespace hbmalloc::hbm
