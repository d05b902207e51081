// The hbm policy's small path: size-class slabs carved from slab_size chunks
// (one small-pool segment each). A slot is found with two bitmap scans. With
// VMM (a GranuleSupply whose granule is slab_size) each slab is one granule
// mapped into a reserved range, and empty slabs give their granules up to
// the large path when it remaps.
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
  SlotBitmap free;
};

class SlabPool final : public GranuleReclaimer {
 public:
  // supply: slabs sit on its granules when they are slab_size (else, and
  // without one, on plain segments).
  SlabPool(uint64_t max_size, uint64_t slab_size, SegmentSource& source, GranuleSupply* supply);
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
  // each slab's granule.
  void check(PoolTally& tally, std::vector<GranuleRun>& granules) const;
  // Appends each slab as a small-pool segment: used slots one block each
  // (requested bytes from `requested_of`), runs of free slots and the tail
  // past the last slot as free blocks; a wholly free slab is one free block.
  void append_layout(Layout& out, const std::function<uint64_t(uintptr_t)>& requested_of) const;

  // Empty slabs (other lists first, then the spares) give their granules up.
  size_t reclaim(size_t want, std::vector<GranuleRun>& out, StreamIdle& idle) override;
  // Plain slabs beside the arenas: empty ones (other lists first, then the
  // spares) go back to the device.
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
  // A fresh slab's memory: a segment, or a granule mapped at a free address.
  uintptr_t new_memory(GranuleId& granule);
  // Gives an empty slab's memory up: its granule goes to `out` (unmapped,
  // counted under the large pool) or, without `out`, back to the device.
  void drop(Slab* slab, std::vector<GranuleRun>* out);
  uintptr_t take_address();
  // Takes up to `want` empty slabs out of their lists (the empty lists first,
  // then the spares: those save reformatting on the next alloc/free pair)
  // and hands each to give(stream, slab); returns how many.
  size_t take_empty(size_t want, absl::FunctionRef<void(StreamId, Slab*)> give);
  void release_all_vmm() noexcept;
  void format(Slab* slab, int cls);
  // A slab's free slots are "inactive split" while any of its slots is in
  // use: they cannot be released, as PyTorch's split free blocks cannot.
  void account_inactive(const Slab* slab, int64_t delta_slots) {
    LiveStats& stats = source_.stats();
    stats.inactive_split.add(Pool::kSmall, delta_slots);
    stats.inactive_split_bytes.add(Pool::kSmall, delta_slots * int64_t(slab->slot_size));
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
  std::vector<uintptr_t> free_addresses_;  // slab-sized holes in the reserved ranges
  uintptr_t next_address_ = 0, end_address_ = 0;
  std::vector<std::pair<uintptr_t, uint64_t>> ranges_;  // reserved for slabs
};

}  // namespace hbmalloc::hbm
