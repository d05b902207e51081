// The hbm policy's large path: best fit over free blocks of the request's
// stream (an ordered index, O(log n)), splitting on allocation and coalescing
// with free neighbours on free. Segments are sized to the request, rounded to
// segment_round, so the unused tail of a segment stays under one rounding unit
// and remains splittable.
#pragma once

#include <cstdint>
#include <functional>

#include "absl/container/btree_map.h"
#include "core/object_pool.h"
#include "policy/hbm/block.h"
#include "policy/hbm/free_index.h"
#include "policy/policy.h"
#include "policy/segment_source.h"

namespace hbmalloc {

class LargePool {
 public:
  static constexpr uint64_t kRound = 512;  // block sizes are multiples of this

  LargePool(uint64_t segment_round, SegmentSource& source);

  // A block of at least `size` bytes, or nullptr when no segment could be had.
  Block* allocate(uint64_t size, StreamId stream);
  void free(Block* block);

  // The block (free or not) covering addr, or nullptr.
  const Block* block_at(uintptr_t addr) const;
  uint64_t release_cached();
  uint64_t largest_free_block() const;
  void check(PoolTally& tally) const;
  // Appends each segment with its blocks (requested bytes from `requested_of`).
  void append_layout(Layout& out, const std::function<uint64_t(uintptr_t)>& requested_of) const;

 private:
  Block* new_segment(uint64_t size, StreamId stream);
  void account_inactive(const Block* b, int sign);

  uint64_t segment_round_;
  SegmentSource& source_;
  ObjectPool<Block> blocks_;
  ObjectPool<LargeSegment> segments_;
  FreeIndex free_;
  absl::btree_map<uintptr_t, Block*> segment_heads_;  // segment base -> its first block
};

}  // namespace hbmalloc
