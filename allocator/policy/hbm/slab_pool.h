// The hbm policy's small path: size-class slabs carved from slab_size chunks.
// A slot is found with two bitmap scans. A slab's memory is, by setup:
// * with VMM and slabs of the granule's size: one granule mapped into a
//   reserved range; empty slabs give their granules up when the large path
//   remaps;
// * beside page-mapped arenas (smaller slabs): a block of a SlabHost (the
//   mid pool), so small and mid-size blocks share pages as in PyTorch's small
//   pool, else, where the host has no memory, a plain segment;
// * otherwise a plain segment (one small-pool segment each).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/functional/function_ref.h"
#include "core/object_pool.h"
#include "core/per_stream.h"
#include "core/size_classes.h"
#include "core/slot_bitmap.h"
#include "policy/hbm/granule_supply.h"
#include "policy/policy.h"
#include "policy/segment_source.h"

namespace hbmalloc::hbm {

struct Slab {
  uintptr_t base = 0;
  StreamId stream = 0;
  int cls = 0;
  uint64_t slot_size = 0;
  uint32_t slots = 0;
  uint32_t used = 0;
  Slab* prev = nullptr;  // neighbours in the partial list or the empty list
  Slab* next = nullptr;
  GranuleId granule = 0;  // VMM: the granule mapped at base
  bool hosted = false;    // a block of the SlabHost
  SlotBitmap free;
};

// Memory for slabs inside another pool's pages, a pool whose bytes count in
// the small pool's statistics (hbm's mid pool), so a slab moves none.
class SlabHost {
 public:
  virtual ~SlabHost() = default;
  // The address of a mapped block of `bytes` for a slab of `stream`, or 0.
  virtual uintptr_t take_slab(uint64_t bytes, StreamId stream) = 0;
  // The block at base, taken for a slab, is free again.
  virtual void give_slab(uintptr_t base) = 0;
};

class SlabPool final : public GranuleReclaimer {
 public:
  // supply: slabs sit on its granules when they are slab_size; else, with a
  // supply and a host, on the host's blocks first; else on plain segments.
  SlabPool(uint64_t max_size, uint64_t slab_size, SegmentSource& source, GranuleSupply* supply,
           SlabHost* host = nullptr);
  ~SlabPool() override;
  SlabPool(const SlabPool&) = delete;
  SlabPool& operator=(const SlabPool&) = delete;

  int class_of(uint64_t size) const { return SizeClasses::index_of(size); }
  uint64_t max_size() const { return classes_.max_size(); }

  struct Slot {
    Slab* slab = nullptr;  // nullptr: no slab could be had
    uint32_t index = 0;
    uintptr_t addr() const { return slab->base + index * slab->slot_size; }
  };
  Slot allocate(int cls, StreamId stream);
  void free(Slab* slab, uint32_t index);
  // The slot at addr of a slab of the class whose slots are `size` bytes (an
  // empty slab is formatted to it), or {} when the slot is not free there.
  Slot take_at(uintptr_t addr, uint64_t size);

  // The slab holding addr, or nullptr.
  const Slab* slab_at(uintptr_t addr) const;
  uint64_t release_cached();
  uint64_t largest_free_block() const;
  // Structural checks; adds what the slabs hold to tally (live slots are
  // counted by the caller, which owns the live map) and, with VMM, appends
  // each slab's granule. A hosted slab's bytes count as reserved, and no
  // segment: they lie in the host's.
  void check(PoolTally& tally, std::vector<GranuleRun>& granules) const;
  // f(slab) for each slab on a host's block, in address order.
  void for_each_hosted(absl::FunctionRef<void(const Slab&)> f) const;
  uint64_t slab_size() const { return slab_size_; }
  // Appends each slab not hosted as a small-pool segment of the blocks
  // append_blocks gives it.
  void append_layout(Layout& out, const std::function<uint64_t(uintptr_t)>& requested_of) const;
  // The blocks tiling a slab: used slots one block each (requested bytes
  // from `requested_of`), runs of free slots and the tail past the last slot
  // as free blocks; a wholly free slab is one free block.
  void append_blocks(const Slab& slab, std::vector<BlockLayout>& out,
                     const std::function<uint64_t(uintptr_t)>& requested_of) const;
  // Each empty hosted slab overlapping [addr, addr + size) goes back to its host.
  void give_back_empty_hosted(uintptr_t addr, uint64_t size);
  // Every hosted slab goes back to its host, live slots and all: the policy
  // is going away, and the host releases its pages after this.
  void give_back_hosted() noexcept;

