// Physical granules and virtual ranges for a policy (the Backend's VMM
// operations): enforces the memory limit shared with SegmentSource, keeps
// reserved bytes (= physical memory held: granules created and not released)
// and counts every VMM operation in the statistics. Policies reach VMM only
// through here, so every policy's operations are counted the same way.
#pragma once

#include <algorithm>
#include <cstdint>

#include "backend/backend.h"
#include "core/live_stats.h"
#include "policy/segment_source.h"

namespace hbmalloc {

class GranuleSource {
 public:
  GranuleSource(Backend& backend, SegmentSource& segments)
      : backend_(backend), segments_(segments), granularity_(backend.vmm_granularity()) {}

  // The backend's granule (bytes); 0 when it has no VMM and policies must use segments.
  uint64_t granularity() const { return granularity_; }

  // Address space: nothing physical, nothing counted but the call.
  void* reserve_range(uint64_t bytes) { return backend_.reserve_range(bytes); }
  void release_range(void* base, uint64_t bytes) { backend_.release_range(base, bytes); }

  // Whether `bytes` more may be created without passing the limit.
  bool within_limit(uint64_t bytes) const {
    uint64_t reserved = uint64_t(stats().reserved_bytes.current_all());
    uint64_t limit = segments_.limit();
    return bytes <= limit && reserved <= limit - bytes;
  }
  // A granule of `bytes` held for `pool`, or 0 when it would pass the limit or
  // the device is full.
  GranuleId create(uint64_t bytes, Pool pool) {
    if (!within_limit(bytes)) return 0;
    GranuleId g = backend_.create_granule(bytes);
    if (g == 0) return 0;
    VmmCounts& vmm = stats().vmm;
    vmm.create += units(bytes);
    held_ += units(bytes);
    vmm.peak_held = std::max(vmm.peak_held, held_);
    stats().reserved_bytes.increase(pool, int64_t(bytes));
    return g;
  }
  // Frees an unmapped granule of `bytes` held for `pool`.
  void release(GranuleId granule, uint64_t bytes, Pool pool) {
    backend_.release_granule(granule);
    stats().vmm.release += units(bytes);
    held_ -= units(bytes);
    stats().reserved_bytes.decrease(pool, int64_t(bytes));
  }
  // A held granule now serves the other pool (reserved moves with it).
  void transfer(uint64_t bytes, Pool from, Pool to) {
    stats().reserved_bytes.decrease(from, int64_t(bytes));
    stats().reserved_bytes.increase(to, int64_t(bytes));
  }

  void map(void* addr, GranuleId granule, uint64_t bytes) {
    backend_.map(addr, granule);
    stats().vmm.map += units(bytes);
  }
  void set_access(void* addr, uint64_t bytes) {
    backend_.set_access(addr, bytes);
    stats().vmm.set_access += units(bytes);
  }
  void unmap(void* addr, uint64_t bytes) {
    backend_.unmap(addr, bytes);
    stats().vmm.unmap += units(bytes);
  }

  uint64_t limit() const { return segments_.limit(); }
  LiveStats& stats() { return segments_.stats(); }
  const LiveStats& stats() const { return segments_.stats(); }

 private:
  int64_t units(uint64_t bytes) const { return int64_t(bytes / granularity_); }

  Backend& backend_;
  SegmentSource& segments_;
  uint64_t granularity_;
  int64_t held_ = 0;  // granules created and not released, in device granules
};

}  // namespace hbmalloc
