#include "policy/hbm/hbm_policy.h"

#include <algorithm>
#include <string>
#include <vector>

#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"

namespace hbmalloc::hbm {

namespace {
// Address space reserved per arena: twice what the device holds (it costs
// nothing), so a stream rarely needs a second one, up to 16 TiB, so even on
// the largest devices the sim's 2 PiB window fits an arena for each of 100
// streams and more (a larger request gets an arena of its own size).
uint64_t arena_size(const Backend& backend) {
  constexpr uint64_t kMin = uint64_t(64) << 30, kUnlimited = uint64_t(1) << 40, kMax = uint64_t(1) << 44;
  const uint64_t capacity = std::min(backend.capacity(), kMaxDeviceBytes);
  return capacity == 0 ? kUnlimited : std::clamp(2 * capacity, kMin, kMax);
}
// Mid-size blocks rarely hold much of a device: a sixteenth of a large
// arena (a full one is followed by another), so streams' two arenas still fit the window.
uint64_t mid_arena_size(const Backend& backend) {
  return std::max(uint64_t(64) << 30, arena_size(backend) / 16);
}
}  // namespace

std::unique_ptr<GranuleSupply> HbmPolicy::make_supply(const Config& config, Backend& backend,
                                                      GranuleSource& granules, StreamFences& fences) {
  const uint64_t device_granule = granules.granularity();
  if (!config.vmm.enabled || device_granule == 0) return nullptr;  // plain segments
  if (config.vmm.granule_size % device_granule != 0)
    throw Error(ErrorCode::kConfig, "granule_size: " + std::to_string(config.vmm.granule_size) +
                                        " is not a multiple of the " + std::string(backend.name()) +
                                        " device's granularity " + std::to_string(device_granule));
  return std::make_unique<GranuleSupply>(granules, backend, fences, config.vmm);
}

HbmPolicy::HbmPolicy(const Config& config, Backend& backend, LiveStats& stats)
    : source_(backend, stats),
      granules_(backend, source_),
      fences_(backend, stats),
      supply_(make_supply(config, backend, granules_, fences_)),
      slabs_(config.small_size, config.slab_size, source_, supply_.get(), this),
      mid_size_(config.mid_size),
      mid_(Pool::kSmall, source_, config.segment_round, supply_.get(), mid_arena_size(backend), fences_),
      large_(Pool::kLarge, source_, config.segment_round, supply_.get(), arena_size(backend), fences_) {
  // Empty slabs go first: whole granules, no large block cut; then the mid
  // pool's free pages, which a burst of small blocks leaves behind.
  if (supply_) {
    supply_->add_reclaimer(&slabs_);
    supply_->add_reclaimer(&mid_);
    supply_->add_reclaimer(&large_);
  }
}

// Hosted slabs go back before the mid pool gives its pages to the device.
HbmPolicy::~HbmPolicy() { slabs_.give_back_hosted(); }

uintptr_t HbmPolicy::take_slab(uint64_t bytes, StreamId stream) {
  const Block* b = mid_.allocate(bytes, stream);
  return b != nullptr ? b->addr : 0;
}

void HbmPolicy::give_slab(uintptr_t base) { mid_.free(const_cast<Block*>(mid_.block_at(base))); }

LiveBlock HbmPolicy::describe(const Live& live) {
  if (live.holder == Holder::kSlot) {
    const Slab* slab = static_cast<const Slab*>(live.owner);
    return {live.requested, slab->slot_size, Pool::kSmall, slab->stream};
  }
  const Block* block = static_cast<const Block*>(live.owner);
  return {live.requested, block->size, live.pool(), block->stream};
}

// Inlined: it is the tail of every large allocation.
[[gnu::always_inline]] inline Allocation HbmPolicy::handed_out(Block* block, uint64_t size, bool mid) {
  if (block == nullptr) return {};
  const Live live{size, block, 0, mid ? Holder::kMid : Holder::kLarge};
  live_.insert(block->addr, live);
  return {reinterpret_cast<void*>(block->addr), block->size, live.pool()};
}

Allocation HbmPolicy::allocate(uint64_t size, StreamId stream) {
  fences_.allocating(stream);
  if (size <= slabs_.max_size()) {
    SlabPool::Slot slot = slabs_.allocate(slabs_.class_of(size), stream);
    if (slot.slab == nullptr) [[unlikely]] return from_cache(size, stream);
    uintptr_t addr = slot.addr();
    live_.insert(addr, Live{size, slot.slab, slot.index, Holder::kSlot});
    return {reinterpret_cast<void*>(addr), slot.slab->slot_size, Pool::kSmall};
  }
  if (size <= mid_size_) {
    // A mapped large-pool hole of mid size holds no large request on its own:
    // filling it costs the large requests nothing the mid pool would not.
    if (Block* b = large_.allocate_in_crevice(size, stream, mid_size_)) return handed_out(b, size, false);
    if (Block* b = mid_.allocate(size, stream)) [[likely]] return handed_out(b, size, true);
  } else if (Block* b = large_.allocate(size, stream)) [[likely]] {
    return handed_out(b, size, false);
  }
  return from_cache(size, stream);
}

// The request's own pool (or slab) could not grow, the limit or the device
// full: a cached free block of either pool may still hold it, better than an
// out-of-memory. (The own pool's best fit was tried already; trying it again
// here costs a lookup on this slow path only.)
Allocation HbmPolicy::from_cache(uint64_t size, StreamId stream) {
  if (Block* b = mid_.allocate(size, stream, /*may_grow=*/false)) return handed_out(b, size, true);
  return handed_out(large_.allocate(size, stream, /*may_grow=*/false), size, false);
}


Allocation HbmPolicy::allocate_at(uint64_t addr, uint64_t size, uint64_t requested) {
  fences_.none();
  if (slabs_.slab_at(addr) != nullptr) {
    SlabPool::Slot slot = slabs_.take_at(addr, size);
    if (slot.slab != nullptr) {
      live_.insert(addr, Live{requested, slot.slab, slot.index, Holder::kSlot});
      return {reinterpret_cast<void*>(addr), slot.slab->slot_size, Pool::kSmall};
    }
  }
  // A mid block checkpointed where an empty slab now lies on the mid pool:
  // the slab gives its block back first.
  slabs_.give_back_empty_hosted(addr, size);
  if (Block* block = large_.take_at(addr, size)) return handed_out(block, requested, false);
  if (Block* block = mid_.take_at(addr, size)) return handed_out(block, requested, true);
  throw Error(ErrorCode::kInvalidArgument, "hbm: no free memory holds " + std::to_string(size) + " bytes at " +
                                               std::to_string(addr) + " (the checkpoint's segment is gone or in use)");
}

FreeStatus HbmPolicy::free(void* ptr, int64_t expected_requested, LiveBlock& out) {
  uintptr_t addr = reinterpret_cast<uintptr_t>(ptr);
  Live* found = live_.find(addr);
  if (found == nullptr) return FreeStatus::kNotLive;
  const Live live = *found;
  out = describe(live);
  if (expected_requested >= 0 && uint64_t(expected_requested) != live.requested) return FreeStatus::kSizeMismatch;
  live_.erase_found(found);
  if (live.holder == Holder::kSlot) slabs_.free(static_cast<Slab*>(live.owner), live.slot);
  else pool_of(live).free(static_cast<Block*>(live.owner));
  return FreeStatus::kOk;
}

bool HbmPolicy::find(void* ptr, LiveBlock& out) const {
  const Live* live = live_.find(reinterpret_cast<uintptr_t>(ptr));
  if (live == nullptr) return false;
  out = describe(*live);
  return true;
}

ErrorCode HbmPolicy::classify_bad_pointer(void* ptr) const {
  uintptr_t addr = reinterpret_cast<uintptr_t>(ptr);
  if (const Slab* slab = slabs_.slab_at(addr)) {
    uint64_t offset = addr - slab->base;
    uint64_t index = offset / slab->slot_size;
    if (offset % slab->slot_size == 0 && index < slab->slots && slab->free.is_free(uint32_t(index)))
      return ErrorCode::kDoubleFree;
    return ErrorCode::kUnknownPointer;
  }
  for (const LargePool* pool : {&mid_, &large_})
    if (const Block* block = pool->block_at(addr); block && block->is_free()) return ErrorCode::kDoubleFree;
  return ErrorCode::kUnknownPointer;
}

uint64_t HbmPolicy::release_cached() {
  fences_.none();
  return slabs_.release_cached() + mid_.release_cached() + large_.release_cached();
}

uint64_t HbmPolicy::largest_free_block() const {
  return std::max({slabs_.largest_free_block(), mid_.largest_free_block(), large_.largest_free_block()});
}

Tally HbmPolicy::check() const {
  Tally tally;
  std::vector<GranuleRun> granules;
  std::vector<const Block*> allocated;
  slabs_.check(tally.of(Pool::kSmall), granules);
  mid_.check(tally.of(Pool::kSmall), allocated, granules);
  large_.check(tally.of(Pool::kLarge), allocated, granules);
  // A hosted slab is an allocated mid block, its bytes and slots already
  // counted with the slab: not again as the mid pool's.
  PoolTally& small = tally.of(Pool::kSmall);
  slabs_.for_each_hosted([&](const Slab& slab) {
    const Block* b = mid_.block_at(slab.base);
    if (b == nullptr || b->addr != slab.base || b->size != slabs_.slab_size() || !b->allocated())
      throw Error(ErrorCode::kInvariant, "slab at " + std::to_string(slab.base) + ": not an allocated mid block of its size");
    --small.in_use;
    small.reserved -= int64_t(b->size);
  });
  std::sort(allocated.begin(), allocated.end(), [](const Block* a, const Block* b) { return a->addr < b->addr; });
  if (supply_) {
    // Each granule is mapped in one place only, so no two blocks share physical memory.
    std::sort(granules.begin(), granules.end(), [](const GranuleRun& a, const GranuleRun& b) { return a.first < b.first; });
    auto dup = std::adjacent_find(granules.begin(), granules.end(),
                                  [](const GranuleRun& a, const GranuleRun& b) { return b.first < a.end(); });
    if (dup != granules.end())
      throw Error(ErrorCode::kInvariant, "granule " + std::to_string(std::next(dup)->first) + " is mapped or pooled twice");
  }
  // Every live pointer is an in-use slot or an allocated block at that address.
  live_.for_each([&](uintptr_t addr, const Live& live) {
    std::string at = "live pointer " + std::to_string(addr);
    if (live.holder == Holder::kSlot) {
      const Slab* slab = static_cast<const Slab*>(live.owner);
      if (slabs_.slab_at(addr) != slab || slab->base + uint64_t(live.slot) * slab->slot_size != addr ||
          slab->free.is_free(live.slot))
        throw Error(ErrorCode::kInvariant, at + ": not an in-use slot of its slab");
      if (live.requested > slab->slot_size) throw Error(ErrorCode::kInvariant, at + ": slot smaller than request");
    } else {
      const Block* block = static_cast<const Block*>(live.owner);
      auto it = std::lower_bound(allocated.begin(), allocated.end(), addr,
                                 [](const Block* b, uintptr_t a) { return b->addr < a; });
      if (it == allocated.end() || *it != block || block->addr != addr || !block->allocated())
        throw Error(ErrorCode::kInvariant, at + ": not an allocated block at that address");
      if ((mid_.block_at(addr) == block) != (live.holder == Holder::kMid))
        throw Error(ErrorCode::kInvariant, at + ": its block is not in the pool the pointer names");
      if (live.requested > block->size) throw Error(ErrorCode::kInvariant, at + ": block smaller than request");
    }
    LiveBlock d = describe(live);
    PoolTally& t = tally.of(live.pool());
    ++t.blocks;
    t.allocated_bytes += int64_t(d.allocated);
    t.requested_bytes += int64_t(d.requested);
  });
  // Used slots and allocated blocks are exactly the live pointers.
  for (Pool pool : {Pool::kSmall, Pool::kLarge}) {
    const PoolTally& t = tally.of(pool);
    if (t.in_use != t.blocks)
      throw Error(ErrorCode::kInvariant, std::string(pool == Pool::kSmall ? "small" : "large") + " pool: " +
                                             std::to_string(t.in_use) + " blocks in use but " +
                                             std::to_string(t.blocks) + " live pointers");
  }
  return tally;
}

Layout HbmPolicy::layout() const {
  auto requested_of = [this](uintptr_t addr) {
    const Live* live = live_.find(addr);
    return live ? live->requested : 0;
  };
  Layout out;
  slabs_.append_layout(out, requested_of);
  const size_t mid_from = out.size();
  mid_.append_layout(out, requested_of);
  // A hosted slab shows as its slots, within the mid pool's segment.
  for (size_t i = mid_from; i < out.size(); ++i) {
    std::vector<BlockLayout> blocks;
    for (const BlockLayout& b : out[i].blocks) {
      const Slab* slab = b.allocated ? slabs_.slab_at(b.addr) : nullptr;
      if (slab != nullptr && slab->hosted && slab->base == b.addr) slabs_.append_blocks(*slab, blocks, requested_of);
      else blocks.push_back(b);
    }
    out[i].blocks = std::move(blocks);
  }
  large_.append_layout(out, requested_of);
  std::sort(out.begin(), out.end(),
            [](const SegmentLayout& a, const SegmentLayout& b) { return a.addr < b.addr; });
  return out;
}

}  // namespace hbmalloc::hbm
