// The cca policy: PyTorch's CUDACachingAllocator (c10/cuda/
// CUDACachingAllocator.cpp, newest release) rule for rule, so that replaying
// a snapshot reproduces the segments PyTorch itself allocated and freed, and
// so that its knobs can be tuned offline. One device, the default pool only
// (no CUDA graph private pools).
//
// The malloc order is PyTorch's: best fit in the request's pool and stream;
// else garbage collection (when on), a new segment, releasing oversize
// cached blocks (when max_split_size_mb is set) and a new segment again; the
// Allocator then synchronises, releases every cached segment and calls
// allocate_after_release, which tries a new segment once more.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/btree_map.h"
#include "core/object_pool.h"
#include "core/pointer_map.h"
#include "policy/cca/cca_block.h"
#include "policy/cca/cca_config.h"
#include "policy/cca/expandable_segment.h"
#include "policy/granule_source.h"
#include "policy/policy.h"
#include "policy/segment_source.h"

namespace hbmalloc::cca {

class CcaPolicy final : public Policy {
 public:
  CcaPolicy(const Config& config, Backend& backend, LiveStats& stats);
  // Gives every plain segment back to the device (expandable ones go with
  // their ExpandableSegment).
  ~CcaPolicy() override;

  Allocation allocate(uint64_t size, StreamId stream) override;
  Allocation allocate_after_release(uint64_t size, StreamId stream) override;
  FreeStatus free(void* ptr, int64_t expected_requested, LiveBlock& out) override;
  bool find(void* ptr, LiveBlock& out) const override;
  Allocation allocate_at(uint64_t addr, uint64_t size, uint64_t requested) override;
  ErrorCode classify_bad_pointer(void* ptr) const override;
  uint64_t release_cached() override;
  void set_limit(uint64_t bytes) override;
  uint64_t largest_free_block() const override;
  Tally check() const override;
  Layout layout() const override;
  std::vector<Allocation> adopt(const Layout& start) override;

  const CcaConfig& settings() const { return cfg_; }

 private:
  // One malloc in flight (PyTorch's AllocParams).
  struct Request {
    uint64_t size = 0;        // rounded
    StreamId stream = 0;
    BlockPool* pool = nullptr;
    uint64_t alloc_size = 0;  // a new segment's size
    Block* block = nullptr;   // found or made, out of every set
  };
  Request request_for(uint64_t size, StreamId stream);
  Allocation hand_out(Request& r, uint64_t requested);

  bool get_free_block(Request& r);
  bool alloc_block(Request& r);
  bool release_available_cached_blocks(const Request& r);
  void garbage_collect_cached_blocks();
  void release_blocks(BlockPool& pool);
  void release_block(Block* b);
  void free_block(Block* b);
  uint64_t try_merge(Block* dst, Block* src);

  // Expandable segments (pages mapped into a reserved range on demand).
  Block* try_allocate_expandable_block(Request& r);
  Block* find_expandable_block(const Request& r);
  bool map_block(Block* to_map, uint64_t size);
  void unmap_block(Block* b);
  void release_expandable_segment(Block* b);

  // A start and its undoing: no observer is told of either (ReplayHooks::adopt).
  std::vector<Allocation> adopt_segments(const Layout& start);
  void forget_everything();  // after a failed adopt: plain segments only

  Segment* new_segment(uintptr_t base, uint64_t size, BlockPool* pool, ExpandableSegment* expandable);
  Block* new_block(uintptr_t addr, uint64_t size, StreamId stream, BlockPool* pool, Segment* seg);
  void drop_segment(Segment* seg);
  void link_after(Block* b, Block* before, Block* after);
  // PyTorch keeps an allowed maximum only for a limit below the device (a
  // memory fraction below 1); garbage collection runs only then.
  std::optional<uint64_t> allowed_max() const;
  bool gc_on() const { return cfg_.garbage_collection_threshold > 0.0 && allowed_max().has_value(); }
  uint64_t reserved() const;
  // Free split blocks of plain segments are PyTorch's "inactive split".
  void account_inactive(const Block* b, int sign);
  static Pool pool_of(const BlockPool& p) { return p.is_small ? Pool::kSmall : Pool::kLarge; }
  const Block* block_at(uintptr_t addr) const;
  void check_segment(const Segment* seg, Tally& tally, size_t& free_blocks, size_t& unmapped_blocks) const;

  CcaConfig cfg_;
  Backend& backend_;  // synchronised before pages are unmapped, as PyTorch does
  SegmentSource source_;
  GranuleSource granules_;
  const uint64_t capacity_;  // 0: unlimited
  BlockPool small_{true};
  BlockPool large_{false};
  ObjectPool<Block> blocks_;
  ObjectPool<Segment> segments_;
  std::vector<std::unique_ptr<ExpandableSegment>> expandable_;
  absl::btree_map<uintptr_t, Segment*> by_base_;  // every segment, by its first address
  PointerMap<Block*> live_;                      // allocated blocks by address
};

}  // namespace hbmalloc::cca
