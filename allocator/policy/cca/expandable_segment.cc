#include "policy/cca/expandable_segment.h"

namespace hbmalloc::cca {

PageRange ExpandableSegment::map(uintptr_t addr, uint64_t bytes, SegmentSource& source) {
  const uint64_t begin = (addr - base) / page;
  const uint64_t end = (addr + bytes - base + page - 1) / page;
  if (handles_.size() < end) handles_.resize(end, nullptr);
  for (uint64_t i = begin; i < end; ++i) {
    handles_[i] = source.take_page(page);
    if (handles_[i] != nullptr) continue;
    for (uint64_t j = begin; j < i; ++j) {  // out of memory: undo the pages taken so far
      source.give_page(handles_[j], page);
      handles_[j] = nullptr;
    }
    return {base + begin * page, 0};
  }
  mapped += end - begin;
  return {base + begin * page, (end - begin) * page};
}

PageRange ExpandableSegment::unmap(uintptr_t addr, uint64_t bytes, SegmentSource& source) {
  const uint64_t begin = (addr - base + page - 1) / page;
  const uint64_t end = (addr + bytes - base) / page;
  if (begin >= end) return {addr, 0};
  for (uint64_t i = begin; i < end; ++i) {
    source.give_page(handles_[i], page);
    handles_[i] = nullptr;
  }
  mapped -= end - begin;
  return {base + begin * page, (end - begin) * page};
}

void ExpandableSegment::release_all(SegmentSource& source) {
  for (void*& h : handles_)
    if (h != nullptr) {
      source.give_page(h, page);
      h = nullptr;
    }
  mapped = 0;
}

}  // namespace hbmalloc::cca
