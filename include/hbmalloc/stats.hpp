// Allocator statistics with PyTorch's names and meaning.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "hbmalloc/device_prices.hpp"
#include "hbmalloc/types.hpp"

namespace hbmalloc {

// One counter as PyTorch keeps it: current value, its peak, and the running
// totals of increases and decreases (current == allocated - freed).
struct StatCounter {
  int64_t current = 0;
  int64_t peak = 0;
  int64_t allocated = 0;
  int64_t freed = 0;
};

// all / small_pool / large_pool, as PyTorch's StatArray.
struct StatArray {
  StatCounter all, small_pool, large_pool;

  StatCounter& of(Pool p) { return p == Pool::kSmall ? small_pool : large_pool; }
  const StatCounter& of(Pool p) const { return p == Pool::kSmall ? small_pool : large_pool; }
};

// Virtual memory operations (CUDA VMM), each counted in device granules
// (Backend::vmm_granularity, 2 MiB on today's GPUs): creating a 20 MiB handle
// counts 10, unmapping a 6 MiB range counts 3.
struct VmmCounts {
  int64_t create = 0;      // physical granules created (cuMemCreate)
  int64_t map = 0;         // mapped into a virtual range (cuMemMap)
  int64_t set_access = 0;  // made accessible (cuMemSetAccess)
  int64_t unmap = 0;       // unmapped (cuMemUnmap)
  int64_t release = 0;     // physical granules freed (cuMemRelease)
  int64_t peak_held = 0;   // the most granules held at once
  int64_t remapped = 0;      // granules unmapped from cached free memory and mapped where needed
  int64_t remap_refused = 0;  // granules the remap budget had created instead of remapped
  int64_t remap_bought = 0;   // granules created instead of remapped for a request size whose remapping recurred

  // What these operations would take on a GPU by the price table (device_prices.hpp).
  double modeled_seconds(const DevicePrices& p = kDevicePrices) const {
    return double(create) * p.create + double(map) * p.map + double(set_access) * p.set_access +
           double(unmap) * p.unmap + double(release) * p.release;
  }
  // The remapping part: granules unmapped and mapped again elsewhere.
  static double remap_seconds(int64_t granules, const DevicePrices& p = kDevicePrices) {
    return double(granules) * (p.unmap + p.map + p.set_access);
  }
  // Making granules new: created, mapped and opened.
  static double create_seconds(int64_t granules, const DevicePrices& p = kDevicePrices) {
    return double(granules) * (p.create + p.map + p.set_access);
  }
  // The part no allocator avoids: creating, mapping and opening each granule
  // of the high-water mark once (what a caching allocator's cudaMalloc of the
  // same bytes stands for). The rest is what remapping and releasing cost.
  double growth_seconds(const DevicePrices& p = kDevicePrices) const {
    return create_seconds(peak_held, p);
  }
  double overhead_seconds() const { return modeled_seconds() - growth_seconds(); }
  bool operator==(const VmmCounts&) const = default;
};

struct Stats {
  StatArray allocation;            // blocks handed out
  StatArray segment;               // device segments held
  StatArray active;                // allocated blocks plus those waiting on stream events
  StatArray inactive_split;        // free blocks that cannot be released (their segment is in use)
  StatArray allocated_bytes;
  StatArray reserved_bytes;
  StatArray active_bytes;
  StatArray inactive_split_bytes;
  StatArray requested_bytes;       // bytes the callers asked for

  int64_t num_alloc_retries = 0;   // allocations that needed the cache released first
  int64_t num_ooms = 0;            // allocations that failed
  int64_t num_sync_all_streams = 0;
  int64_t num_device_alloc = 0;
  int64_t num_device_free = 0;
  VmmCounts vmm;                   // virtual memory operations

  // hbmalloc's own: bytes of plain segments taken and given back (cudaMalloc /
  // cudaFree); VMM granules are in vmm instead.
  int64_t device_alloc_bytes = 0;
  int64_t device_free_bytes = 0;
  int64_t device_alloc_calls = 0;  // plain segments taken (cudaMalloc) and given back (cudaFree)
  int64_t device_free_calls = 0;

  // hbmalloc's own, filled when a snapshot of the stats is taken.
  int64_t largest_free_block = 0;
  double external_fragmentation = 0.0;  // 1 - largest_free_block / cached_free
  int64_t memory_limit = 0;             // bytes reserved may not exceed this
};

// The three current byte counts, cheap enough to read after every operation.
struct Usage {
  uint64_t requested = 0, allocated = 0, reserved = 0;
};

// What the plain segments of `s` (cudaMalloc / cudaFree) would take on a GPU
// by the price table.
inline double modeled_segment_seconds(const Stats& s, const DevicePrices& p = kDevicePrices) {
  return double(s.device_alloc_calls) * p.malloc_call + double(s.device_alloc_bytes) * p.malloc_byte +
         double(s.device_free_calls) * p.free_call + double(s.device_free_bytes) * p.free_byte;
}
// The least device time of any allocator that holds `peak_requested` bytes
// at once: each byte of that peak created, mapped and opened once (as
// granules, or a plain segment priced as its granules). A replay that spends
// no more than this serves the peak with no memory to spare, never remapping.
inline double floor_device_seconds(uint64_t peak_requested, const DevicePrices& p = kDevicePrices) {
  return double(peak_requested) / DevicePrices::kGranule * (p.create + p.map + p.set_access);
}
// Every device memory call of `s`, VMM and plain segments, by one price
// table: so allocators with and without VMM (hbm, cca, vmm:off) compare.
inline double modeled_device_seconds(const Stats& s, const DevicePrices& p = kDevicePrices) {
  return s.vmm.modeled_seconds(p) + modeled_segment_seconds(s, p);
}

// One JSON object with PyTorch's flat keys ("allocated_bytes.all.current", ...)
// plus hbmalloc's ("hbmalloc.largest_free_block", "hbmalloc.vmm.map", ...).
std::string stats_to_json(const Stats& stats);

}  // namespace hbmalloc
