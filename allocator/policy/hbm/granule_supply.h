// Where the hbm policy's pools get physical granules (all of one size):
// cached free memory unmapped for the purpose (a remap, when the remap rule
// allows it) or new ones within the memory limit. Nothing is kept unmapped
// between operations, so reserved is exactly the granules mapped.
// Remapping is preferred to creating because it is cheaper on a GPU (unmap +
// map + set_access ~64 us against ~238 us for a new granule) and does not
// grow reserved; a free is never remapped before its stream's queued work is
// done (StreamIdle).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "backend/backend.h"
#include "hbmalloc/vmm_config.hpp"
#include "policy/granule_source.h"
#include "policy/hbm/recurring_remaps.h"
#include "policy/hbm/stream_fences.h"

namespace hbmalloc::hbm {

// Makes sure no queued work on a stream still uses memory about to be
// unmapped: settled by its stream's fence, else an event recorded on the
// stream now must be done, else the device is synchronized (counted in
// num_sync_all_streams). The event is recorded only on a stream known to be
// alive, the one allocating now or the only one there is; for another the
// device is synchronized. Streams already settled within one operation are
// remembered until reset().
class StreamIdle {
 public:
  StreamIdle(Backend& backend, StreamFences& fences) : backend_(backend), fences_(fences) {}
  // `freed_at`: the StreamFences stamp of the memory's free.
  void ensure(StreamId stream, uint64_t freed_at = StreamFences::kUnstamped);
  void reset() {
    settled_.clear();
    synced_ = false;
  }

 private:
  Backend& backend_;
  StreamFences& fences_;
  std::vector<StreamId> settled_;
  bool synced_ = false;
};

// A pool of cached free memory that can give granules up.
class GranuleReclaimer {
 public:
  virtual ~GranuleReclaimer() = default;
  // Unmaps up to `want` granules of cached free memory (after idle.ensure of
  // their streams), appends them to `out` counted under the large pool's
  // reserved, and returns how many.
  virtual size_t reclaim(size_t want, std::vector<GranuleRun>& out, StreamIdle& idle) = 0;
  // Gives cached memory that no remap can take (plain segments) back to the
  // device, after idle.ensure of its streams, until `bytes` are freed or none
  // is left; returns the bytes freed.
  virtual uint64_t release_plain(uint64_t /*bytes*/, StreamIdle& /*idle*/) { return 0; }
};

// Granules in all of `runs`.
inline uint64_t granules_in(std::span<const GranuleRun> runs) {
  uint64_t n = 0;
  for (const GranuleRun& r : runs) n += r.count;
  return n;
}

class GranuleSupply {
 public:
  // Granules of config.granule_size.
  GranuleSupply(GranuleSource& source, Backend& backend, StreamFences& fences, const VmmConfig& config);
  GranuleSupply(const GranuleSupply&) = delete;
  GranuleSupply& operator=(const GranuleSupply&) = delete;

  // Asked in order when granules are to be remapped.
  void add_reclaimer(GranuleReclaimer* r) { reclaimers_.push_back(r); }

  uint64_t granule() const { return granule_; }
  // During a graph capture granules are only created, never remapped (that
  // would query events, synchronize and unmap).
  void set_capturing(bool capturing) { capturing_ = capturing; }
  // n unmapped granules counted under `pool` appended to out (as runs), or
  // false with nothing appended (whatever was gathered is released).
  // `requesting`: the bytes the request being served will add to requested
  // (the remap rule judges the high-water mark it makes).
  bool obtain(size_t n, Pool pool, std::vector<GranuleRun>& out, uint64_t requesting);
  // Makes room for a plain segment of `bytes` (a slab beside the arenas,
  // which no remap can serve): from empty plain slabs kept cached first,
  // else by giving cached granules back to the device, unmapped as for a
  // remap: as few as the limit asks, or, when the limit already leaves room
  // and the device still said no, enough for `bytes`.
  // Without it a full device would flush the whole cache (the out-of-memory
  // retry) for one small slab. False when the cache cannot make the room.
  bool make_room(uint64_t bytes);

  GranuleSource& source() { return source_; }
  StreamIdle& idle() { return idle_; }

 private:
  // How many of `n` granules may be new ones (the rest are remapped first).
  size_t growth_allowed(size_t n, uint64_t requesting) const;
  // How many of `want` remaps the remap budget allows now.
  size_t remaps_allowed(size_t want);
  // Whether a request of `requesting` bytes should get new granules instead
  // of remapping what it wants (remap_overhead's rule, RecurringRemaps).
  bool buys_instead(uint64_t requesting);
  // The modeled time of remapping `granules` of granule_ bytes (the price
  // table is per 2 MiB granule; another size costs in proportion).
  double remap_cost(size_t granules) const {
    return VmmCounts::remap_seconds(int64_t(granules)) * double(granule_) / DevicePrices::kGranule;
  }
  size_t reclaim(size_t want, std::vector<GranuleRun>& out);
  // Of `bytes` more, those the memory limit has no room for.
  uint64_t beyond_limit(uint64_t bytes) const;
  // Frees empty plain segments (slabs) of at least `bytes` where cached; the bytes freed.
  uint64_t release_plain(uint64_t bytes);
  // Frees plain cached memory until the limit leaves room for `granules`.
  void release_plain_for(size_t granules);

  GranuleSource& source_;
  const VmmConfig config_;
  const uint64_t granule_;
  StreamIdle idle_;
  std::vector<GranuleReclaimer*> reclaimers_;
  std::vector<GranuleRun> remapped_, created_;  // scratch of obtain()
  bool capturing_ = false;
  Backend& backend_;
  // The remap budget's bucket: seconds of remapping it allows now, and the
  // clock when it was last refilled (none before the first remap it weighed).
  double credit_ = 0;
  std::optional<int64_t> refilled_us_;
  RecurringRemaps recurring_;
};

}  // namespace hbmalloc::hbm
