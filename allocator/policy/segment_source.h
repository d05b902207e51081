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
    stats_.segment.increase(pool, 1);
    stats_.reserved_bytes.increase(pool, int64_t(bytes));
    if (log_ != nullptr) [[unlikely]] log_->push_back({SegmentAction::kAlloc, address(ptr), bytes});
    return ptr;
  }
  // The policy is going away: the segment goes back to the device with
  // nothing counted or logged (whoever reads those may be gone). Never throws.
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
    stats_.segment.decrease(pool, 1);
    stats_.reserved_bytes.decrease(pool, int64_t(bytes));
    if (log_ != nullptr) [[unlikely]] log_->push_back({SegmentAction::kFree, address(ptr), bytes});
  }

  // Expandable segments: a range mapped or unmapped counts as a device call
  // and is logged; what it reserves is GranuleSource's to count.
  void mapped(uint64_t addr, uint64_t bytes) {
    ++stats_.num_device_alloc;
    if (log_ != nullptr) [[unlikely]] log_->push_back({SegmentAction::kMap, addr, bytes});
  }
  void unmapped(uint64_t addr, uint64_t bytes) {
    ++stats_.num_device_free;
    if (log_ != nullptr) [[unlikely]] log_->push_back({SegmentAction::kUnmap, addr, bytes});
  }

  // Appends every segment change from now on to `log` (nullptr: stop).
  void set_log(std::vector<SegmentEvent>* log) { log_ = log; }
  std::vector<SegmentEvent>* log() const { return log_; }

  void set_limit(uint64_t bytes) { limit_ = bytes; }
  uint64_t limit() const { return limit_; }
  LiveStats& stats() { return stats_; }
  const LiveStats& stats() const { return stats_; }

 private:
  static uint64_t address(void* ptr) { return reinterpret_cast<uintptr_t>(ptr); }

  Backend& backend_;
  LiveStats& stats_;
  uint64_t limit_ = std::numeric_limits<uint64_t>::max();
  std::vector<SegmentEvent>* log_ = nullptr;
};

}  // namespace hbmalloc
