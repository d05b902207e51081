// The hbm policy's large path: best fit over free blocks of the request's
// stream (an ordered index, O(log n)), splitting on allocation and coalescing
// with free neighbours on free. Two ways to get more memory:
//
// * plain segments (no VMM): a segment is the request rounded to
//   segment_round, so the unused tail of a segment stays under one rounding
//   unit and remains splittable;
// * page-mapped arenas (VMM, large_pool_vmm.cc): each stream has reserved
//   address ranges tiled by allocated, free and unmapped blocks; a request no
//   free block fits lands on an unmapped gap next to free blocks, whose pages
//   are mapped with granules from the GranuleSupply, remapped from other free
//   blocks when the remap rule says so. Neighbouring blocks share the granule
//   where they meet, so waste is bounded by partly used granules. A
//   "segment" is then a maximal run of mapped pages.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/container/btree_map.h"
#include "core/object_pool.h"
#include "policy/hbm/block.h"
#include "policy/hbm/free_index.h"
#include "policy/hbm/granule_supply.h"
#include "policy/policy.h"
#include "policy/segment_source.h"

namespace hbmalloc::hbm {

class LargePool final : public GranuleReclaimer {
 public:
  static constexpr uint64_t kRound = 512;  // block sizes are multiples of this

  // Without a supply: plain segments rounded to segment_round. With one:
  // page-mapped arenas of arena_size bytes (more for a larger request).
  LargePool(SegmentSource& source, uint64_t segment_round, GranuleSupply* supply, uint64_t arena_size);
  ~LargePool() override;
  LargePool(const LargePool&) = delete;
  LargePool& operator=(const LargePool&) = delete;

  bool vmm() const { return supply_ != nullptr; }

  // A block of at least `size` bytes, or nullptr when no memory could be had
  // (or, without may_grow, when no cached free block fits).
  Block* allocate(uint64_t size, StreamId stream, bool may_grow = true);
  void free(Block* block);
  // The block [addr, addr + size) carved out of the free block holding it
  // (size a multiple of kRound), or nullptr when no free block holds it.
  Block* take_at(uintptr_t addr, uint64_t size);

  // The block (free or not) covering addr, or nullptr.
  const Block* block_at(uintptr_t addr) const;
  uint64_t release_cached();
  uint64_t largest_free_block() const;
  // Walks every structure (throws Error(kInvariant)); adds what it holds to
  // tally, appends the allocated blocks (address order) and, with VMM, every
  // granule mapped.
  void check(PoolTally& tally, std::vector<const Block*>& allocated, std::vector<GranuleRun>& granules) const;
  // Appends each segment with its blocks (requested bytes from `requested_of`).
  void append_layout(Layout& out, const std::function<uint64_t(uintptr_t)>& requested_of) const;

  size_t reclaim(size_t want, std::vector<GranuleRun>& out, StreamIdle& idle) override;

 private:
  // --- plain segments ---
  Block* new_segment(uint64_t size, StreamId stream);
  // A new segment (or arena) of `bytes` at base, one block in `state` covering it.
  Block* new_head(uintptr_t base, uint64_t bytes, StreamId stream, BlockState state);

  // --- page-mapped arenas (large_pool_vmm.cc) ---
  struct Placement {
    Block* gap = nullptr;        // the unmapped block the request lands on
    uintptr_t from = 0, to = 0;  // the pages of it to map
  };
  Placement place(uint64_t size, StreamId stream) const;
  Block* new_arena(uint64_t size, StreamId stream);
  // Maps the pages of a placement for `size` and returns the free block
  // covering them, merged with its free neighbours and counted as a free
  // block (not indexed); nullptr when no granules could be had.
  Block* grow_mapped(uint64_t size, StreamId stream);
  // Unmaps [from, to) (whole pages) of free block v; its granules go to out.
  void unmap_pages(Block* v, uintptr_t from, uintptr_t to, std::vector<GranuleRun>* out);
  // Indexes an unmapped block, first merging it with unmapped neighbours.
  void settle_gap(Block* gap);
  // An unmapped block enters / leaves the gap index, or is / stops being its arena's top.
  void index_gap(Block* gap);
  void unindex_gap(Block* gap);
  // Whole pages of a free block that no other block touches, as [from, to).
  std::pair<uintptr_t, uintptr_t> stealable(uintptr_t addr, uint64_t size) const;
  void check_arena(const Block* head, PoolTally& tally, std::vector<GranuleRun>& granules) const;
  void release_all_vmm() noexcept;

  // --- both ---
  // Free blocks next to an allocated one are "inactive split", as in PyTorch.
  void account_inactive(const Block* b, int sign) {
    if (b == nullptr || !b->is_free() || !b->is_split()) return;
    LiveStats& stats = source_.stats();
    stats.inactive_split.add(Pool::kLarge, sign);
    stats.inactive_split_bytes.add(Pool::kLarge, sign * int64_t(b->size));
  }
  Block* split_off(Block* b, uint64_t first_size, BlockState rest_state);
  void unlink_and_recycle(Block* b);
  void detach_free_neighbours(const Block* b);
  Block* coalesce(Block* b);

  uint64_t segment_round_ = 0;
  SegmentSource& source_;
  GranuleSupply* supply_ = nullptr;
  uint64_t page_ = 0;
  uint64_t arena_size_ = 0;
  ObjectPool<Block> blocks_;
  ObjectPool<LargeSegment> segments_;
  FreeIndex free_;
  FreeIndex gaps_;                                    // VMM: unmapped blocks but the arenas' tops
  absl::btree_map<StreamId, std::vector<LargeSegment*>> arenas_;  // VMM: each stream's arenas
  const Block* placing_ = nullptr;                    // VMM: the gap a request is landing on
  std::vector<GranuleRun> scratch_;                   // VMM: granules being mapped
  absl::btree_map<uintptr_t, Block*> segment_heads_;  // segment (or arena) base -> its first block
};

}  // namespace hbmalloc::hbm
