// The segments a recording allocator holds, as disjoint address ranges, with
// the edits its segment events make: whole segments come and go
// (segment_alloc / segment_free), expandable ones grow and shrink by mapped
// ranges (segment_map / segment_unmap). Readers walk it backwards from a
// final picture, writers forwards from a start picture.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "record/trace.h"

namespace hbmalloc::trace {

class SegmentRanges {
 public:
  struct Extent {
    uint64_t size = 0;
    uint64_t stream = 0;
    bool small_pool = false;
    bool expandable = false;
  };

  // Each returns false, changing nothing, when the edit does not fit the
  // current ranges (a corrupt trace). Ranges must not wrap around 2^64.
  bool add(uint64_t addr, const Extent& e);                // a whole new segment
  bool remove(uint64_t addr, uint64_t size);               // exactly that segment
  bool map(uint64_t addr, uint64_t size, const Extent& e);  // joined to expandable neighbours
  bool unmap(uint64_t addr, uint64_t size);                 // cut out of the segment holding it

  // Segments in address order, without blocks.
  std::vector<SegmentInfo> segments() const;
  // The segment holding `addr`, or nullptr.
  const std::pair<const uint64_t, Extent>* find(uint64_t addr) const;

 private:
  bool overlaps(uint64_t addr, uint64_t size) const;
  std::map<uint64_t, Extent> ranges_;
};

// PyTorch's small pool allocates 2 MiB segments and its large pool never
// does, so a segment's pool can be told from its size when nothing else says.
constexpr uint64_t kSmallPoolSegment = 2ull << 20;

}  // namespace hbmalloc::trace
