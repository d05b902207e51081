#include "report/snapshot_layout.h"

#include <algorithm>

#include "hbmalloc/error.hpp"
#include "report/format.h"

namespace hbmalloc::report {

// The pages PyTorch maps an expandable segment in (kSmallBuffer, and
// kLargeBuffer, the default large segment size); a snapshot records neither.
constexpr uint64_t kSmallPoolPage = 2ull << 20, kLargePoolPage = 20ull << 20;

Layout layout_of_snapshot(const std::string& source, const trace::DeviceTrace& device) {
  const std::string where = source + ": device " + std::to_string(device.device);
  auto bad = [&](const std::string& what) -> Error { return Error(ErrorCode::kInvalidArgument, where + ": " + what); };

  std::vector<const trace::SegmentInfo*> segments;
  for (const trace::SegmentInfo& s : device.segments_at_end) segments.push_back(&s);
  std::sort(segments.begin(), segments.end(), [](auto* a, auto* b) { return a->addr < b->addr; });

  Layout layout;
  uint64_t end_of_previous = 0;
  for (const trace::SegmentInfo* s : segments) {
    const std::string at = "segment at " + hex(s->addr);
    if (s->size == 0) throw bad(at + " has size 0");
    if (s->addr > UINT64_MAX - s->size) throw bad(at + " runs past the end of the address space");
    if (s->addr < end_of_previous) throw bad(at + " overlaps the previous segment");
    const uint64_t end = s->addr + s->size;
    end_of_previous = end;

    SegmentLayout seg{s->addr, s->size, s->small_pool ? Pool::kSmall : Pool::kLarge, s->stream, {},
                      s->expandable ? (s->small_pool ? kSmallPoolPage : kLargePoolPage) : 0};
    std::vector<const trace::BlockInfo*> blocks;
    for (const trace::BlockInfo& b : s->blocks) blocks.push_back(&b);
    std::stable_sort(blocks.begin(), blocks.end(), [](auto* a, auto* b) { return a->addr < b->addr; });
    uint64_t cursor = s->addr;
    for (const trace::BlockInfo* b : blocks) {
      uint64_t size = occupied_bytes(*b);
      if (size == 0) continue;
      const std::string block_at = at + ": block at " + hex(b->addr);
      if (b->addr < cursor) throw bad(block_at + " overlaps the previous block or starts before the segment");
      if (b->addr > end || size > end - b->addr) throw bad(block_at + " runs past the end of its segment");
      bool allocated = b->state != trace::BlockState::kInactive;
      if (allocated && b->requested > size)
        throw bad(block_at + " requests " + std::to_string(b->requested) + " bytes but occupies " + std::to_string(size));
      if (b->addr > cursor) seg.blocks.push_back({cursor, b->addr - cursor, 0, false});
      seg.blocks.push_back({b->addr, size, allocated ? b->requested : 0, allocated});
      cursor = b->addr + size;
    }
    if (cursor < end) seg.blocks.push_back({cursor, end - cursor, 0, false});
    layout.push_back(std::move(seg));
  }
  return layout;
}

}  // namespace hbmalloc::report
