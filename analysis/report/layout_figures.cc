#include "report/layout_figures.h"

#include <algorithm>
#include <utility>

namespace hbmalloc::report {

SegmentUse use_of(const SegmentLayout& segment) {
  SegmentUse u;
  u.addr = segment.addr;
  u.size = segment.size;
  u.pool = segment.pool;
  u.blocks = segment.blocks.size();
  for (const BlockLayout& b : segment.blocks) {
    if (b.allocated) {
      u.allocated += b.size;
      u.requested += b.requested;
    } else {
      ++u.free_blocks;
    }
  }
  u.utilization = segment.size ? double(u.allocated) / double(segment.size) : 0.0;
  return u;
}

uint64_t unreleasable_bytes(const SegmentLayout& seg, const BlockLayout& b) {
  const uint64_t page = seg.page_size;
  if (!seg.expandable()) return b.size;
  const uint64_t lo = b.addr - seg.addr, hi = lo + b.size;
  const uint64_t first = (lo + page - 1) / page, end = hi / page;  // the pages b covers whole
  return end > first ? b.size - (end - first) * page : b.size;
}

MomentFigures moment_of(const Layout& layout, std::string moment) {
  MomentFigures m;
  m.moment = std::move(moment);
  m.segments = layout.size();
  for (const SegmentLayout& seg : layout) {
    SegmentUse u = use_of(seg);
    m.reserved += seg.size;
    m.allocated += u.allocated;
    m.requested += u.requested;
    for (const BlockLayout& b : seg.blocks) {
      if (b.allocated) continue;
      m.largest_free_block = std::max(m.largest_free_block, b.size);
      if (u.allocated > 0) m.inactive_split_bytes += unreleasable_bytes(seg, b);
    }
  }
  m.cached_free = m.reserved > m.allocated ? m.reserved - m.allocated : 0;
  m.internal_fragmentation = m.allocated > m.requested ? m.allocated - m.requested : 0;
  m.external_fragmentation =
      m.cached_free ? std::max(0.0, 1.0 - double(m.largest_free_block) / double(m.cached_free)) : 0.0;
  return m;
}

std::vector<Hole> worst_holes(const Layout& layout, size_t n) {
  std::vector<Hole> holes;
  for (const SegmentLayout& seg : layout) {
    SegmentUse u = use_of(seg);
    if (u.allocated == 0) continue;  // a wholly free segment can be released: not a hole
    for (const BlockLayout& b : seg.blocks)
      if (!b.allocated) holes.push_back({b.addr, b.size, seg.addr, seg.size, u.utilization});
  }
  size_t keep = std::min(n, holes.size());
  std::partial_sort(holes.begin(), holes.begin() + long(keep), holes.end(), [](const Hole& a, const Hole& b) {
    return a.size != b.size ? a.size > b.size : a.addr < b.addr;
  });
  holes.resize(keep);
  return holes;
}

std::vector<SegmentUse> least_utilized(const Layout& layout, size_t n) {
  std::vector<SegmentUse> uses;
  uses.reserve(layout.size());
  for (const SegmentLayout& seg : layout)
    if (SegmentUse u = use_of(seg); u.allocated > 0) uses.push_back(u);
  size_t keep = std::min(n, uses.size());
  std::partial_sort(uses.begin(), uses.begin() + long(keep), uses.end(), [](const SegmentUse& a, const SegmentUse& b) {
    return a.utilization != b.utilization ? a.utilization < b.utilization : a.size > b.size;
  });
  uses.resize(keep);
  return uses;
}

}  // namespace hbmalloc::report
