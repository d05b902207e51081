#include "policy/cca/expandable_segment.h"

namespace hbmalloc::cca {

ExpandableSegment::ExpandableSegment(GranuleSource& granules, uint64_t page_size, uint64_t pages, Pool pool)
    : granules_(granules), page_(page_size), pages_(pages), pool_(pool) {
  base_ = reinterpret_cast<uintptr_t>(granules_.reserve_range(size()));
}

ExpandableSegment::~ExpandableSegment() {
  if (base_ == 0) return;
  for (uint64_t i = 0; i < handles_.size(); ++i)
    if (handles_[i] != 0) unmap(base_ + i * page_, page_);
  granules_.release_range(reinterpret_cast<void*>(base_), size());
}

PageRange ExpandableSegment::map(uintptr_t addr, uint64_t bytes) {
  const uint64_t begin = (addr - base_) / page_;
  const uint64_t end = (addr + bytes - base_ + page_ - 1) / page_;
  if (handles_.size() < end) handles_.resize(end, 0);
  // As PyTorch: every page's memory first (all or none), then the mappings, then access.
  if (!granules_.create_all(end - begin, page_, pool_, handles_.data() + begin)) return {base_ + begin * page_, 0};
  for (uint64_t i = begin; i < end; ++i) granules_.map(reinterpret_cast<void*>(base_ + i * page_), handles_[i], page_);
  granules_.set_access(reinterpret_cast<void*>(base_ + begin * page_), (end - begin) * page_);
  mapped_ += end - begin;
  return {base_ + begin * page_, (end - begin) * page_};
}

PageRange ExpandableSegment::unmap(uintptr_t addr, uint64_t bytes) {
  const uint64_t begin = (addr - base_ + page_ - 1) / page_;
  const uint64_t end = (addr + bytes - base_) / page_;
  if (begin >= end) return {addr, 0};
  granules_.unmap(reinterpret_cast<void*>(base_ + begin * page_), (end - begin) * page_);
  for (uint64_t i = begin; i < end; ++i) {
    granules_.release(handles_[i], page_, pool_);
    handles_[i] = 0;
  }
  mapped_ -= end - begin;
  return {base_ + begin * page_, (end - begin) * page_};
}

}  // namespace hbmalloc::cca
