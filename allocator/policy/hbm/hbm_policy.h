// hbmalloc's own policy: size-class slabs for small requests, best fit with
// splitting and coalescing for larger ones (mid-size blocks, up to mid_size,
// in a pool of their own), one map of live pointers. Where the
// backend has VMM (and vmm:on), large and mid-size blocks live on page-mapped
// arenas, all drawn from one GranuleSupply that remaps cached free granules
// instead of growing, and slabs on the mid pool's blocks (or on granules when
// they are a granule's size).
#pragma once

#include <cstdint>
#include <memory>

#include "core/pointer_map.h"
#include "policy/granule_source.h"
#include "policy/hbm/granule_supply.h"
#include "policy/hbm/large_pool.h"
#include "policy/hbm/slab_pool.h"
#include "policy/hbm/stream_fences.h"
#include "policy/policy.h"
#include "policy/segment_source.h"

namespace hbmalloc::hbm {

class HbmPolicy final : public Policy, private SlabHost {
 public:
  HbmPolicy(const Config& config, Backend& backend, LiveStats& stats);
  ~HbmPolicy() override;

  Allocation allocate(uint64_t size, StreamId stream) override;
  FreeStatus free(void* ptr, int64_t expected_requested, LiveBlock& out) override;
  bool find(void* ptr, LiveBlock& out) const override;
  Allocation allocate_at(uint64_t addr, uint64_t size, uint64_t requested) override;
  ErrorCode classify_bad_pointer(void* ptr) const override;
  uint64_t release_cached() override;
  void set_limit(uint64_t bytes) override { source_.set_limit(bytes); }
  void set_capturing(bool capturing) override {
    if (supply_) supply_->set_capturing(capturing);
    fences_.set_capturing(capturing);
  }
  // Whether large blocks are page-mapped (VMM) rather than plain segments.
  bool vmm() const { return supply_ != nullptr; }
  uint64_t largest_free_block() const override;
  Tally check() const override;
  Layout layout() const override;

 private:
  // What holds a live pointer.
  enum class Holder : uint8_t { kSlot, kMid, kLarge };
  // A live pointer: its slab slot, mid block or large block, and what was asked.
  struct Live {
    uint64_t requested;
    void* owner;  // Slab* (a slot) or Block*
    uint32_t slot;
    Holder holder;
    // Slots and mid blocks, PyTorch's blocks of up to 1 MiB, are the small pool.
    Pool pool() const { return holder == Holder::kLarge ? Pool::kLarge : Pool::kSmall; }
  };
  static LiveBlock describe(const Live& live);
  // A block of mid_ (mid) or large_ handed out for a request of `size` (nullptr: none).
  Allocation handed_out(Block* block, uint64_t size, bool mid);
  LargePool& pool_of(const Live& live) { return live.holder == Holder::kMid ? mid_ : large_; }
  Allocation from_cache(uint64_t size, StreamId stream);
  // SlabHost: a slab's memory is a mid pool block, so small and mid-size
  // blocks share pages as in PyTorch's small pool (a small_size slab beside
  // them held a partly used segment of its own).
  uintptr_t take_slab(uint64_t bytes, StreamId stream) override;
  void give_slab(uintptr_t base) override;

  // The supply is built before and outlives the pools that draw from it.
  static std::unique_ptr<GranuleSupply> make_supply(const Config& config, Backend& backend, GranuleSource& granules,
                                                    StreamFences& fences);

  SegmentSource source_;
  GranuleSource granules_;
  StreamFences fences_;
  std::unique_ptr<GranuleSupply> supply_;  // null: plain segments
  SlabPool slabs_;
  // Requests above the slabs' sizes up to mid_size_ go to mid_, larger ones
  // to large_: a long-lived block of a few hundred KiB left in a large hole
  // splits it, and the next large request of that size must grow instead.
  // (Over the shared snapshots scaled by 0.7 to 2.5, one pool for both was
  // worse than expandable segments in efficiency on 16 of 331 and in least
  // capacity on 4; apart, on none.)
  uint64_t mid_size_;
  LargePool mid_;
  LargePool large_;
  PointerMap<Live> live_;
};

}  // namespace hbmalloc::hbm
