// Device segments for a policy: enforces the memory limit and keeps the
// segment, reserved and device-call statistics.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "core/live_stats.h"
#include "hbmalloc/layout.hpp"

namespace hbmalloc {

class SegmentSource {
 public:
  SegmentSource(Backend& backend, LiveStats& stats) : backend_(backend), stats_(stats) {}

  // A new segment of `bytes` for `pool`, or nullptr when it would pass the
  // limit or the device is full.
  void* grow(uint64_t bytes, Pool pool) {
    uint64_t reserved = uint64_t(stats_.reserved_bytes.current_all());
    if (bytes > limit_ || reserved > limit_ - bytes) return nullptr;
    void* ptr = backend_.malloc_segment(bytes);
    if (ptr == nullptr) return nullptr;
    ++stats_.num_device_alloc;
    stats_.device_alloc_bytes += int64_t(bytes);
    ++stats_.device_alloc_calls;
    stats_.segment.increase(pool, 1);
    stats_.reserved_bytes.increase(pool, int64_t(bytes));
    return ptr;
  }
  // The policy is going away: the segment goes back to the device with
  // nothing counted (whoever reads the figures may be gone). Never throws.
  void release_at_exit(void* ptr, uint64_t bytes) noexcept {
    try {
      backend_.free_segment(ptr, bytes);
    } catch (...) {
    }
  }
  void release(void* ptr, uint64_t bytes, Pool pool) {
    backend_.free_segment(ptr, bytes);
    ++stats_.num_device_free;
    stats_.device_free_bytes += int64_t(bytes);
    ++stats_.device_free_calls;
    stats_.segment.decrease(pool, 1);
    stats_.reserved_bytes.decrease(pool, int64_t(bytes));
  }

  // Expandable segments: a range mapped or unmapped counts as a device call;
  // what it reserves is GranuleSource's to count.
  void mapped() { ++stats_.num_device_alloc; }
  void unmapped() { ++stats_.num_device_free; }

  void set_limit(uint64_t bytes) { limit_ = bytes; }
  uint64_t limit() const { return limit_; }
  LiveStats& stats() { return stats_; }
  const LiveStats& stats() const { return stats_; }

 private:
  Backend& backend_;
  LiveStats& stats_;
  uint64_t limit_ = std::numeric_limits<uint64_t>::max();
};

}  // namespace hbmalloc
