// The large pool over page-mapped arenas (see large_pool.h): new arenas,
// mapping the pages an allocated block touches, unmapping the whole pages of
// free blocks for remapping or release, and the arena invariants and layout.
#include <algorithm>
#include <bit>
#include <string>

#include "core/helpers.h"
#include "hbmalloc/error.hpp"
#include "policy/hbm/large_pool.h"

namespace hbmalloc::hbm {

namespace {
void* ptr(uintptr_t addr) { return reinterpret_cast<void*>(addr); }
}  // namespace

Block* LargePool::new_arena(uint64_t size, StreamId stream) {
  uint64_t bytes = std::max(arena_size_, round_up(size, page_));
  void* base = supply_->source().reserve_range(bytes);
  if (base == nullptr) return nullptr;
  return new_head(reinterpret_cast<uintptr_t>(base), bytes, stream, BlockState::kFree);
}

uint64_t LargePool::mapped_bytes(const LargeSegment* seg, uintptr_t addr, uint64_t size) const {
  const uintptr_t end = addr + size;
  // No page unmapped below the last mapped one (no remap yet): no walk.
  if (const uint64_t top = seg->pages.end_page(); top == seg->pages.mapped_pages()) {
    const uintptr_t mapped_end = seg->base + top * page_;
    return end <= mapped_end ? size : addr >= mapped_end ? 0 : mapped_end - addr;
  }
  uint64_t bytes = 0;
  for_each_mapped_part(seg, addr, size, [&](uint64_t part) { bytes += part; });
  return bytes;
}

void LargePool::map_pages(LargeSegment* seg, uint64_t first, uint64_t count, std::span<const GranuleRun> runs) {
  supply_->source().map_with_access(ptr(seg->base + first * page_), runs, page_);
  const bool left = first > 0 && seg->pages.is_mapped(first - 1);
  const bool right = seg->pages.is_mapped(first + count);
  uint64_t page = first;
  for (const GranuleRun& run : runs) {
    seg->pages.map(page, run);
    page += run.count;
  }
  // A run of mapped pages is a segment: this one may join one or two.
  source_.stats().segment.add(pool_, 1 - int(left) - int(right));
}

void LargePool::unmap_pages(LargeSegment* seg, uint64_t first, uint64_t end, std::vector<GranuleRun>& out) {
  seg->pages.unmap(first, end - first, out);
  supply_->source().unmap(ptr(seg->base + first * page_), (end - first) * page_);
  const bool left = first > 0 && seg->pages.is_mapped(first - 1);
  const bool right = seg->pages.is_mapped(end);
  source_.stats().segment.add(pool_, int(left) + int(right) - 1);
}

// A free neighbour of a block being mapped: its inactive-split bytes out
// before (-1), and after (+1) its mapped bytes read again.
void LargePool::settle_backed(Block* n, int sign) {
  if (n == nullptr || !n->is_free()) return;
  if (sign > 0) n->backed = mapped_bytes(n->segment, n->addr, n->size);
  account_inactive(n, sign);
}

bool LargePool::back(Block* b) {
  LargeSegment* seg = b->segment;
  const auto [first, end] = touched_pages(seg, b->addr, b->size);
  // The unmapped stretches of [first, end), in order.
  std::vector<std::pair<uint64_t, uint64_t>>& holes = holes_;
  holes.clear();
  uint64_t cursor = first, wanted = 0;
  seg->pages.for_each_mapped_in(first, end, [&](uint64_t from, uint64_t to) {
    if (from > cursor) holes.emplace_back(cursor, from);
    cursor = to;
  });
  if (cursor < end) holes.emplace_back(cursor, end);
  for (const auto& [from, to] : holes) wanted += to - from;
  if (wanted == 0) return true;
  // b is allocated, so reclaim cannot take its pages, nor the pages it shares
  // with its free neighbours (they are not whole pages of a free block).
  scratch_.clear();
  if (!supply_->obtain(wanted, pool_, scratch_, b->size)) return false;
  // Mapping the pages at b's ends also maps bytes of its free neighbours.
  settle_backed(b->prev, -1);
  settle_backed(b->next, -1);
  std::vector<GranuleRun>& piece = piece_;
  size_t run = 0;
  uint64_t used = 0;  // granules of scratch_[run] already placed
  try {
    for (const auto& [from, to] : holes) {
      piece.clear();
      size_t next_run = run;
      uint64_t next_used = used;
      for (uint64_t need = to - from; need > 0;) {
        const GranuleRun& r = scratch_[next_run];
        const uint64_t take = std::min(need, r.count - next_used);
        piece.push_back(GranuleRun{r.first + next_used, take});
        need -= take;
        next_used += take;
        if (next_used == r.count) {
          ++next_run;
          next_used = 0;
        }
      }
      map_pages(seg, from, to - from, piece);  // all or nothing
      run = next_run;
      used = next_used;
    }
  } catch (...) {
    // The device refused: what was mapped stays (b frees normally), the
    // granules not mapped go back.
    std::vector<GranuleRun> rest;
    if (run < scratch_.size()) {
      rest.push_back(GranuleRun{scratch_[run].first + used, scratch_[run].count - used});
      rest.insert(rest.end(), scratch_.begin() + std::ptrdiff_t(run) + 1, scratch_.end());
    }
    supply_->source().release_runs(rest, page_, pool_);
    b->backed = mapped_bytes(seg, b->addr, b->size);
    settle_backed(b->prev, +1);
    settle_backed(b->next, +1);
    throw;
  }
  b->backed = b->size;
  settle_backed(b->prev, +1);
  settle_backed(b->next, +1);
  return true;
}

size_t LargePool::reclaim(size_t want, std::vector<GranuleRun>& out, StreamIdle& idle) {
  const size_t got = unmap_cached(want, out, idle);
  // Granules on their way to another pool count under the large pool.
  if (pool_ != Pool::kLarge && got > 0) supply_->source().transfer(got * page_, pool_, Pool::kLarge);
  return got;
}

size_t LargePool::unmap_cached(size_t want, std::vector<GranuleRun>& out, StreamIdle& idle) {
  if (!vmm() || want == 0) return 0;
  if (!history_) {  // free() keeps page histories from now on
    history_ = true;
    history_base_ = fences_.clock();
  }
  const uint64_t now = page_time(fences_.clock());
  // Pages of free blocks no allocated block touches, in stretches with one
  // history each.
  std::vector<Victim>& victims = victims_;
  victims.clear();
  uint64_t found = 0;
  free_.for_each_largest_first(0, [&](uint64_t size, uintptr_t, Block* b) {
    if (size < page_) return FreeIndex::kNextStream;
    if (b->backed < page_) return FreeIndex::kGoOn;  // no whole page of it can be mapped
    const auto [first, end] = inner_pages(b);
    const LargeSegment* seg = b->segment;
    auto candidates = [&](uint64_t from, uint64_t to) {
      seg->use.for_each_in(from, to, [&](uint64_t f, uint64_t t, const PageHistory& h) {
        // Pages freed since the history began were last part of the free
        // at h.last; older ones, of some free up to the block's own.
        victims.push_back({uint64_t(std::bit_width(h.reuse_distance(now))), seg->base + f * page_, b, f, t,
                           stamp_at(h.last).value_or(b->freed_at)});
        found += t - f;
      });
    };
    if (b->backed == b->size) candidates(first, end);  // all mapped: no page-table walk
    else seg->pages.for_each_mapped_in(first, end, candidates);
    return FreeIndex::kGoOn;
  });
  if (found > want) {
    // The longest reuse distance first (LIRS's order): pages used once long
    // ago go before those a repeating step uses. Distances within a factor
    // of two count as equal, and ties go from the highest address down: a
    // step too big to keep mapped loses the same pages each time, in few
    // stretches (and a request splitting a free block uses its start first).
    auto first_out = [](const Victim& a, const Victim& b) {
      return a.distance_class != b.distance_class ? a.distance_class > b.distance_class : a.addr > b.addr;
    };
    // Each stretch holds a page at least: the first `want` of them are enough.
    if (victims.size() > want) {
      std::nth_element(victims.begin(), victims.begin() + std::ptrdiff_t(want), victims.end(), first_out);
      victims.resize(want);
    }
    std::sort(victims.begin(), victims.end(), first_out);
    size_t kept = 0;
    for (uint64_t left = want; left > 0; ++kept) {
      Victim& v = victims[kept];
      if (v.end - v.first > left) v.first = v.end - left;
      left -= v.end - v.first;
    }
    victims.resize(kept);
  }
  // One unmap per stretch of a block, its inactive-split bytes settled once.
  std::sort(victims.begin(), victims.end(), [](const Victim& a, const Victim& b) { return a.addr < b.addr; });
  size_t got = 0;
  for (size_t i = 0; i < victims.size();) {
    Block* b = victims[i].block;
    LargeSegment* seg = b->segment;
    account_inactive(b, -1);
    for (; i < victims.size() && victims[i].block == b;) {
      const uint64_t first = victims[i].first;
      uint64_t end = victims[i].end, freed_at = victims[i].freed_at;
      for (++i; i < victims.size() && victims[i].block == b && victims[i].first == end; ++i) {
        end = victims[i].end;
        freed_at = std::max(freed_at, victims[i].freed_at);
      }
      // Only the work before these pages' own latest free must be done: a
      // recent free elsewhere in the block does not hold them.
      idle.ensure(b->stream, freed_at);
      unmap_pages(seg, first, end, out);
      b->backed -= (end - first) * page_;  // whole pages inside b
      got += end - first;
    }
    account_inactive(b, +1);
  }
  return got;
}

uint64_t LargePool::largest_backed_free() const {
  uint64_t largest = 0;
  free_.for_each_largest_first(0, [&](uint64_t size, uintptr_t addr, const Block* b) {
    if (size <= largest) return FreeIndex::kNextStream;
    for_each_mapped_part(b->segment, addr, size, [&](uint64_t part) { largest = std::max(largest, part); });
    return FreeIndex::kGoOn;
  });
  return largest;
}

void LargePool::check_arena(const Block* head, PoolTally& tally, std::vector<GranuleRun>& granules) const {
  // That every page an allocated block touches is mapped, check() has seen:
  // its kept mapped bytes are its size and agree with the page table.
  const LargeSegment* seg = head->segment;
  seg->pages.for_each_run([&](uint64_t, const GranuleRun& run) { granules.push_back(run); });
  tally.reserved += int64_t(seg->pages.mapped_pages() * page_);
  seg->pages.for_each_stretch([&](uint64_t, uint64_t) { ++tally.segments; });
}

void LargePool::append_arena(const Block* head, Layout& out,
                             const std::function<uint64_t(uintptr_t)>& requested_of) const {
  const LargeSegment* seg = head->segment;
  const Block* b = head;
  // Each stretch of mapped pages is a segment holding the parts of blocks on it.
  seg->pages.for_each_stretch([&](uint64_t first, uint64_t count) {
    const uintptr_t lo = seg->base + first * page_, hi = lo + count * page_;
    SegmentLayout s{lo, hi - lo, pool_, seg->stream, {}, page_};
    while (b && b->addr + b->size <= lo) b = b->next;
    for (const Block* c = b; c && c->addr < hi; c = c->next) {
      const uintptr_t from = std::max<uintptr_t>(c->addr, lo), to = std::min<uintptr_t>(c->addr + c->size, hi);
      s.blocks.push_back({from, to - from, c->allocated() ? requested_of(c->addr) : 0, c->allocated()});
    }
    out.push_back(std::move(s));
  });
}

void LargePool::release_all_vmm() noexcept {
  // The policy is going away: all memory goes back to the device. A failure
  // has no one left to tell.
  try {
    GranuleSource& source = supply_->source();
    std::vector<GranuleRun> runs;
    for (const auto& [base, head] : segment_heads_) {
      LargeSegment* seg = head->segment;
      seg->pages.for_each_stretch(
          [&](uint64_t first, uint64_t n) { source.unmap(ptr(seg->base + first * page_), n * page_); });
      runs.clear();
      seg->pages.for_each_run([&](uint64_t, const GranuleRun& run) { runs.push_back(run); });
      source.release_runs(runs, page_, pool_);
      source.release_range(ptr(seg->base), seg->size);
    }
  } catch (...) {
  }
}

}  // namespace hbmalloc::hbm
