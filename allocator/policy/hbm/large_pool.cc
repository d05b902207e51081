#include "policy/hbm/large_pool.h"

#include <algorithm>
#include <bit>
#include <string>

#include "core/helpers.h"
#include "hbmalloc/error.hpp"

namespace hbmalloc::hbm {

namespace {
}  // namespace

LargePool::LargePool(Pool pool, SegmentSource& source, uint64_t segment_round, GranuleSupply* supply,
                     uint64_t arena_size, StreamFences& fences)
    : segment_round_(segment_round),
      source_(source),
      supply_(supply),
      page_(supply ? supply->granule() : 0),
      page_shift_(std::countr_zero(page_)),
      arena_size_(supply ? round_up(arena_size, supply->granule()) : 0),
      fences_(fences),
      pool_(pool) {}

LargePool::~LargePool() {
  if (vmm()) {
    release_all_vmm();
    return;
  }
  // Plain segments go back too: an allocator destroyed with cached memory must
  // not keep the device's memory (live blocks die with it).
  for (const auto& [base, head] : segment_heads_) source_.release_at_exit(reinterpret_cast<void*>(base), head->segment->size);
}

Block* LargePool::new_segment(uint64_t size, StreamId stream) {
  uint64_t bytes = round_up(size, segment_round_);
  void* mem = source_.grow(bytes, pool_);
  if (mem == nullptr) return nullptr;
  return new_head(reinterpret_cast<uintptr_t>(mem), bytes, stream, BlockState::kFree);
}

Block* LargePool::new_head(uintptr_t base, uint64_t bytes, StreamId stream, BlockState state) {
  LargeSegment* seg = segments_.make(LargeSegment{base, bytes, stream, {}, {}});
  Block* b = blocks_.make();
  b->addr = base;
  b->size = bytes;
  b->stream = stream;
  b->state = state;
  b->backed = vmm() ? 0 : bytes;  // an arena starts with nothing mapped
  b->segment = seg;
  // Segments mostly come in rising address order: hinting the end skips the search.
  segment_heads_.emplace_hint(segment_heads_.end(), base, b);
  return b;
}

// Cuts b in two at first_size; the second part (in rest_state) is returned.
Block* LargePool::split_off(Block* b, uint64_t first_size, BlockState rest_state) {
  Block* rest = blocks_.make();
  rest->addr = b->addr + first_size;
  rest->size = b->size - first_size;
  rest->stream = b->stream;
  rest->freed_at = b->freed_at;
  rest->state = rest_state;
  rest->segment = b->segment;
  rest->prev = b;
  rest->next = b->next;
  if (b->next) b->next->prev = rest;
  b->next = rest;
  // Where b is wholly mapped or wholly not, so are both parts: no walk; else
  // the shorter part is read from the page table (an arena's free top is huge).
  if (b->backed == b->size) rest->backed = rest->size;
  else if (b->backed == 0) rest->backed = 0;
  else if (rest->size >= first_size) rest->backed = b->backed - mapped_bytes(b->segment, b->addr, first_size);
  else rest->backed = mapped_bytes(b->segment, rest->addr, rest->size);
  b->backed -= rest->backed;
  b->size = first_size;
  return rest;
}

// Takes b out of its neighbours' links (they are adjacent afterwards only in
// the sense that the caller grows one of them over b's bytes).
void LargePool::unlink_and_recycle(Block* b) {
  if (b->prev) b->prev->next = b->next;
  if (b->next) b->next->prev = b->prev;
  blocks_.recycle(b);
}

Block* LargePool::best_fit_of_all(StreamId stream, uint64_t size) {
  std::vector<Block*>& fits = fits_;
  fits.clear();
  free_.append_best_fits(size, fits);
  std::sort(fits.begin(), fits.end(),
            [](const Block* a, const Block* b) { return a->size != b->size ? a->size < b->size : a->addr < b->addr; });
  for (Block* b : fits) {
    if (b->stream != stream && !settled(b)) continue;  // its stream may still use it
    return b;
  }
  return nullptr;
}

template <typename Cut>
Block* LargePool::hand_out(Block* b, Cut&& cut) {
  account_inactive(b, -1);
  // A free neighbour left apart (another stream's, see coalesce) is split by
  // what b becomes.
  Block *before = b->prev, *after = b->next;
  const bool apart = (before && before->is_free()) || (after && after->is_free());
  if (apart) [[unlikely]] {
    account_inactive(before, -1);
    account_inactive(after, -1);
  }
  Block* taken = cut(b);
  if (apart) [[unlikely]] {
    account_inactive(before, +1);
    account_inactive(after, +1);
  }
  return taken;
}

Block* LargePool::allocate(uint64_t size, StreamId stream, bool may_grow) {
  uint64_t rounded = round_up(size, kRound);
  Block* b = take_best_fit(stream, rounded);
  if (b == nullptr) [[unlikely]] {
    if (!may_grow) return nullptr;
    b = vmm() ? new_arena(rounded, stream) : new_segment(rounded, stream);
    if (b == nullptr) return nullptr;
  }
  b = cut(b, rounded, stream);
  // Without may_grow only memory already mapped may serve.
  return b->backed == b->size ? b : ready_for_use(b, may_grow);
}

Block* LargePool::allocate_in_crevice(uint64_t size, StreamId stream, uint64_t largest) {
  const uint64_t rounded = round_up(size, kRound);
  Block* b = best_fit(stream, rounded);
  if (b == nullptr || b->size > largest || b->backed != b->size) return nullptr;
  free_.erase(b);
  return cut(b, rounded, stream);
}

Block* LargePool::cut(Block* b, uint64_t rounded, StreamId stream) {
  b = hand_out(b, [&](Block* block) {
    block->state = BlockState::kAllocated;  // before the remainder is counted: it is split because of it
    if (block->size > rounded) {  // the remainder stays free, right after the block, with the stream it had
      Block* rest = split_off(block, rounded, BlockState::kFree);
      free_.insert(rest);
      account_inactive(rest, +1);
    }
    return block;
  });
  b->stream = stream;
  return b;
}

Block* LargePool::ready_for_use(Block* b, bool may_map) {
  bool ok = false;
  try {
    ok = may_map && back(b);
  } catch (...) {
    give_back(b);
    throw;
  }
  if (ok) return b;
  give_back(b);  // the layout is as it was; what reclaim unmapped elsewhere stays unmapped
  return nullptr;
}

Block* LargePool::take_at(uintptr_t addr, uint64_t size) {
  Block* b = const_cast<Block*>(block_at(addr));
  if (b == nullptr || !b->is_free() || size == 0 || size % kRound != 0 || size > b->addr + b->size - addr)
    return nullptr;
  free_.erase(b);
  b = hand_out(b, [&](Block* block) {
    Block* front = nullptr;
    if (addr > block->addr) {
      front = block;
      block = split_off(front, addr - front->addr, BlockState::kFree);
    }
    Block* back_part = block->size > size ? split_off(block, size, BlockState::kFree) : nullptr;
    block->state = BlockState::kAllocated;  // before its neighbours are counted: they are split because of it
    for (Block* n : {front, back_part})
      if (n != nullptr) {
        free_.insert(n);
        account_inactive(n, +1);
      }
    return block;
  });
  return b->backed == b->size ? b : ready_for_use(b, true);
}

// Takes b's free neighbours out of the index and the inactive-split count,
// while b is still what made them split (or not).
void LargePool::detach_free_neighbours(const Block* b) {
  for (Block* n : {b->prev, b->next}) {
    if (n == nullptr || !n->is_free()) continue;
    account_inactive(n, -1);
    free_.erase(n);
  }
}

// Grows free block b over the free neighbours it may join, its immediate
// ones detached by the caller; one left apart (another stream's, that stream
// still busy) stays free beside it. The result keeps b's stream, so past a
// merge the next neighbour out is asked too.
Block* LargePool::coalesce(Block* b) {
  auto merge = [&](Block* n, bool detached) {
    if (!joins(n, b->stream)) {
      if (detached) {  // back as it was, beside b, now free
        free_.insert(n);
        account_inactive(n, +1);
      }
      return false;
    }
    if (!detached) {
      account_inactive(n, -1);
      free_.erase(n);
    }
    return true;
  };
  for (bool detached = true; b->prev && b->prev->is_free(); detached = false) {
    Block* p = b->prev;
    if (!merge(p, detached)) break;
    p->size += b->size;
    p->backed += b->backed;
    p->stream = b->stream;  // p's own stream is done with it
    p->freed_at = std::max(p->freed_at, b->freed_at);
    unlink_and_recycle(b);
    b = p;
  }
  for (bool detached = true; b->next && b->next->is_free(); detached = false) {
    Block* n = b->next;
    if (!merge(n, detached)) break;
    b->size += n->size;
    b->backed += n->backed;
    b->freed_at = std::max(b->freed_at, n->freed_at);
    unlink_and_recycle(n);
  }
  return b;
}

void LargePool::free(Block* b) {
  b->freed_at = fences_.freed(b->stream);
  if (history_) {  // from the first reclaim on: before it nothing reads the history
    const auto [first, end] = touched_pages(b->segment, b->addr, b->size);
    b->segment->use.touch(first, end, page_time(b->freed_at));  // past kMaxTime every free reads as the latest
  }
  give_back(b);
}

void LargePool::give_back(Block* b) {
  detach_free_neighbours(b);
  b->state = BlockState::kFree;
  b = coalesce(b);
  free_.insert(b);
  account_inactive(b, +1);
}

const Block* LargePool::block_at(uintptr_t addr) const {
  auto it = segment_heads_.upper_bound(addr);
  if (it == segment_heads_.begin()) return nullptr;
  --it;
  const Block* b = it->second;
  if (addr >= b->segment->base + b->segment->size) return nullptr;
  while (b && addr >= b->addr + b->size) b = b->next;
  return b;
}

void LargePool::rejoin_free() {
  if (fences_.capturing()) return;
  bool synced = false;
  for (const auto& [base, head] : segment_heads_)
    for (Block* b = head; b != nullptr; b = b->next)
      while (b->is_free() && b->next != nullptr && b->next->is_free()) {
        Block* n = b->next;
        if (!synced && n->stream != b->stream && !settled(b) && !settled(n)) {
          fences_.synchronize();  // as emptying a cache does anyway: now every block is settled
          synced = true;
        }
        // The joined block keeps the stream that may still use its part
        // (after the synchronization none does).
        const Block* keep = b;
        if (n->stream == b->stream) keep = n->freed_at > b->freed_at ? n : b;
        else if (!synced && settled(b)) keep = n;
        for (Block* x : {b, n}) {
          account_inactive(x, -1);
          free_.erase(x);
        }
        b->size += n->size;
        b->backed += n->backed;
        b->stream = keep->stream;
        b->freed_at = synced ? 0 : keep->freed_at;
        unlink_and_recycle(n);
        free_.insert(b);
        account_inactive(b, +1);
      }
}

uint64_t LargePool::release_cached() {
  uint64_t released = 0;
  rejoin_free();  // pages shared by two free blocks go back only as one block's
  if (vmm()) {  // every cached free page, unmapped as for a remap and given back
    StreamIdle& idle = supply_->idle();
    idle.reset();
    std::vector<GranuleRun> granules;
    unmap_cached(SIZE_MAX, granules, idle);
    supply_->source().release_runs(granules, page_, pool_);
    return granules_in(granules) * page_;
  }
  for (auto it = segment_heads_.begin(); it != segment_heads_.end();) {
    Block* b = it->second;
    if (!b->is_free() || b->next != nullptr) {
      ++it;
      continue;
    }
    LargeSegment* seg = b->segment;
    free_.erase(b);
    source_.release(reinterpret_cast<void*>(seg->base), seg->size, pool_);
    released += seg->size;
    blocks_.recycle(b);
    segments_.recycle(seg);
    it = segment_heads_.erase(it);
  }
  return released;
}

uint64_t LargePool::largest_free_block() const { return vmm() ? largest_backed_free() : free_.largest(); }

void LargePool::check(PoolTally& tally, std::vector<const Block*>& allocated, std::vector<GranuleRun>& granules) const {
  size_t free_blocks = 0;
  uintptr_t end_of_previous = 0;
  for (const auto& [base, head] : segment_heads_) {
    const LargeSegment* seg = head->segment;
    std::string where = (vmm() ? "arena at " : "segment at ") + std::to_string(base);
    if (seg == nullptr || seg->base != base || head->addr != base || head->prev != nullptr)
      violated(where + ": head block does not start the segment");
    if (base < end_of_previous) violated(where + ": overlaps the previous segment");
    end_of_previous = base + seg->size;
    // Blocks tile the segment: each starts where the previous ended.
    uintptr_t cursor = base;
    for (const Block* b = head; b; b = b->next) {
      std::string at = where + ", block at " + std::to_string(b->addr);
      if (b->segment != seg) violated(at + ": points to another segment");
      if (b->addr != cursor) violated(at + ": gap or overlap (expected " + std::to_string(cursor) + ")");
      if (b->size == 0 || b->size % kRound != 0) violated(at + ": size not a positive multiple of 512");
      if (b->next && b->next->prev != b) violated(at + ": broken back link");
      cursor += b->size;
      if (b->backed != (vmm() ? mapped_bytes(seg, b->addr, b->size) : b->size))
        violated(at + ": keeps " + std::to_string(b->backed) + " bytes as mapped, the pages say otherwise");
      if (b->allocated() && b->backed != b->size) violated(at + ": allocated, yet touches an unmapped page");
      if (b->allocated()) {
        if (b->inactive != 0) violated(at + ": allocated, yet counted as inactive split");
        ++tally.in_use;
        allocated.push_back(b);
        continue;
      }
      ++free_blocks;
      // Free neighbours stay apart only while one's stream may still use it.
      if (b->next && b->next->is_free() && b->next->stream == b->stream)
        violated(at + ": two free neighbours of one stream not coalesced");
      if (!free_.contains(b)) violated(at + ": free block missing from the index");
      // What release_cached could not give back: in an arena, the mapped
      // bytes outside the block's whole pages (walked in the page table).
      uint64_t stuck = 0;
      if (b->is_split()) {
        stuck = b->backed;
        if (vmm()) {
          const auto [first, end] = inner_pages(b);
          seg->pages.for_each_mapped_in(first, end, [&](uint64_t from, uint64_t to) { stuck -= (to - from) * page_; });
        }
        if (stuck > 0) {
          ++tally.inactive_split;
          tally.inactive_split_bytes += int64_t(stuck);
        }
      }
      if (vmm() && b->inactive != stuck)
        violated(at + ": " + std::to_string(b->inactive) + " inactive-split bytes counted, " + std::to_string(stuck) +
                 " on pages it shares");
    }
    if (cursor != base + seg->size) violated(where + ": blocks do not cover the segment");
    if (vmm()) {
      check_arena(head, tally, granules);
    } else {
      ++tally.segments;
      tally.reserved += int64_t(seg->size);
    }
  }
  if (!free_.consistent()) violated("free index: a bin is out of order, misplaced or disagrees with its bitmap");
  if (free_blocks != free_.size())
    violated("free index holds " + std::to_string(free_.size()) + " blocks, segments hold " +
             std::to_string(free_blocks));
}

void LargePool::append_layout(Layout& out, const std::function<uint64_t(uintptr_t)>& requested_of) const {
  for (const auto& [base, head] : segment_heads_) {
    if (vmm()) {
      append_arena(head, out, requested_of);
      continue;
    }
    SegmentLayout seg{base, head->segment->size, pool_, head->segment->stream, {}};
    for (const Block* b = head; b; b = b->next)
      seg.blocks.push_back({b->addr, b->size, b->allocated() ? requested_of(b->addr) : 0, b->allocated()});
    out.push_back(std::move(seg));
  }
}

}  // namespace hbmalloc::hbm
