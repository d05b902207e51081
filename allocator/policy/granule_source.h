// Physical granules and virtual ranges for a policy (the Backend's VMM
// operations): enforces the memory limit shared with SegmentSource, keeps
// reserved bytes (= physical memory held: granules created and not released)
// and counts every VMM operation in the statistics. Policies reach VMM only
// through here, so every policy's operations are counted the same way.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

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

  // How many granules of `bytes` the limit leaves room for (the device may have less).
  uint64_t room(uint64_t bytes) const {
    uint64_t reserved = uint64_t(stats().reserved_bytes.current_all()), limit = segments_.limit();
    return reserved >= limit ? 0 : (limit - reserved) / bytes;
  }
  // A granule of `bytes` held for `pool`, or 0 when it would pass the limit or
  // the device is full.
  GranuleId create(uint64_t bytes, Pool pool) { return create_all(1, bytes, pool).first; }
  // Up to n granules of `bytes` held for `pool`, as many as the limit and the
  // device allow, appended to out as one run (nothing when none); how many.
  size_t create_many(uint64_t bytes, size_t n, Pool pool, std::vector<GranuleRun>& out) {
    n = std::min<uint64_t>(n, room(bytes));
    if (n == 0) return 0;
    const GranuleRun run = backend_.create_granules(bytes, n);
    count_created(run.count, bytes);
    if (run.count == 0) return 0;
    stats().reserved_bytes.increase(pool, int64_t(run.count * bytes));
    out.push_back(run);
    return run.count;
  }
  // `n` granules of `bytes` for `pool`, all or none (a run of count 0); what
  // they reserve counts only once all exist, so a batch the device cannot
  // finish never shows in peak reserved (PyTorch's expandable segments:
  // cuMemCreate page by page, released on failure, reserved counted after
  // the mapping).
  GranuleRun create_all(uint64_t n, uint64_t bytes, Pool pool) {
    if (n > room(bytes)) return {};
    const GranuleRun run = backend_.create_granules(bytes, n);
    count_created(run.count, bytes);
    if (run.count < n) {
      free_granules(run, bytes);
      return {};
    }
    stats().reserved_bytes.increase(pool, int64_t(n * bytes));
    return run;
  }
  // Frees unmapped granules of `bytes` held for `pool`.
  void release(GranuleId granule, uint64_t bytes, Pool pool) {
    const GranuleRun run{granule, 1};
    release_runs({&run, 1}, bytes, pool);
  }
  void release_runs(std::span<const GranuleRun> runs, uint64_t bytes, Pool pool) {
    uint64_t n = 0;
    for (const GranuleRun& run : runs) {
      free_granules(run, bytes);
      n += run.count;
    }
    stats().reserved_bytes.decrease(pool, int64_t(n * bytes));
  }
  // A held granule now serves the other pool (reserved moves with it).
  void transfer(uint64_t bytes, Pool from, Pool to) { stats().reserved_bytes.move(from, to, int64_t(bytes)); }

  void map(void* addr, GranuleId granule, uint64_t bytes) {
    backend_.map(addr, granule);
    stats().vmm.map += units(bytes);
  }
  // The runs' granules, each `bytes` long, mapped one after the other from
  // addr, and the device given access to them: memory ready to use. All or
  // nothing: when a call fails, what was mapped is unmapped again and the
  // error goes on (the granules stay the caller's to release).
  void map_with_access(void* addr, std::span<const GranuleRun> runs, uint64_t bytes) {
    uint64_t mapped = 0;
    try {
      for (const GranuleRun& run : runs) {
        backend_.map_granules(static_cast<char*>(addr) + mapped, run, bytes);
        stats().vmm.map += int64_t(run.count) * units(bytes);
        mapped += run.count * bytes;
      }
      set_access(addr, mapped);
    } catch (...) {
      if (mapped > 0) {
        try {
          unmap(addr, mapped);
        } catch (...) {
        }
      }
      throw;
    }
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
  // n granules of `bytes` were created: counted, and the high-water mark of
  // those held (created and not released, by every source of the device) kept.
  void count_created(uint64_t n, uint64_t bytes) {
    VmmCounts& vmm = stats().vmm;
    vmm.create += int64_t(n) * units(bytes);
    vmm.peak_held = std::max(vmm.peak_held, vmm.create - vmm.release);
  }
  // Gives unmapped granules back to the device (reserved is the caller's to count).
  void free_granules(GranuleRun run, uint64_t bytes) {
    if (run.count == 0) return;
    backend_.release_granules(run);
    stats().vmm.release += int64_t(run.count) * units(bytes);
  }

  Backend& backend_;
  SegmentSource& segments_;
  uint64_t granularity_;
};

}  // namespace hbmalloc
