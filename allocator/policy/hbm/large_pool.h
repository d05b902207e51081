// The hbm policy's large path: best fit (an ordered index, O(log n)) over
// the request's stream's free blocks and those of other streams whose work
// on them is done (StreamFences), splitting on allocation and coalescing with
// free neighbours on free; a free block another stream may still use stays
// apart from its neighbours until that stream's work is done. Streams do not
// keep memory from each other, so a job whose streams take turns (a pipeline's
// micro-batches) needs no more than one stream would. Two ways to get more
// memory:
//
// * plain segments (no VMM): a segment is the request rounded to
//   segment_round, so the unused tail of a segment stays under one rounding
//   unit and remains splittable;
// * page-mapped arenas (VMM, large_pool_vmm.cc): reserved address ranges
//   tiled by free and allocated blocks, a new arena starting as one free
//   block (made for a stream that finds no free block it may use). Where blocks go never depends on what is mapped: best
//   fit over the address space, as if nothing were ever unmapped (the
//   layout of `remap:never`, close to PyTorch's expandable segments). What
//   is mapped is decided apart: every page an allocated block touches is
//   mapped (granules from the GranuleSupply, remapped from the whole pages
//   of free blocks when the remap rule says so, else new), and a free block
//   keeps whatever is still mapped under it. Remapping then changes only
//   which pages hold memory, never where a later request lands, so a higher
//   pressure_threshold cannot lead the layout astray, and `remap:always`
//   holds exactly the pages live blocks touch at the worst moment.
//   Neighbouring blocks share the page where they meet. A "segment" is a
//   maximal run of mapped pages.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "core/object_pool.h"
#include "policy/hbm/block.h"
#include "policy/hbm/free_index.h"
#include "policy/hbm/granule_supply.h"
#include "policy/hbm/stream_fences.h"
#include "policy/policy.h"
#include "policy/segment_source.h"

namespace hbmalloc::hbm {

class LargePool final : public GranuleReclaimer {
 public:
  static constexpr uint64_t kRound = 512;  // block sizes are multiples of this

  // Without a supply: plain segments rounded to segment_round. With one:
  // page-mapped arenas of arena_size bytes (more for a larger request). Its
  // memory counts in the statistics of `pool`.
  LargePool(Pool pool, SegmentSource& source, uint64_t segment_round, GranuleSupply* supply, uint64_t arena_size,
            StreamFences& fences);
  ~LargePool() override;
  LargePool(const LargePool&) = delete;
  LargePool& operator=(const LargePool&) = delete;

  bool vmm() const { return supply_ != nullptr; }

