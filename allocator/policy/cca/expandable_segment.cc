#include "policy/cca/expandable_segment.h"

namespace hbmalloc::cca {

ExpandableSegment::ExpandableSegment(GranuleSource& granules, uint64_t page_size, uint64_t pages, Pool pool)
    : granules_(granules), page_(page_size), pages_(pages), pool_(pool) {
  base_ = reinterpret_cast<uintptr_t>(granules_.reserve_range(size()));
}

ExpandableSegment::~ExpandableSegment() {
  if (base_ == 0) return;
  std::vector<std::pair<uint64_t, uint64_t>> stretches;
  table_.for_each_stretch([&](uint64_t first, uint64_t n) { stretches.emplace_back(first, n); });
  for (auto [first, n] : stretches) unmap(base_ + first * page_, n * page_);
  granules_.release_range(reinterpret_cast<void*>(base_), size());
}

PageRange ExpandableSegment::map(uintptr_t addr, uint64_t bytes) {
  const uint64_t begin = (addr - base_) / page_;
  const uint64_t end = (addr + bytes - base_ + page_ - 1) / page_;
  // As PyTorch: every page's memory first (all or none), then the mappings, then access.
  const GranuleRun run = granules_.create_all(end - begin, page_, pool_);
  if (run.count == 0) return {base_ + begin * page_, 0};
  try {
    granules_.map_with_access(reinterpret_cast<void*>(base_ + begin * page_), {&run, 1}, page_);
  } catch (...) {
    granules_.release_runs({&run, 1}, page_, pool_);
    throw;
  }
  table_.map(begin, run);
  return {base_ + begin * page_, (end - begin) * page_};
}

PageRange ExpandableSegment::unmap(uintptr_t addr, uint64_t bytes) {
  const uint64_t begin = (addr - base_ + page_ - 1) / page_;
  const uint64_t end = (addr + bytes - base_) / page_;
  if (begin >= end) return {addr, 0};
  granules_.unmap(reinterpret_cast<void*>(base_ + begin * page_), (end - begin) * page_);
  std::vector<GranuleRun> freed;
  table_.unmap(begin, end - begin, freed);
  granules_.release_runs(freed, page_, pool_);
  return {base_ + begin * page_, (end - begin) * page_};
}

}  // namespace hbmalloc::cca
