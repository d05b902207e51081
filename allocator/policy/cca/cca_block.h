// The cca policy's blocks and block pools, shaped as PyTorch's: a segment is
// a chain of blocks in address order; each pool (small, large) keeps its free
// blocks ordered by (stream, size, address) for best fit, and, for expandable
// segments, its unmapped address ranges ordered by (stream, address).
#pragma once

#include <cstdint>

#include "absl/container/btree_set.h"
#include "hbmalloc/layout.hpp"
#include "hbmalloc/types.hpp"

namespace hbmalloc::cca {

class ExpandableSegment;
struct BlockPool;

// One cudaMalloc, or one expandable segment's reserved address range.
struct Segment {
  uintptr_t base = 0;
  uint64_t size = 0;
  BlockPool* pool = nullptr;
  struct Block* head = nullptr;             // the block at base
  ExpandableSegment* expandable = nullptr;  // null for a plain segment
};

struct Block {
  uintptr_t addr = 0;
  uint64_t size = 0;
  uint64_t requested = 0;  // while allocated
  StreamId stream = 0;
  BlockPool* pool = nullptr;
  Segment* segment = nullptr;
  bool allocated = false;
  bool mapped = true;  // false: an unmapped range of an expandable segment
  Block* prev = nullptr;  // address-order neighbours within the segment
  Block* next = nullptr;
  uint64_t gc_count_base = 0;  // the pool's free-block search count when cached

  bool is_split() const { return prev != nullptr || next != nullptr; }
  bool expandable() const { return segment->expandable != nullptr; }
};

// An ordered-set entry: the key fields are copied so a search never touches
// a Block; they must be erased before the block's size or address changes.
struct BlockKey {
  StreamId stream;
  uint64_t size;
  uintptr_t addr;
  Block* block;
};
struct BySize {
  bool operator()(const BlockKey& a, const BlockKey& b) const {
    if (a.stream != b.stream) return a.stream < b.stream;
    if (a.size != b.size) return a.size < b.size;
    return a.addr < b.addr;
  }
};
struct ByAddress {
  bool operator()(const BlockKey& a, const BlockKey& b) const {
    if (a.stream != b.stream) return a.stream < b.stream;
    return a.addr < b.addr;
  }
};

struct BlockPool {
  explicit BlockPool(bool small) : is_small(small) {}

  using Blocks = absl::btree_set<BlockKey, BySize>;
  using Unmapped = absl::btree_set<BlockKey, ByAddress>;
  static BlockKey key_of(const Block* b) { return {b->stream, b->size, b->addr, const_cast<Block*>(b)}; }

  // A free, mapped block joins the best-fit set (and starts its gc age).
  void insert(Block* b) {
    b->gc_count_base = free_block_searches;
    blocks.insert(key_of(b));
  }
  void erase(const Block* b) { blocks.erase(key_of(b)); }
  bool contains(const Block* b) const {
    auto it = blocks.find(key_of(b));
    return it != blocks.end() && it->block == b;
  }
  uint64_t gc_age(const Block* b) const { return free_block_searches - b->gc_count_base; }

  const bool is_small;
  Blocks blocks;      // free, mapped
  Unmapped unmapped;  // unmapped ranges of expandable segments
  uint64_t free_block_searches = 0;  // counted only while garbage collection is on
};

}  // namespace hbmalloc::cca