  // Empty slabs (other lists first, then the spares) give their granules up;
  // beside the arenas, where the limit has no room for `want`, empty hosted
  // slabs give their blocks back to the host (and count no granule).
  size_t reclaim(size_t want, std::vector<GranuleRun>& out, StreamIdle& idle) override;
  // Plain slabs beside the arenas: empty ones (other lists first, then the
  // spares) go back to the device; hosted ones hold no segment of their own.
  uint64_t release_plain(uint64_t bytes, StreamIdle& idle) override;

 private:
  // A stream's slabs: per class, a list of slabs with free slots and one
  // spare empty slab (so an alloc/free pair does not reformat); beyond that,
  // empty slabs go to a list any class can take from.
  struct StreamSlabs {
    std::vector<Slab*> partial;
    std::vector<Slab*> spare;
    Slab* empty = nullptr;
  };
  StreamSlabs& slabs_of(StreamId stream) {
    return streams_.of(stream, [this](StreamSlabs& st) { prepare(st); });
  }
  // A stream's new slab lists: one entry per class.
  void prepare(StreamSlabs& st) const;
  Slab* new_slab(StreamId stream, int cls, StreamSlabs& st);
  // A fresh slab's memory for `stream`: a host's block (then `hosted`), a
  // segment, or a granule mapped at a free address.
  uintptr_t new_memory(StreamId stream, GranuleId& granule, bool& hosted);
  // Gives an empty slab's memory up: a hosted one to its host; its granule
  // to `out` (unmapped, counted under the large pool) or, without `out`,
  // back to the device.
  void drop(Slab* slab, std::vector<GranuleRun>* out);
  uintptr_t take_address();
  // Takes up to `want` empty slabs that `which` accepts out of their lists
  // (the empty lists first, then the spares: those save reformatting on the
  // next alloc/free pair) and hands each to give(stream, slab); returns how many.
  size_t take_empty(size_t want, absl::FunctionRef<bool(const Slab*)> which,
                    absl::FunctionRef<void(StreamId, Slab*)> give);
  void release_all_vmm() noexcept;
  void format(Slab* slab, int cls);
  // A slab's free slots are "inactive split" while any of its slots is in
  // use: they cannot be released, as PyTorch's split free blocks cannot. So
  // is the tail no slot fits (its bytes only), counted as the slab's first
  // slot is taken (tail +1) and its last given back (-1).
  void account_inactive(const Slab* slab, int64_t delta_slots, int tail = 0) {
    LiveStats& stats = source_.stats();
    stats.inactive_split.add(Pool::kSmall, delta_slots);
    stats.inactive_split_bytes.add(Pool::kSmall, delta_slots * int64_t(slab->slot_size) + tail * int64_t(tail_of(*slab)));
  }
  uint64_t tail_of(const Slab& slab) const { return slab_size_ - uint64_t(slab.slots) * slab.slot_size; }
  // An empty slab on a mid pool block counts as one free block of its size:
  // the layout shows it so beside the mid pool's blocks, and it holds its
  // part of the host's page until given back (+1 while empty, -1 after).
  void account_empty_hosted(const Slab* slab, int sign) {
    if (!slab->hosted) return;
    LiveStats& stats = source_.stats();
    stats.inactive_split.add(Pool::kSmall, sign);
    stats.inactive_split_bytes.add(Pool::kSmall, sign * int64_t(slab_size_));
  }
  // A slot taken (+1) or given back (-1) at slab, whose `used` is already updated.
  void account_use(const Slab* slab, int sign) {
    if (sign > 0) {
      if (slab->used == 1) {
        account_empty_hosted(slab, -1);
        account_inactive(slab, int64_t(slab->slots) - 1, +1);
      } else {
        account_inactive(slab, -1);
      }
    } else if (slab->used == 0) {
      account_inactive(slab, 1 - int64_t(slab->slots), -1);
      account_empty_hosted(slab, +1);
    } else {
      account_inactive(slab, 1);
    }
  }

  SizeClasses classes_;
  uint64_t slab_size_;
  SegmentSource& source_;
  ObjectPool<Slab> pool_;
  PerStream<StreamSlabs> streams_;
  absl::btree_map<uintptr_t, Slab*> by_base_;

  GranuleSupply* supply_ = nullptr;     // VMM only
  // Plain slabs beside page-mapped arenas: the arenas' supply, which gives
  // cached granules back when a slab finds the device full.
  GranuleSupply* arenas_ = nullptr;
  SlabHost* host_ = nullptr;  // beside the arenas only
  std::vector<uintptr_t> free_addresses_;  // slab-sized holes in the reserved ranges
  uintptr_t next_address_ = 0, end_address_ = 0;
  std::vector<std::pair<uintptr_t, uint64_t>> ranges_;  // reserved for slabs
};

}  // namespace hbmalloc::hbm
