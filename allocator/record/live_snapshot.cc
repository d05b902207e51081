#include "record/live_snapshot.h"

#include <algorithm>

namespace hbmalloc::trace {

std::vector<SegmentInfo> picture_of(const Layout& layout) {
  std::vector<SegmentInfo> out;
  out.reserve(layout.size());
  for (const SegmentLayout& seg : layout) {
    SegmentInfo s;
    s.addr = seg.addr;
    s.size = seg.size;
    s.stream = seg.stream;
    s.small_pool = seg.pool == Pool::kSmall;
    for (const BlockLayout& b : seg.blocks)
      s.blocks.push_back(BlockInfo{kNoBlock, b.addr, b.size, b.requested, seg.stream,
                                   b.allocated ? BlockState::kActiveAllocated : BlockState::kInactive});
    out.push_back(std::move(s));
  }
  return out;
}

Trace live_trace(std::vector<std::pair<int, Layout>> devices) {
  std::sort(devices.begin(), devices.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  Trace t;
  t.format = "hbmalloc-live";
  t.recorder = "hbmalloc";
  for (const auto& [number, layout] : devices) {
    DeviceTrace d;
    d.device = number;
    d.segments_at_end = picture_of(layout);
    d.has_segment_picture = true;
    t.devices.push_back(std::move(d));
  }
  return t;
}

}  // namespace hbmalloc::trace
