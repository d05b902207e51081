#include "policy/hbm/granule_supply.h"

#include <algorithm>
#include <cmath>

namespace hbmalloc::hbm {

void StreamIdle::ensure(StreamId stream, uint64_t freed_at) {
  if (synced_ || fences_.settled_or_synced(stream, freed_at)) return;
  if (std::find(settled_.begin(), settled_.end(), stream) != settled_.end()) return;
  if (!fences_.several() || fences_.requester() == stream) {
    EventId e = backend_.record_event(stream);
    const bool done = backend_.event_done(e);
    backend_.release_event(e);
    if (done) {
      settled_.push_back(stream);
      return;
    }
  }
  fences_.synchronize();
  synced_ = true;  // every stream is idle now
}

GranuleSupply::GranuleSupply(GranuleSource& source, Backend& backend, StreamFences& fences, const VmmConfig& config)
    : source_(source), config_(config), granule_(config.granule_size), idle_(backend, fences), backend_(backend) {}

size_t GranuleSupply::remaps_allowed(size_t want) {
  const double share = config_.budget();
  if (share < 0) return want;
  const std::optional<int64_t> now = backend_.now_us();
  if (!now) return want;  // no clock (a trace without times): no budget can be kept
  const double full = share * double(config_.remap_window_us) / 1e6;
  if (!refilled_us_)
    credit_ = full;
  else
    credit_ = std::min(full, credit_ + share * double(std::max<int64_t>(0, *now - *refilled_us_)) / 1e6);
  refilled_us_ = *now;
  if (credit_ <= 0) return 0;
  return size_t(std::min(double(want), std::floor(credit_ / remap_cost(1))));
}

bool GranuleSupply::buys_instead(uint64_t requesting) {
  const double overhead = config_.overhead();
  if (overhead < 0) return false;
  const LiveStats& stats = source_.stats();
  const uint64_t peak = uint64_t(stats.requested_bytes.peak_all());
  const uint64_t requested = uint64_t(stats.requested_bytes.current_all());
  const bool flat = requested + requesting <= peak;
  // Both in the price table's 2 MiB units, as VmmCounts counts.
  return recurring_.buy(requesting, requested, peak, flat, VmmCounts::remap_seconds(stats.vmm.remapped),
                        VmmCounts::create_seconds(stats.vmm.create), overhead);
}

size_t GranuleSupply::growth_allowed(size_t n, uint64_t requesting) const {
  switch (config_.remap) {
    case VmmConfig::Remap::kAlways: return 0;
    case VmmConfig::Remap::kNever: return n;
    case VmmConfig::Remap::kPressure: break;
  }
  // Growing is allowed while the cache would hold at most (1 - threshold) of
  // reserved at the requested high-water mark: efficiency stays at or above
  // the threshold wherever remapping can keep it there. A full device is no
  // reason to remap early: obtain() remaps when the limit leaves no room.
  const LiveStats& stats = source_.stats();
  const uint64_t reserved = uint64_t(stats.reserved_bytes.current_all());
  const uint64_t requested_peak = std::max(uint64_t(stats.requested_bytes.peak_all()),
                                           uint64_t(stats.requested_bytes.current_all()) + requesting);
  const double ceiling = double(requested_peak) / config_.pressure_threshold;
  if (ceiling <= double(reserved)) return 0;
  // Growth past what the limit leaves room for is remapped too: near a full
  // device a request may need both.
  const double room = double(source_.room(granule_));
  return size_t(std::min({double(n), room, (ceiling - double(reserved)) / double(granule_)}));
}

size_t GranuleSupply::reclaim(size_t want, std::vector<GranuleRun>& out) {
  if (capturing_) return 0;
  size_t got = 0;
  for (GranuleReclaimer* r : reclaimers_) {
    if (got >= want) break;
    got += r->reclaim(want - got, out, idle_);
  }
  return got;
}

uint64_t GranuleSupply::beyond_limit(uint64_t bytes) const {
  const uint64_t room = source_.room(1);
  return room >= bytes ? 0 : bytes - room;
}

uint64_t GranuleSupply::release_plain(uint64_t bytes) {
  uint64_t freed = 0;
  for (GranuleReclaimer* r : reclaimers_)
    if (freed < bytes) freed += r->release_plain(bytes - freed, idle_);
  return freed;
}

void GranuleSupply::release_plain_for(size_t granules) {
  const uint64_t short_by = beyond_limit(granules * granule_);
  if (capturing_ || short_by == 0) return;
  release_plain(short_by);
}

bool GranuleSupply::make_room(uint64_t bytes) {
  if (capturing_) return false;
  idle_.reset();
  // Empty plain slabs (of another class or stream) first: freeing one moves
  // no granule.
  if (release_plain(bytes) >= bytes) return true;
  const uint64_t beyond = beyond_limit(bytes);
  const uint64_t short_by = beyond != 0 ? beyond : bytes;  // 0: the device itself said no
  const size_t want = size_t((short_by + granule_ - 1) / granule_);
  std::vector<GranuleRun> runs;
  const size_t got = reclaim(want, runs);
  source_.release_runs(runs, granule_, Pool::kLarge);
  return got == want;
}

bool GranuleSupply::obtain(size_t n, Pool pool, std::vector<GranuleRun>& out, uint64_t requesting) {
  idle_.reset();
  std::vector<GranuleRun>& remapped = remapped_;  // counted under the large pool
  remapped.clear();
  size_t reclaimed = 0;
  // Under remap:always and remap:pressure growth stays within the limit, so
  // when the limit leaves no room for the rest, this has already gathered
  // every granule there is to remap.
  size_t refused = 0, reclaimable_refused = 0;
  bool bought = false;
  if (const size_t grow = growth_allowed(n, requesting); grow < n) {
    const size_t want = n - grow;
    bought = !capturing_ && buys_instead(requesting);
    const size_t allowed = bought ? 0 : capturing_ ? want : remaps_allowed(want);
    // Past the budget, or bought out as remapping that recurs, granules are
    // created instead where the limit leaves room for all of them; else the
    // rule gives way (no failure for it).
    // What is refused is at most what the cache holds (a bound on what
    // could have been remapped).
    if (allowed < want && n - allowed <= source_.room(granule_)) {
      const LiveStats& stats = source_.stats();
      const int64_t cached = stats.reserved_bytes.current_all() - stats.allocated_bytes.current_all();
      refused = want - allowed;
      reclaimable_refused = std::min<size_t>(refused, size_t(std::max<int64_t>(0, cached)) / granule_);
    }
    reclaimed += reclaim(want - refused, remapped);
  }
  // New ones are made only when the limit leaves room for all the rest, so a
  // request that fails creates none; they count under `pool` at once.
  std::vector<GranuleRun>& created = created_;
  created.clear();
  const size_t rest = n - reclaimed;
  // Empty plain slabs hold memory no remap can take: given back when the
  // limit is short, rather than the whole cache at the out-of-memory retry.
  release_plain_for(rest);
  size_t made = rest > 0 && rest <= source_.room(granule_) ? source_.create_many(granule_, rest, pool, created) : 0;
  // The device had less than the limit, or the limit less than the rest:
  // remapping is the only way left, and what it finds may leave a rest the
  // limit has room for.
  if (reclaimed + made < n && config_.remap != VmmConfig::Remap::kNever) {
    reclaimed += reclaim(n - reclaimed - made, remapped);
    if (const size_t left = n - std::min(n, reclaimed + made); left > 0 && left <= source_.room(granule_))
      made += source_.create_many(granule_, left, pool, created);
  }
  if (reclaimed + made < n) {
    source_.release_runs(remapped, granule_, Pool::kLarge);
    source_.release_runs(created, granule_, pool);
    return false;
  }
  if (pool != Pool::kLarge && reclaimed > 0) source_.transfer(reclaimed * granule_, Pool::kLarge, pool);
  // Counted in device granules, as every VmmCounts figure.
  VmmCounts& counts = source_.stats().vmm;
  const int64_t units = int64_t(granule_ / std::max<uint64_t>(1, backend_.vmm_granularity()));
  counts.remapped += int64_t(reclaimed) * units;
  (bought ? counts.remap_bought : counts.remap_refused) += int64_t(std::min(reclaimable_refused, made)) * units;
  // Remaps the budget had to give way to (a full device) are a debt the
  // refill pays back.
  credit_ -= remap_cost(reclaimed);
  // New first, then remapped: the order the pages are mapped in.
  out.insert(out.end(), created.begin(), created.end());
  out.insert(out.end(), remapped.begin(), remapped.end());
  return true;
}

}  // namespace hbmalloc::hbm