  // A block of at least `size` bytes, or nullptr when no memory could be had
  // (or, without may_grow, when no cached free block fits).
  Block* allocate(uint64_t size, StreamId stream, bool may_grow = true);
  // A block of at least `size` bytes cut from the best-fit free block when
  // that block is at most `largest` bytes and all mapped, else nullptr (and
  // nothing changed).
  Block* allocate_in_crevice(uint64_t size, StreamId stream, uint64_t largest);
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
  // A new arena for the stream holding at least `size`, as one free block
  // (not indexed, nothing mapped); nullptr when no address space is left.
  Block* new_arena(uint64_t size, StreamId stream);
  // Maps every page allocated block b touches that is unmapped; false when
  // the granules could not be had (then nothing under b changed).
  bool back(Block* b);
  void settle_backed(Block* neighbour, int sign);
  // Maps granule runs at pages [first, first + count) of seg, in order.
  void map_pages(LargeSegment* seg, uint64_t first, uint64_t count, std::span<const GranuleRun> runs);
  // Unmaps pages [first, end) of seg (all mapped); their granules go to out.
  void unmap_pages(LargeSegment* seg, uint64_t first, uint64_t end, std::vector<GranuleRun>& out);
  // The pages [addr, addr + size) touches, as page indices [first, end) of seg.
  std::pair<uint64_t, uint64_t> touched_pages(const LargeSegment* seg, uintptr_t addr, uint64_t size) const {
    return {(addr - seg->base) >> page_shift_, ((addr + size - 1 - seg->base) >> page_shift_) + 1};
  }
  // Whole pages of a free block that no other block touches, as page indices [first, end) of its arena.
  std::pair<uint64_t, uint64_t> inner_pages(const Block* b) const {
    const uintptr_t base = b->segment->base;
    // Pages count from the arena's base, as in touched_pages.
    const uint64_t first = (b->addr - base + page_ - 1) >> page_shift_, end = (b->addr + b->size - base) >> page_shift_;
    return end > first ? std::pair{first, end} : std::pair<uint64_t, uint64_t>{0, 0};
  }
  // Bytes of [addr, addr + size) of seg on mapped pages, by the page table
  // (Block::backed keeps it for each block without a walk).
  uint64_t mapped_bytes(const LargeSegment* seg, uintptr_t addr, uint64_t size) const;
  // f(bytes) for each run of [addr, addr + size) on contiguous mapped pages, in order.
  template <typename F>
  void for_each_mapped_part(const LargeSegment* seg, uintptr_t addr, uint64_t size, F&& f) const {
    const auto [first, end] = touched_pages(seg, addr, size);
    seg->pages.for_each_mapped_in(first, end, [&](uint64_t from, uint64_t to) {
      f(std::min<uintptr_t>(addr + size, seg->base + to * page_) - std::max<uintptr_t>(addr, seg->base + from * page_));
    });
  }
  // b, allocated, with every page it touches mapped (mapping them only with
  // may_map); else b is freed again and nullptr returned.
  Block* ready_for_use(Block* b, bool may_map);
  // Free block b, out of the index, allocated to `stream` as a block of
  // `rounded` bytes; the rest stays free right after it.
  Block* cut(Block* b, uint64_t rounded, StreamId stream);
  void check_arena(const Block* head, PoolTally& tally, std::vector<GranuleRun>& granules) const;
  void append_arena(const Block* head, Layout& out, const std::function<uint64_t(uintptr_t)>& requested_of) const;
  uint64_t largest_backed_free() const;
  void release_all_vmm() noexcept;

  // --- both ---
  // Takes the best fit for `size` over every stream's free blocks, by (size,
  // address): the request's stream's own, or another stream's once the work
  // queued there is done (never waiting for it); nullptr when none fits.
  Block* take_best_fit(StreamId stream, uint64_t size) {
    // While a CUDA graph is captured no event may be queried: each stream
    // keeps to its own free blocks.
    if (fences_.capturing() || free_.only(stream)) [[likely]]
      return free_.take_best_fit(stream, size);
    Block* b = best_fit_of_all(stream, size);
    if (b != nullptr) free_.erase(b);
    return b;
  }
  // The block take_best_fit would take, left in the index.
  Block* best_fit(StreamId stream, uint64_t size) {
    if (fences_.capturing() || free_.only(stream)) [[likely]]
      return free_.best_fit(stream, size);
    return best_fit_of_all(stream, size);
  }
  Block* best_fit_of_all(StreamId stream, uint64_t size);
  // Whether free block b's own stream is done with it (another may take it).
  bool settled(const Block* b) { return !fences_.capturing() && fences_.settled(b->stream, b->freed_at); }
  // Whether a free block freed on `stream` may join free neighbour n.
  bool joins(const Block* n, StreamId stream) { return n->stream == stream || settled(n); }
  // Joins free neighbours left apart, synchronizing the device when their
  // streams' work is not known to be done.
  void rejoin_free();
  // Free blocks next to an allocated one are "inactive split", as in PyTorch:
  // memory that giving the cache back cannot release. A plain segment's free
  // bytes all count; in an arena only the mapped bytes on pages the block
  // shares with its neighbours (its whole pages are released, as expandable
  // segments' free pages are, which PyTorch counts as none).
  void account_inactive(Block* b, int sign) {
    if (b == nullptr) return;
    uint64_t bytes;
    if (vmm()) {
      // What was counted is taken back, so no page state need be read again.
      if (sign < 0) {
        bytes = std::exchange(b->inactive, 0);
      } else {
        if (!b->is_free() || !b->is_split()) return;
        b->inactive = uint32_t(bytes = shared_page_bytes(b));
      }
    } else {
      if (!b->is_free() || !b->is_split()) return;
      bytes = b->backed;
    }
    if (bytes == 0) return;
    LiveStats& stats = source_.stats();
    stats.inactive_split.add(pool_, sign);
    stats.inactive_split_bytes.add(pool_, sign * int64_t(bytes));
  }
  // Mapped bytes of free block b on the pages it shares with its neighbours
  // (VMM): at most its first and last page. Inline: every free and split
  // in an arena asks it.
  uint64_t shared_page_bytes(const Block* b) const {
    const auto [first, end] = inner_pages(b);
    if (first == end) return b->backed;  // no whole page: every byte shares one
    const LargeSegment* seg = b->segment;
    // A page shared with an allocated neighbour is mapped; with a free one
    // (kept apart for its stream), the page table says.
    auto mapped = [&](const Block* n, uint64_t page) { return (n && n->allocated()) || seg->pages.is_mapped(page); };
    const uintptr_t inner_lo = seg->base + (first << page_shift_), inner_hi = seg->base + (end << page_shift_);
    uint64_t bytes = 0;
    if (b->addr < inner_lo && mapped(b->prev, first - 1)) bytes += inner_lo - b->addr;
    if (b->addr + b->size > inner_hi && mapped(b->next, end)) bytes += b->addr + b->size - inner_hi;
    return bytes;
  }
  Block* split_off(Block* b, uint64_t first_size, BlockState rest_state);
  // Free block b, out of the index, serves a request: its inactive-split
  // bytes leave the count, cut(b) splits it (putting the free parts back)
  // and returns the part handed out, now allocated.
  template <typename Cut>
  Block* hand_out(Block* b, Cut&& cut);
  void unlink_and_recycle(Block* b);
  void detach_free_neighbours(const Block* b);
  Block* coalesce(Block* b);
  // free() without marking b's pages as used (b served no request).
  void give_back(Block* b);

