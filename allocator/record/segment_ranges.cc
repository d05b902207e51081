#include "record/segment_ranges.h"

namespace hbmalloc::trace {

bool SegmentRanges::overlaps(uint64_t addr, uint64_t size) const {
  auto it = ranges_.lower_bound(addr);
  if (it != ranges_.end() && (it->first == addr || it->first < addr + size)) return true;
  if (it != ranges_.begin()) {
    --it;
    if (it->first + it->second.size > addr) return true;
  }
  return false;
}

bool SegmentRanges::add(uint64_t addr, const Extent& e) {
  if (overlaps(addr, e.size)) return false;
  ranges_.emplace(addr, e);
  return true;
}

bool SegmentRanges::remove(uint64_t addr, uint64_t size) {
  auto it = ranges_.find(addr);
  if (it == ranges_.end() || it->second.size != size) return false;
  ranges_.erase(it);
  return true;
}

bool SegmentRanges::map(uint64_t addr, uint64_t size, const Extent& e) {
  if (overlaps(addr, size)) return false;
  const uint64_t end = addr + size;
  Extent merged = e;
  merged.size = size;
  uint64_t start = addr;
  auto right = ranges_.find(end);
  if (right != ranges_.end() && right->second.expandable) {
    merged = right->second;
    merged.size = size + right->second.size;
    ranges_.erase(right);
  }
  auto left = ranges_.lower_bound(addr);
  if (left != ranges_.begin()) {
    --left;
    if (left->second.expandable && left->first + left->second.size == addr) {
      start = left->first;
      const uint64_t total = left->second.size + merged.size;
      merged = left->second;
      merged.size = total;
      ranges_.erase(left);
    }
  }
  ranges_.emplace(start, merged);
  return true;
}

bool SegmentRanges::unmap(uint64_t addr, uint64_t size) {
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return false;
  --it;
  const uint64_t seg_addr = it->first;
  const Extent seg = it->second;
  const uint64_t end = addr + size;
  if (end > seg_addr + seg.size) return false;
  ranges_.erase(it);
  if (addr > seg_addr) {
    Extent left = seg;
    left.size = addr - seg_addr;
    ranges_.emplace(seg_addr, left);
  }
  if (end < seg_addr + seg.size) {
    Extent right = seg;
    right.size = seg_addr + seg.size - end;
    ranges_.emplace(end, right);
  }
  return true;
}

const std::pair<const uint64_t, SegmentRanges::Extent>* SegmentRanges::find(uint64_t addr) const {
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return nullptr;
  --it;
  return addr < it->first + it->second.size ? &*it : nullptr;
}

std::vector<SegmentInfo> SegmentRanges::segments() const {
  std::vector<SegmentInfo> out;
  out.reserve(ranges_.size());
  for (const auto& [addr, e] : ranges_) {
    SegmentInfo s;
    s.addr = addr;
    s.size = e.size;
    s.stream = e.stream;
    s.small_pool = e.small_pool;
    s.expandable = e.expandable;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace hbmalloc::trace
