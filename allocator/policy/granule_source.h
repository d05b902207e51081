// Physical granules and virtual ranges for a policy (the Backend's VMM
// operations): enforces the memory limit shared with SegmentSource, keeps
// reserved bytes (= physical memory held: granules created and not released)
// and counts every VMM operation in the statistics. Policies reach VMM only
// through here, so every policy's operations are counted the same way.
#pragma once

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
    stats().vmm.create += units(bytes);
    stats().reserved_bytes.increase(pool, int64_t(bytes));
    return g;
  }
  // `n` granules of `bytes` for `pool` into out[0..n), all or none; what they
  // reserve counts only once all exist, so a batch the device cannot finish
  // never shows in peak reserved (PyTorch's expandable segments: cuMemCreate
  // page by page, released on failure, reserved counted after the mapping).
  bool create_all(uint64_t n, uint64_t bytes, Pool pool, GranuleId* out) {
    if (bytes != 0 && n > segments_.limit() / bytes) return false;
    if (!within_limit(n * bytes)) return false;
    for (uint64_t i = 0; i < n; ++i) {
      out[i] = backend_.create_granule(bytes);
      if (out[i] != 0) {
        stats().vmm.create += units(bytes);
        continue;
      }
      for (uint64_t j = 0; j < i; ++j) {
        backend_.release_granule(out[j]);
        stats().vmm.release += units(bytes);
        out[j] = 0;
      }
      return false;
    }
    stats().reserved_bytes.increase(pool, int64_t(n * bytes));
    return true;
  }
  // Frees an unmapped granule of `bytes` held for `pool`.
  void release(GranuleId granule, uint64_t bytes, Pool pool) {
    backend_.release_granule(granule);
    stats().vmm.release += units(bytes);
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

  LiveStats& stats() { return segments_.stats(); }
  const LiveStats& stats() const { return segments_.stats(); }

 private:
  int64_t units(uint64_t bytes) const { return int64_t(bytes / granularity_); }

  Backend& backend_;
  SegmentSource& segments_;
  uint64_t granularity_;
};

}  // namespace hbmalloc
