// A picture of what an allocator holds: every segment and the blocks that
// tile it. Used by reports, snapshot export and the Python package.
#pragma once

#include <compare>
#include <cstdint>
#include <vector>

#include "hbmalloc/stats.hpp"
#include "hbmalloc/types.hpp"

namespace hbmalloc {

struct BlockLayout {
  uint64_t addr = 0;
  uint64_t size = 0;       // bytes the block occupies
  uint64_t requested = 0;  // 0 for free blocks
  bool allocated = false;  // handed out (or waiting on stream events)
};

struct SegmentLayout {
  uint64_t addr = 0;
  uint64_t size = 0;
  Pool pool = Pool::kLarge;
  uint64_t stream = 0;
  std::vector<BlockLayout> blocks;  // address order, covering [addr, addr + size)
  // A run of mapped pages (VMM) that grows and shrinks, mapped in pages of
  // this many bytes counted from addr (empty_cache unmaps the pages a free
  // block covers whole); 0 for a plain segment.
  uint64_t page_size = 0;
  PoolId private_pool{};  // {0, 0}: the default pool

  bool expandable() const { return page_size != 0; }
};

using Layout = std::vector<SegmentLayout>;

// A change to what the allocator reserves, as PyTorch's snapshots record it:
// a segment allocated or freed, or pages of an expandable segment mapped or
// unmapped (`addr` and `bytes` are the range).
enum class SegmentAction : uint8_t { kAlloc, kFree, kMap, kUnmap };
struct SegmentEvent {
  SegmentAction action = SegmentAction::kAlloc;
  uint64_t addr = 0;
  uint64_t bytes = 0;
};

}  // namespace hbmalloc
