// The statistics the allocator and its policy keep while running; Stats (the
// public form, PyTorch's layout) is a snapshot of them.
#pragma once

#include <cstdint>

#include "core/stat_tracker.h"
#include "hbmalloc/stats.hpp"

namespace hbmalloc {

struct LiveStats {
  StatTracker allocation, segment, active, inactive_split, allocated_bytes, reserved_bytes, active_bytes,
      inactive_split_bytes, requested_bytes;
  int64_t num_alloc_retries = 0;
  int64_t num_ooms = 0;
  int64_t num_sync_all_streams = 0;
  int64_t num_device_alloc = 0;
  int64_t num_device_free = 0;
  int64_t device_alloc_bytes = 0;  // plain segments only
  int64_t device_free_bytes = 0;
  int64_t device_alloc_calls = 0;  // plain segments only
  int64_t device_free_calls = 0;
  int64_t memory_limit = 0;
  VmmCounts vmm;

  template <typename F>
  void for_each(F&& f) {
    for (StatTracker* t : {&allocation, &segment, &active, &inactive_split, &allocated_bytes, &reserved_bytes,
                           &active_bytes, &inactive_split_bytes, &requested_bytes})
      f(*t);
  }
  void reset_peak() {
    for_each([](StatTracker& t) { t.reset_peak(); });
  }

  Stats snapshot() const {
    Stats s;
    s.allocation = allocation.snapshot();
    s.segment = segment.snapshot();
    s.active = active.snapshot();
    s.inactive_split = inactive_split.snapshot();
    s.allocated_bytes = allocated_bytes.snapshot();
    s.reserved_bytes = reserved_bytes.snapshot();
    s.active_bytes = active_bytes.snapshot();
    s.inactive_split_bytes = inactive_split_bytes.snapshot();
    s.requested_bytes = requested_bytes.snapshot();
    s.num_alloc_retries = num_alloc_retries;
    s.num_ooms = num_ooms;
    s.num_sync_all_streams = num_sync_all_streams;
    s.num_device_alloc = num_device_alloc;
    s.num_device_free = num_device_free;
    s.device_alloc_bytes = device_alloc_bytes;
    s.device_free_bytes = device_free_bytes;
    s.device_alloc_calls = device_alloc_calls;
    s.device_free_calls = device_free_calls;
    s.memory_limit = memory_limit;
    s.vmm = vmm;
    return s;
  }
};

}  // namespace hbmalloc
