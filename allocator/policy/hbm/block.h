// The hbm policy's large blocks: each segment (or, with VMM, each reserved
// arena) is tiled by blocks in address order, linked to their neighbours so a
// free can coalesce in O(1).
#pragma once

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "hbmalloc/layout.hpp"
#include "hbmalloc/types.hpp"
#include "policy/hbm/page_use.h"
#include "policy/page_table.h"

namespace hbmalloc::hbm {

struct Block;

// A plain segment, or a reserved virtual range whose pages are mapped on demand.
struct LargeSegment {
  uintptr_t base = 0;
  uint64_t size = 0;
  StreamId stream = 0;  // the stream it was made for (its blocks may serve others)
  // VMM arenas: the granules mapped at the pages from base, and when each
  // page was last given back by a freed block.
  PageTable pages;
  PageUse use;
};

enum class BlockState : uint8_t {
  kFree,       // in the free index (in a VMM arena, some or all of its pages may be unmapped)
  kAllocated,  // handed out (in a VMM arena, every page it touches is mapped)
};

struct Block {
  uintptr_t addr = 0;
  uint64_t size = 0;
  // Bytes on mapped pages (VMM arenas; plain segments: all of it). An
  // allocated block's are all of it.
  uint64_t backed = 0;
  // Allocated: the stream it serves. Free: the stream whose queued work may
  // still use it, so another stream takes it only once that work is done.
  StreamId stream = 0;
  // Free: the StreamFences stamp of its stream's free (0: no request used it yet).
  uint64_t freed_at = 0;
  BlockState state = BlockState::kFree;
  // VMM arenas, free: the inactive-split bytes counted for it (on pages it
  // shares; at most two pages of at most 1 GiB), taken back as counted.
  uint32_t inactive = 0;
  LargeSegment* segment = nullptr;
  Block* prev = nullptr;  // address-order neighbours within the segment
  Block* next = nullptr;

  bool allocated() const { return state == BlockState::kAllocated; }
  bool is_free() const { return state == BlockState::kFree; }
  // A free block next to an allocated one: it cannot be released while that
  // one lives ("inactive split" in PyTorch's words).
  bool is_split() const { return (prev && prev->allocated()) || (next && next->allocated()); }
};

}  // namespace hbmalloc::hbm
