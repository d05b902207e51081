// The hbm policy's large blocks: each segment is tiled by blocks in address
// order, linked to their neighbours so a free can coalesce in O(1).
#pragma once

#include <cstdint>

#include "hbmalloc/allocator.hpp"

namespace hbmalloc {

struct LargeSegment {
  uintptr_t base = 0;
  uint64_t size = 0;
};

struct Block {
  uintptr_t addr = 0;
  uint64_t size = 0;
  StreamId stream = 0;
  bool allocated = false;
  LargeSegment* segment = nullptr;
  Block* prev = nullptr;  // address-order neighbours within the segment
  Block* next = nullptr;
  bool is_split() const { return prev != nullptr || next != nullptr; }
};

}  // namespace hbmalloc
