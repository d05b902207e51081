#include "policy/hbm/granule_supply.h"

#include <algorithm>
#include <cmath>

namespace hbmalloc {

void StreamIdle::ensure(StreamId stream) {
  if (synced_ || std::find(settled_.begin(), settled_.end(), stream) != settled_.end()) return;
  EventId e = backend_.record_event(stream);
  bool done = backend_.event_done(e);
  backend_.release_event(e);
  if (!done) {
    backend_.synchronize();
    ++stats_.num_sync_all_streams;
    synced_ = true;  // every stream is idle now
    return;
  }
  settled_.push_back(stream);
}

GranuleSupply::GranuleSupply(GranuleSource& source, Backend& backend, const VmmConfig& config, uint64_t granule)
    : source_(source), config_(config), granule_(granule), idle_(backend, source.stats()) {}

size_t GranuleSupply::growth_allowed(size_t n) const {
  switch (config_.remap) {
    case VmmConfig::Remap::kAlways: return 0;
    case VmmConfig::Remap::kNever: return n;
    case VmmConfig::Remap::kPressure: break;
  }
  // Growing is allowed while it neither fills the device past the threshold
  // nor leaves the cache holding more than (1 - threshold) of reserved at the
  // allocated high-water mark: efficiency stays near the threshold and
  // granules move only when they must.
  const LiveStats& stats = source_.stats();
  const double theta = config_.pressure_threshold;
  const double reserved = double(stats.reserved_bytes.current_all());
  const double allocated_peak = std::max(double(stats.allocated_bytes.peak_all()),
                                         double(stats.allocated_bytes.current_all()) + double(n * granule_));
  const double ceiling = std::min(theta * double(source_.limit()), allocated_peak / theta);
  if (ceiling <= reserved) return 0;
  return size_t(std::min(double(n), std::floor((ceiling - reserved) / double(granule_))));
}

size_t GranuleSupply::reclaim(size_t want, std::vector<GranuleId>& out) {
  size_t got = 0;
  for (GranuleReclaimer* r : reclaimers_) {
    if (got >= want) break;
    got += r->reclaim(want - got, out, idle_);
  }
  return got;
}

bool GranuleSupply::obtain(size_t n, Pool pool, std::vector<GranuleId>& out) {
  idle_.reset();
  std::vector<GranuleId> remapped, created;  // counted under the large pool / under `pool`
  if (size_t grow = growth_allowed(n); grow < n) reclaim(n - grow, remapped);
  while (remapped.size() + created.size() < n) {
    GranuleId g = source_.create(granule_, pool);
    if (g == 0) break;
    created.push_back(g);
  }
  // Creating failed: remapping is the only way left (unless it is never).
  if (remapped.size() + created.size() < n && config_.remap != VmmConfig::Remap::kNever)
    reclaim(n - remapped.size() - created.size(), remapped);
  if (remapped.size() + created.size() < n) {
    for (GranuleId g : remapped) source_.release(g, granule_, Pool::kLarge);
    for (GranuleId g : created) source_.release(g, granule_, pool);
    return false;
  }
  if (pool != Pool::kLarge && !remapped.empty())
    source_.transfer(remapped.size() * granule_, Pool::kLarge, pool);
  out.insert(out.end(), remapped.begin(), remapped.end());
  out.insert(out.end(), created.begin(), created.end());
  return true;
}

}  // namespace hbmalloc
