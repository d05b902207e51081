// The large pool over page-mapped arenas (see large_pool.h): where a request
// no free block fits lands, how pages are mapped there, how cached free pages
// are unmapped for remapping or release, and the arena invariants.
#include <algorithm>
#include <string>

#include "core/helpers.h"
#include "hbmalloc/error.hpp"
#include "policy/hbm/large_pool.h"

namespace hbmalloc::hbm {

namespace {
void* ptr(uintptr_t addr) { return reinterpret_cast<void*>(addr); }
}  // namespace

std::pair<uintptr_t, uintptr_t> LargePool::stealable(uintptr_t addr, uint64_t size) const {
  uintptr_t from = round_up(addr, page_), to = (addr + size) / page_ * page_;
  return to > from ? std::pair{from, to} : std::pair<uintptr_t, uintptr_t>{0, 0};
}

// The gap needing the fewest new pages, using the free blocks on either side
// of it; among equals the smallest (big gaps stay for big requests). The
// request sits at the start of the free space: on the gap's start after the
// free block before it, or so that it ends inside the free block after it.
LargePool::Placement LargePool::place(uint64_t size, StreamId stream) const {
  Placement best;
  uint64_t best_bytes = UINT64_MAX, best_span = UINT64_MAX;
  auto consider = [&](uint64_t gap, uintptr_t addr, Block* g) {
    const uint64_t before = g->prev && g->prev->is_free() ? g->prev->size : 0;
    const uint64_t after = g->next && g->next->is_free() ? g->next->size : 0;
    const uint64_t span = before + gap + after;
    if (span < size) return;
    // Bytes of the gap to map when the free block on one side is used up.
    auto mapped = [&](uint64_t fringe) { return size - fringe <= gap ? round_up(size - fringe, page_) : gap; };
    const uint64_t low = mapped(before), high = mapped(after);
    const uint64_t bytes = std::min(low, high);
    if (bytes > best_bytes || (bytes == best_bytes && span >= best_span)) return;
    best_bytes = bytes;
    best_span = span;
    best.gap = g;
    if (low <= high) {
      best.from = addr;
      best.to = addr + low;
    } else {
      best.from = addr + gap - high;
      best.to = addr + gap;
    }
  };
  gaps_.for_each(stream, consider);
  if (auto it = arenas_.find(stream); it != arenas_.end())
    for (LargeSegment* arena : it->second)
      if (Block* top = arena->top) consider(top->size, top->addr, top);
  return best;
}

Block* LargePool::new_arena(uint64_t size, StreamId stream) {
  uint64_t bytes = std::max(arena_size_, round_up(size, page_));
  void* base = supply_->source().reserve_range(bytes);
  if (base == nullptr) return nullptr;
  Block* b = new_head(reinterpret_cast<uintptr_t>(base), bytes, stream, BlockState::kUnmapped);
  arenas_[stream].push_back(b->segment);
  b->segment->top = b;
  return b;
}

Block* LargePool::grow_mapped(uint64_t size, StreamId stream) {
  Placement p = place(size, stream);
  if (p.gap == nullptr) {
    Block* g = new_arena(size, stream);
    if (g == nullptr) return nullptr;
    p = Placement{g, g->addr, g->addr + round_up(size, page_)};
  }
  Block* gap = p.gap;
  const size_t pages = (p.to - p.from) / page_;
  // Out of the gap index while granules are gathered: reclaim() leaves the
  // free blocks on its sides alone and no freed gap merges into it.
  unindex_gap(gap);
  placing_ = gap;
  scratch_.clear();
  const bool ok = supply_->obtain(pages, Pool::kLarge, scratch_);
  placing_ = nullptr;
  if (!ok) {
    settle_gap(gap);
    return nullptr;
  }
  GranuleSource& source = supply_->source();
  try {
    source.map_with_access(ptr(p.from), scratch_, page_);
  } catch (...) {
    // The device refused: the granules go back and the gap is as it was.
    source.release_runs(scratch_, page_, Pool::kLarge);
    settle_gap(gap);
    throw;
  }
  LargeSegment* seg = gap->segment;
  uint64_t page = (p.from - seg->base) / page_;
  for (const GranuleRun& run : scratch_) {
    seg->pages.map(page, run);
    page += run.count;
  }
  // The common case, growing the free block before the gap over the gap's
  // start: that block grows and the gap shrinks, no block is made.
  if (Block* f = gap->prev; f && f->is_free() && p.from == gap->addr && p.to < gap->addr + gap->size) {
    account_inactive(f, -1);
    free_.erase(f);
    f->size += p.to - p.from;
    gap->size -= p.to - p.from;
    gap->addr = p.to;
    settle_gap(gap);
    account_inactive(f, +1);
    return f;
  }
  // Cut the gap around [from, to): unmapped before and after, mapped between.
  Block* mid = gap;
  Block* before = nullptr;
  if (p.from > gap->addr) {
    before = gap;
    mid = split_off(gap, p.from - gap->addr, BlockState::kUnmapped);
  }
  Block* after = mid->addr + mid->size > p.to ? split_off(mid, p.to - mid->addr, BlockState::kUnmapped) : nullptr;
  mid->state = BlockState::kFree;  // before the gaps settle, so they do not merge into it
  if (before) settle_gap(before);
  if (after) settle_gap(after);
  // A run of mapped pages is a segment: this one may join one or two.
  const bool joins_before = mid->prev && !mid->prev->unmapped();
  const bool joins_after = mid->next && !mid->next->unmapped();
  source_.stats().segment.add(Pool::kLarge, 1 - int(joins_before) - int(joins_after));
  detach_free_neighbours(mid);
  mid = coalesce(mid);
  account_inactive(mid, +1);
  return mid;
}

void LargePool::unmap_pages(Block* v, uintptr_t from, uintptr_t to, std::vector<GranuleRun>* out) {
  account_inactive(v, -1);
  free_.erase(v);
  LargeSegment* seg = v->segment;
  seg->pages.unmap((from - seg->base) / page_, (to - from) / page_, *out);
  supply_->source().unmap(ptr(from), to - from);
  const bool left_mapped = from > v->addr || (v->prev && !v->prev->unmapped());
  const bool right_mapped = to < v->addr + v->size || (v->next && !v->next->unmapped());
  source_.stats().segment.add(Pool::kLarge, int(left_mapped) + int(right_mapped) - 1);
  // v becomes [free][unmapped][free], the free parts possibly empty.
  Block* left = nullptr;
  Block* mid = v;
  if (from > v->addr) {
    left = v;
    mid = split_off(v, from - v->addr, BlockState::kUnmapped);
  } else {
    mid->state = BlockState::kUnmapped;
  }
  Block* right = mid->addr + mid->size > to ? split_off(mid, to - mid->addr, BlockState::kFree) : nullptr;
  for (Block* f : {left, right}) {
    if (f == nullptr) continue;
    free_.insert(f);
    account_inactive(f, +1);
  }
  settle_gap(mid);
}

void LargePool::index_gap(Block* gap) {
  if (gap->next == nullptr) gap->segment->top = gap;
  else gaps_.insert(gap);
}

void LargePool::unindex_gap(Block* gap) {
  if (gap->next == nullptr) gap->segment->top = nullptr;
  else gaps_.erase(gap);
}

void LargePool::settle_gap(Block* gap) {
  if (Block* p = gap->prev; p && p->unmapped() && p != placing_) {
    unindex_gap(p);
    p->size += gap->size;
    unlink_and_recycle(gap);
    gap = p;
  }
  if (Block* n = gap->next; n && n->unmapped() && n != placing_) {
    unindex_gap(n);
    gap->size += n->size;
    unlink_and_recycle(n);
  }
  index_gap(gap);
}

size_t LargePool::reclaim(size_t want, std::vector<GranuleRun>& out, StreamIdle& idle) {
  if (!vmm() || want == 0) return 0;
  // Largest free blocks first: the fewest blocks cut for the pages wanted.
  std::vector<Block*> victims;
  size_t found = 0;
  free_.for_each_largest_first(0, [&](uint64_t size, uintptr_t addr, Block* b) {
    if (size < page_) return FreeIndex::kNextStream;
    if (placing_ != nullptr && (b == placing_->prev || b == placing_->next)) return FreeIndex::kGoOn;
    auto [from, to] = stealable(addr, size);
    if (from == to) return FreeIndex::kGoOn;
    victims.push_back(b);
    found += (to - from) / page_;
    return found >= want ? FreeIndex::kStop : FreeIndex::kGoOn;
  });
  size_t got = 0;
  for (Block* v : victims) {
    idle.ensure(v->stream);
    auto [from, to] = stealable(v->addr, v->size);
    const size_t pages = std::min<size_t>((to - from) / page_, want - got);
    // From the end that meets a gap already, so gaps merge instead of multiplying.
    if (v->prev && v->prev->unmapped()) to = from + pages * page_;
    else from = to - pages * page_;
    unmap_pages(v, from, to, &out);
    got += pages;
  }
  return got;
}

namespace {
// Stretches of pages as [first, end), sorted, apart from each other.
using Stretches = std::vector<std::pair<uint64_t, uint64_t>>;

bool covers(const Stretches& s, uint64_t page) {
  auto it = std::upper_bound(s.begin(), s.end(), page, [](uint64_t p, const auto& r) { return p < r.first; });
  return it != s.begin() && page < std::prev(it)->second;
}
}  // namespace

void LargePool::check_arena(const Block* head, PoolTally& tally, std::vector<GranuleRun>& granules) const {
  const LargeSegment* seg = head->segment;
  // Pages that must be mapped: every page a free or allocated block touches.
  Stretches needed, mapped;
  for (const Block* b = head; b; b = b->next) {
    if (b->unmapped()) continue;
    const uint64_t first = (b->addr - seg->base) / page_, end = (b->addr + b->size - 1 - seg->base) / page_ + 1;
    if (!needed.empty() && first <= needed.back().second) needed.back().second = std::max(needed.back().second, end);
    else needed.emplace_back(first, end);
  }
  seg->pages.for_each_stretch([&](uint64_t first, uint64_t n) { mapped.emplace_back(first, first + n); });
  if (needed != mapped) {
    // Membership changes only where a stretch starts or ends: the first such
    // page where the two disagree names the fault.
    std::vector<uint64_t> edges;
    for (const Stretches* s : {&needed, &mapped})
      for (const auto& [first, end] : *s) edges.insert(edges.end(), {first, end});
    std::sort(edges.begin(), edges.end());
    for (uint64_t page : edges) {
      const bool must = covers(needed, page), is = covers(mapped, page);
      if (must != is)
        violated("arena at " + std::to_string(seg->base) + ": page at " + std::to_string(seg->base + page * page_) +
                 (is ? " is mapped under no block" : " is not mapped under a block"));
    }
  }
  seg->pages.for_each_run([&](uint64_t, const GranuleRun& run) { granules.push_back(run); });
  tally.reserved += int64_t(seg->pages.mapped_pages() * page_);
  tally.segments += mapped.size();
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
      source.release_runs(runs, page_, Pool::kLarge);
      source.release_range(ptr(seg->base), seg->size);
    }
  } catch (...) {
  }
}

}  // namespace hbmalloc::hbm