  uint64_t segment_round_ = 0;
  SegmentSource& source_;
  GranuleSupply* supply_ = nullptr;
  uint64_t page_ = 0;
  int page_shift_ = 0;  // page_ is a power of two (granule_size is checked to be one)
  uint64_t arena_size_ = 0;
  ObjectPool<Block> blocks_;
  ObjectPool<LargeSegment> segments_;
  FreeIndex free_;
  // VMM: page histories (PageUse) are kept from the first reclaim on (before
  // it nothing reads them: a pool that never remaps pays nothing), their
  // clock counting frees from then: a free's page time is its StreamFences
  // stamp less history_base_, plus one.
  bool history_ = false;
  uint64_t history_base_ = 0;
  uint64_t page_time(uint64_t stamp) const { return std::min(stamp - history_base_ + 1, PageUse::kMaxTime); }
  // The stamp of the free at page time `t` (0: none since the history began,
  // kMaxTime: too late to tell).
  std::optional<uint64_t> stamp_at(uint64_t t) const {
    if (t == 0 || t >= PageUse::kMaxTime) return std::nullopt;
    return t + history_base_ - 1;
  }
  std::vector<GranuleRun> scratch_, piece_;           // VMM: granules being mapped
  std::vector<std::pair<uint64_t, uint64_t>> holes_;  // VMM: unmapped pages being mapped
  // VMM: pages [first, end) of a free block that a remap may take.
  struct Victim {
    uint64_t distance_class;  // bit width of these pages' reuse distance
    uintptr_t addr;     // of page `first`
    Block* block;
    uint64_t first, end;
    uint64_t freed_at;  // the StreamFences stamp of the latest free these pages were part of
  };
  std::vector<Victim> victims_;  // scratch of reclaim()
  // reclaim(), the granules in `out` still counted under pool_.
  size_t unmap_cached(size_t want, std::vector<GranuleRun>& out, StreamIdle& idle);
  absl::btree_map<uintptr_t, Block*> segment_heads_;  // segment (or arena) base -> its first block
  StreamFences& fences_;        // when another stream may take a free block
  const Pool pool_;             // the statistics its memory counts in
  std::vector<Block*> fits_;    // scratch of best_fit_of_all()
};

}  // namespace hbmalloc::hbm
