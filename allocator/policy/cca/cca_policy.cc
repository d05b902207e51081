#include "policy/cca/cca_policy.h"

#include <algorithm>
#include <string>

#include "core/helpers.h"
#include "hbmalloc/error.hpp"
#include "policy/cca/cca_rules.h"

namespace hbmalloc::cca {

namespace {
[[noreturn]] void bad_picture(const std::string& what) {
  throw Error(ErrorCode::kInvalidArgument, "start layout: " + what);
}
}  // namespace

CcaPolicy::CcaPolicy(const Config& config, Backend& backend, LiveStats& stats)
    : cfg_(parse_settings(config.pytorch_settings)),
      backend_(backend),
      source_(backend, stats),
      granules_(backend, source_),
      capacity_(backend.capacity()) {
  if (cfg_.expandable_segments) {
    const uint64_t granule = granules_.granularity();
    if (granule == 0)
      throw Error(ErrorCode::kConfig, "expandable_segments: True needs virtual memory mapping, which the " +
                                          std::string(backend.name()) + " backend lacks");
    if (cfg_.large_segment_size % granule != 0 || kSmallBuffer % granule != 0)
      throw Error(ErrorCode::kConfig, "large_segment_size_mb: " + std::to_string(cfg_.large_segment_size / kMiB) +
                                          " MiB pages are not whole " + std::to_string(granule) +
                                          "-byte granules of the " + std::string(backend.name()) + " backend");
  }
  set_limit(std::numeric_limits<uint64_t>::max());
}

CcaPolicy::~CcaPolicy() {
  for (const auto& [base, seg] : by_base_)
    if (seg->expandable == nullptr) source_.release_at_exit(reinterpret_cast<void*>(base), seg->size);
}


void CcaPolicy::set_limit(uint64_t bytes) {
  uint64_t limit = bytes;
  if (capacity_ != 0 && cfg_.per_process_memory_fraction < 1.0)
    limit = std::min(limit, uint64_t(cfg_.per_process_memory_fraction * double(capacity_)));
  source_.set_limit(limit);
}

std::optional<uint64_t> CcaPolicy::allowed_max() const {
  const uint64_t limit = source_.limit();
  if (capacity_ != 0 && limit < capacity_) return limit;
  return std::nullopt;
}

uint64_t CcaPolicy::reserved() const { return uint64_t(source_.stats().reserved_bytes.current_all()); }

// ---- malloc -------------------------------------------------------------------

CcaPolicy::Request CcaPolicy::request_for(uint64_t size, StreamId stream) {
  Request r;
  r.size = round_size(size, cfg_);
  r.stream = stream;
  r.pool = is_small(r.size) ? &small_ : &large_;
  r.alloc_size = allocation_size(r.size, cfg_);
  return r;
}

Allocation CcaPolicy::allocate(uint64_t size, StreamId stream) {
  Request r = request_for(size, stream);
  if (!get_free_block(r)) {
    if (gc_on()) garbage_collect_cached_blocks();
    if (!alloc_block(r) && !(release_available_cached_blocks(r) && alloc_block(r))) return {};
  }
  return hand_out(r, size);
}

// After release_cached_blocks PyTorch goes straight to the device once more.
Allocation CcaPolicy::allocate_after_release(uint64_t size, StreamId stream) {
  Request r = request_for(size, stream);
  if (!alloc_block(r)) return {};
  return hand_out(r, size);
}

bool CcaPolicy::get_free_block(Request& r) {
  BlockPool& pool = *r.pool;
  if (gc_on()) ++pool.free_block_searches;  // block ages are counted only while gc is on
  auto it = pool.blocks.lower_bound(BlockKey{r.stream, r.size, 0, nullptr});
  if (it == pool.blocks.end() || it->stream != r.stream) return false;
  // Every block is expandable while expandable_segments is on, none is
  // otherwise (the settings never change, see check()); so the plain search
  // touches no Block. An expandable block may grow into the unmapped range
  // after it: for best fit it counts as that large.
  if (cfg_.expandable_segments) {
    auto grows_to = [](const Block* b) {
      return b->size + (b->next != nullptr && !b->next->mapped ? b->next->size : 0);
    };
    for (auto next = std::next(it);
         next != pool.blocks.end() && next->stream == r.stream && grows_to(next->block) < grows_to(it->block); ++next)
      it = next;
  }
  // An oversize block is not split for a smaller request, and serves a large
  // one only within max_non_split_rounding_mb.
  if (r.size < cfg_.max_split_size && it->size >= cfg_.max_split_size) return false;
  if (r.size >= cfg_.max_split_size && it->size >= r.size + cfg_.max_non_split_rounding_size) return false;
  r.block = it->block;
  pool.blocks.erase(it);
  return true;
}

bool CcaPolicy::alloc_block(Request& r) {
  if (const auto max = allowed_max(); max && reserved() + r.alloc_size > *max) return false;
  if (cfg_.expandable_segments) {
    r.block = try_allocate_expandable_block(r);
    return r.block != nullptr;
  }
  void* ptr = source_.grow(r.alloc_size, pool_of(*r.pool));
  if (ptr == nullptr) return false;
  const uintptr_t base = reinterpret_cast<uintptr_t>(ptr);
  Segment* seg = new_segment(base, r.alloc_size, r.pool, nullptr);
  r.block = new_block(base, r.alloc_size, r.stream, r.pool, seg);
  seg->head = r.block;
  return true;
}

// Frees oversize cached blocks of the stream: the smallest one that covers
// the request, else the largest ones until their sizes add up to it.
bool CcaPolicy::release_available_cached_blocks(const Request& r) {
  if (!cfg_.max_split_size_set()) return false;
  BlockPool& pool = *r.pool;
  const uint64_t want = std::max(r.size, cfg_.max_split_size);
  auto it = pool.blocks.lower_bound(BlockKey{r.stream, want, 0, nullptr});
  if (it != pool.blocks.end() && it->stream == r.stream && !it->block->expandable()) {
    release_block(it->block);
    return true;
  }
  if (it == pool.blocks.begin()) return false;
  // Chosen first, released after: releasing invalidates the set's iterators.
  std::vector<Block*> chosen;
  uint64_t released = 0;
  for (--it; released < want && it->size >= cfg_.max_split_size && it->stream == r.stream; --it) {
    if (!it->block->expandable()) {
      released += it->size;
      chosen.push_back(it->block);
    }
    if (it == pool.blocks.begin()) break;
  }
  for (Block* b : chosen) release_block(b);
  return released >= want;
}

// Frees whole cached segments of the large pool that have waited longest
// (by free-block searches since they were cached) until reserved is back
// under the threshold's share of the allowed maximum.
void CcaPolicy::garbage_collect_cached_blocks() {
  const uint64_t threshold = uint64_t(cfg_.garbage_collection_threshold * double(*allowed_max()));
  const uint64_t total = reserved();
  if (total <= threshold) return;
  const uint64_t target = total - threshold;
  uint64_t total_age = 0, reclaimed = 0;
  int64_t freeable = 0;
  for (const BlockKey& k : large_.blocks)
    if (!k.block->is_split()) {
      total_age += large_.gc_age(k.block);
      ++freeable;
    }
  if (freeable == 0) return;
  bool freed = true;
  while (reclaimed < target && freed && freeable > 0) {
    const double age_threshold = double(total_age) / double(freeable);
    freed = false;
    std::vector<Block*> old;
    for (const BlockKey& k : large_.blocks)
      if (!k.block->is_split() && !k.block->expandable() && double(large_.gc_age(k.block)) >= age_threshold)
        old.push_back(k.block);
    for (Block* b : old) {
      freed = true;
      reclaimed += b->size;
      total_age -= large_.gc_age(b);
      --freeable;
      release_block(b);
    }
  }
}

Allocation CcaPolicy::hand_out(Request& r, uint64_t requested) {
  Block* b = r.block;
  BlockPool& pool = *r.pool;
  account_inactive(b, -1);
  if (should_split(b->size, r.size, pool.is_small, cfg_.expandable_segments, cfg_)) {
    // The block keeps the front; the rest stays cached right after it.
    Block* rest = new_block(b->addr + r.size, b->size - r.size, r.stream, &pool, b->segment);
    rest->mapped = b->mapped;
    link_after(rest, b, b->next);
    b->size = r.size;
    pool.insert(rest);
    account_inactive(rest, +1);
  }
  b->allocated = true;
  b->requested = requested;
  live_.insert(b->addr, b);
  return {reinterpret_cast<void*>(b->addr), b->size, pool_of(pool)};
}

// A checkpoint's block, at its own address: the free block around it keeps
// what lies before and after as free blocks of their own.
Allocation CcaPolicy::allocate_at(uint64_t addr, uint64_t size, uint64_t requested) {
  Block* b = const_cast<Block*>(block_at(addr));
  if (b == nullptr || b->allocated || !b->mapped || size == 0 || size > b->addr + b->size - addr)
    throw Error(ErrorCode::kInvalidArgument, "cca: no free block holds " + std::to_string(size) + " bytes at " +
                                                 std::to_string(addr) + " (the checkpoint's segment is gone or in use)");
  BlockPool& pool = *b->pool;
  pool.erase(b);
  account_inactive(b, -1);
  Block* front = nullptr;
  Block* back = nullptr;
  if (addr > b->addr) {
    front = new_block(b->addr, addr - b->addr, b->stream, &pool, b->segment);
    front->mapped = true;
    link_after(front, b->prev, b);
    b->size -= front->size;
    b->addr = addr;
  }
  if (b->size > size) {
    back = new_block(addr + size, b->size - size, b->stream, &pool, b->segment);
    back->mapped = true;
    link_after(back, b, b->next);
    b->size = size;
  }
  b->allocated = true;
  b->requested = requested;
  live_.insert(b->addr, b);
  for (Block* n : {front, back})
    if (n != nullptr) {
      pool.insert(n);
      account_inactive(n, +1);
    }
  return {reinterpret_cast<void*>(b->addr), b->size, pool_of(pool)};
}

// ---- free -----------------------------------------------------------------------

FreeStatus CcaPolicy::free(void* ptr, int64_t expected_requested, LiveBlock& out) {
  Block** found = live_.find(reinterpret_cast<uintptr_t>(ptr));
  if (found == nullptr) return FreeStatus::kNotLive;
  Block* b = *found;
  out = {b->requested, b->size, pool_of(*b->pool), b->stream};
  if (expected_requested >= 0 && uint64_t(expected_requested) != b->requested) return FreeStatus::kSizeMismatch;
  live_.erase_found(found);
  free_block(b);
  return FreeStatus::kOk;
}

void CcaPolicy::free_block(Block* b) {
  b->allocated = false;
  b->requested = 0;
  try_merge(b, b->prev);
  try_merge(b, b->next);
  b->pool->insert(b);
  account_inactive(b, +1);
}

// Joins a free neighbour into dst; returns the bytes it brought (0: none).
uint64_t CcaPolicy::try_merge(Block* dst, Block* src) {
  if (src == nullptr || src->allocated || src->mapped != dst->mapped) return 0;
  account_inactive(src, -1);
  if (src->mapped) src->pool->erase(src);
  else src->pool->unmapped.erase(BlockPool::key_of(src));
  if (dst->prev == src) {
    dst->addr = src->addr;
    dst->prev = src->prev;
    if (dst->prev != nullptr) dst->prev->next = dst;
    else dst->segment->head = dst;
  } else {
    dst->next = src->next;
    if (dst->next != nullptr) dst->next->prev = dst;
  }
  dst->size += src->size;
  const uint64_t size = src->size;
  blocks_.recycle(src);
  return size;
}

// ---- releasing ------------------------------------------------------------------

uint64_t CcaPolicy::release_cached() {
  const uint64_t before = reserved();
  release_blocks(large_);
  release_blocks(small_);
  return before - reserved();
}

// Every cached whole segment goes back, in best-fit order; expandable
// segments give back their wholly free pages.
void CcaPolicy::release_blocks(BlockPool& pool) {
  std::vector<Block*> whole, to_unmap;
  for (const BlockKey& k : pool.blocks) {
    if (k.block->expandable()) to_unmap.push_back(k.block);
    else if (!k.block->is_split()) whole.push_back(k.block);
  }
  for (Block* b : whole) release_block(b);
  for (Block* b : to_unmap) {
    unmap_block(b);
    if (!b->is_split() && !b->mapped) release_expandable_segment(b);
  }
}

void CcaPolicy::release_block(Block* b) {
  b->pool->erase(b);
  Segment* seg = b->segment;
  source_.release(reinterpret_cast<void*>(seg->base), seg->size, pool_of(*b->pool));
  blocks_.recycle(b);
  drop_segment(seg);
}

// ---- expandable segments ----------------------------------------------------------

// The lowest-addressed place in the stream's expandable segments with room
// for the request in free and unmapped blocks; a new segment if none has.
Block* CcaPolicy::find_expandable_block(const Request& r) {
  BlockPool& pool = *r.pool;
  auto allocatable = [](const Block* b) { return b != nullptr && !b->allocated; };
  auto has_room = [&](const Block* b) {
    uint64_t bytes = 0;
    for (; bytes < r.size && allocatable(b); b = b->next) bytes += b->size;
    return bytes >= r.size;
  };
  for (auto it = pool.unmapped.lower_bound(BlockKey{r.stream, 0, 0, nullptr});
       it != pool.unmapped.end() && it->stream == r.stream; ++it) {
    Block* c = it->block;
    if (allocatable(c->prev)) c = c->prev;  // a free block right before it joins in
    if (has_room(c)) return c;
  }
  const uint64_t page = pool.is_small ? kSmallBuffer : cfg_.large_segment_size;
  // Room for 9/8 of the device, as PyTorch reserves. A request past that of a
  // limited device can never fit: no segment is made for it. The room is
  // reserved for at most 1 TiB of device (an unlimited one counts as 1 TiB),
  // or the request when larger: a real GPU's memory fits, and the segments of
  // many streams and pools fit the address space.
  constexpr uint64_t kTiB = uint64_t(1) << 40;
  auto pages_for = [&](uint64_t device) { return (device + device / 8 + page - 1) / page; };
  if (capacity_ != 0 && pages_for(capacity_) * page < r.size) return nullptr;
  const uint64_t pages = pages_for(capacity_ != 0 && capacity_ <= kTiB ? capacity_ : std::max(kTiB, r.size));
  auto es = std::make_unique<ExpandableSegment>(granules_, page, pages, pool_of(pool));
  if (es->base() == 0) return nullptr;  // no address space left
  expandable_.push_back(std::move(es));
  const uintptr_t base = expandable_.back()->base();
  Segment* seg = new_segment(base, page * pages, &pool, expandable_.back().get());
  Block* b = new_block(base, seg->size, r.stream, &pool, seg);
  b->mapped = false;
  seg->head = b;
  pool.unmapped.insert(BlockPool::key_of(b));
  return b;
}

Block* CcaPolicy::try_allocate_expandable_block(Request& r) {
  Block* c = find_expandable_block(r);
  if (c == nullptr) return nullptr;
  // c is unmapped, or free with unmapped blocks after it: map until it fits.
  if (!c->mapped && !map_block(c, std::min(c->size, r.size))) return nullptr;
  while (c->size < r.size) {
    Block* next = c->next;
    if (!map_block(next, std::min(r.size - c->size, next->size))) return nullptr;
    c = next;  // the mapped pages merged c into next
  }
  r.pool->erase(c);
  return c;
}

bool CcaPolicy::map_block(Block* to_map, uint64_t size) {
  BlockPool& pool = *to_map->pool;
  const PageRange range = to_map->segment->expandable->map(to_map->addr, size);
  if (range.bytes == 0) return false;
  pool.unmapped.erase(BlockPool::key_of(to_map));
  to_map->mapped = true;
  if (range.bytes < to_map->size) {
    Block* rest = new_block(to_map->addr + range.bytes, to_map->size - range.bytes, to_map->stream, &pool,
                            to_map->segment);
    rest->mapped = false;
    link_after(rest, to_map, to_map->next);
    pool.unmapped.insert(BlockPool::key_of(rest));
    to_map->size = range.bytes;
  }
  try_merge(to_map, to_map->prev);
  try_merge(to_map, to_map->next);
  pool.insert(to_map);
  source_.mapped();
  return true;
}

// Unmaps the wholly free pages of a free block; what is left of it on either
// side stays cached.
void CcaPolicy::unmap_block(Block* b) {
  BlockPool& pool = *b->pool;
  const ExpandableSegment& es = *b->segment->expandable;
  const uintptr_t first = round_up(b->addr - es.base(), es.page()) + es.base();
  if (first + es.page() > b->addr + b->size) return;  // no whole page free
  backend_.synchronize();  // no queued work may still use the pages
  const PageRange range = b->segment->expandable->unmap(b->addr, b->size);
  pool.erase(b);
  const uint64_t before = range.addr - b->addr;
  if (before > 0) {
    Block* front = new_block(b->addr, before, b->stream, &pool, b->segment);
    link_after(front, b->prev, b);
    pool.insert(front);
  }
  const uint64_t after = b->size - before - range.bytes;
  if (after > 0) {
    Block* back = new_block(range.addr + range.bytes, after, b->stream, &pool, b->segment);
    link_after(back, b, b->next);
    pool.insert(back);
  }
  b->addr = range.addr;
  b->size = range.bytes;
  b->mapped = false;
  try_merge(b, b->prev);
  try_merge(b, b->next);
  pool.unmapped.insert(BlockPool::key_of(b));
  source_.unmapped();
}

void CcaPolicy::release_expandable_segment(Block* b) {
  b->pool->unmapped.erase(BlockPool::key_of(b));
  ExpandableSegment* es = b->segment->expandable;
  drop_segment(b->segment);
  blocks_.recycle(b);
  std::erase_if(expandable_, [es](const auto& p) { return p.get() == es; });
}

// ---- structure --------------------------------------------------------------------

Segment* CcaPolicy::new_segment(uintptr_t base, uint64_t size, BlockPool* pool, ExpandableSegment* expandable) {
  Segment* seg = segments_.make(Segment{base, size, pool, nullptr, expandable});
  by_base_.emplace(base, seg);
  return seg;
}

void CcaPolicy::drop_segment(Segment* seg) {
  by_base_.erase(seg->base);
  segments_.recycle(seg);
}

Block* CcaPolicy::new_block(uintptr_t addr, uint64_t size, StreamId stream, BlockPool* pool, Segment* seg) {
  Block* b = blocks_.make();
  b->addr = addr;
  b->size = size;
  b->stream = stream;
  b->pool = pool;
  b->segment = seg;
  return b;
}

// Puts b between `before` and `after` (neighbours, either may be null).
void CcaPolicy::link_after(Block* b, Block* before, Block* after) {
  b->prev = before;
  b->next = after;
  if (before != nullptr) before->next = b;
  else b->segment->head = b;
  if (after != nullptr) after->prev = b;
}

void CcaPolicy::account_inactive(const Block* b, int sign) {
  if (b->allocated || !b->mapped || !b->is_split() || b->expandable()) return;
  LiveStats& stats = source_.stats();
  const Pool pool = pool_of(*b->pool);
  stats.inactive_split.add(pool, sign);
  stats.inactive_split_bytes.add(pool, sign * int64_t(b->size));
}

// ---- questions --------------------------------------------------------------------

bool CcaPolicy::find(void* ptr, LiveBlock& out) const {
  Block* const* found = live_.find(reinterpret_cast<uintptr_t>(ptr));
  if (found == nullptr) return false;
  const Block* b = *found;
  out = {b->requested, b->size, pool_of(*b->pool), b->stream};
  return true;
}

const Block* CcaPolicy::block_at(uintptr_t addr) const {
  auto it = by_base_.upper_bound(addr);
  if (it == by_base_.begin()) return nullptr;
  const Segment* seg = std::prev(it)->second;
  if (addr >= seg->base + seg->size) return nullptr;
  const Block* b = seg->head;
  while (b != nullptr && addr >= b->addr + b->size) b = b->next;
  return b;
}

ErrorCode CcaPolicy::classify_bad_pointer(void* ptr) const {
  const Block* b = block_at(reinterpret_cast<uintptr_t>(ptr));
  return b != nullptr && b->mapped && !b->allocated ? ErrorCode::kDoubleFree : ErrorCode::kUnknownPointer;
}

uint64_t CcaPolicy::largest_free_block() const {
  uint64_t largest = 0;
  for (const BlockPool* pool : {&small_, &large_})
    for (const BlockKey& k : pool->blocks) largest = std::max(largest, k.size);
  return largest;
}

Layout CcaPolicy::layout() const {
  Layout out;
  for (const auto& [base, seg] : by_base_) {
    const Block* b = seg->head;
    // A plain segment is one entry; an expandable one is an entry per mapped run.
    while (b != nullptr) {
      while (b != nullptr && !b->mapped) b = b->next;
      if (b == nullptr) break;
      const ExpandableSegment* es = b->segment->expandable;
      SegmentLayout s{b->addr, 0, pool_of(*b->pool), b->stream, {}, es != nullptr ? es->page() : 0};
      for (; b != nullptr && b->mapped; b = b->next) {
        s.blocks.push_back({b->addr, b->size, b->allocated ? b->requested : 0, b->allocated});
        s.size += b->size;
      }
      out.push_back(std::move(s));
    }
  }
  return out;
}

void CcaPolicy::check_segment(const Segment* seg, Tally& tally, size_t& free_blocks, size_t& unmapped_blocks) const {
  const std::string where = "segment at " + std::to_string(seg->base);
  const Block* head = seg->head;
  if (head == nullptr || head->addr != seg->base || head->prev != nullptr) violated(where + ": head does not start it");
  if ((seg->expandable != nullptr) != cfg_.expandable_segments)
    violated(where + (seg->expandable ? ": expandable" : ": plain") + " against the expandable_segments setting");
  PoolTally& t = tally.of(pool_of(*head->pool));
  if (!seg->expandable) {
    ++t.segments;
    t.reserved += int64_t(seg->size);
  } else {
    t.reserved += int64_t(seg->expandable->mapped_bytes());
  }
  uintptr_t cursor = seg->base;
  for (const Block* b = head; b != nullptr; b = b->next) {
    const std::string at = where + ", block at " + std::to_string(b->addr);
    if (b->segment != seg) violated(at + ": points to another segment");
    if (b->addr != cursor) violated(at + ": gap or overlap (expected " + std::to_string(cursor) + ")");
    if (b->size == 0 || b->size % kMinBlockSize != 0) violated(at + ": size not a positive multiple of 512");
    if (b->pool != seg->pool || b->stream != head->stream) violated(at + ": pool or stream differs from its segment");
    if (b->next != nullptr && b->next->prev != b) violated(at + ": broken back link");
    cursor += b->size;
    if (b->allocated) {
      Block* const* live = live_.find(b->addr);
      if (live == nullptr || *live != b) violated(at + ": allocated but not among the live pointers");
      if (!b->mapped) violated(at + ": allocated but unmapped");
      ++t.in_use;
      ++t.blocks;
      t.allocated_bytes += int64_t(b->size);
      t.requested_bytes += int64_t(b->requested);
      continue;
    }
    if (b->next != nullptr && !b->next->allocated && b->next->mapped == b->mapped)
      violated(at + ": two free neighbours not coalesced");
    if (!b->mapped) {
      ++unmapped_blocks;
      auto it = b->pool->unmapped.find(BlockPool::key_of(b));
      if (it == b->pool->unmapped.end() || it->block != b) violated(at + ": unmapped block missing from its set");
      continue;
    }
    ++free_blocks;
    if (!b->pool->contains(b)) violated(at + ": free block missing from the best-fit set");
    if (b->is_split() && !seg->expandable) {
      ++t.inactive_split;
      t.inactive_split_bytes += int64_t(b->size);
    }
  }
  if (cursor != seg->base + seg->size) violated(where + ": blocks do not cover it");
}

Tally CcaPolicy::check() const {
  Tally tally;
  size_t free_blocks = 0, unmapped_blocks = 0;
  uintptr_t end_of_previous = 0;
  for (const auto& [base, seg] : by_base_) {
    if (seg->base != base) violated("segment at " + std::to_string(base) + ": indexed under another address");
    if (base < end_of_previous) violated("segment at " + std::to_string(base) + ": overlaps the previous one");
    end_of_previous = base + seg->size;
    check_segment(seg, tally, free_blocks, unmapped_blocks);
  }
  const size_t indexed = small_.blocks.size() + large_.blocks.size();
  if (free_blocks != indexed)
    violated("best-fit sets hold " + std::to_string(indexed) + " blocks, segments " + std::to_string(free_blocks));
  if (unmapped_blocks != small_.unmapped.size() + large_.unmapped.size()) violated("unmapped sets hold stray blocks");
  const size_t in_use = size_t(tally.of(Pool::kSmall).in_use + tally.of(Pool::kLarge).in_use);
  if (in_use != live_.size())
    violated(std::to_string(live_.size()) + " live pointers but " + std::to_string(in_use) + " allocated blocks");
  return tally;
}

// ---- a recorded start ---------------------------------------------------------------

std::vector<Allocation> CcaPolicy::adopt(const Layout& start) {
  if (!by_base_.empty()) bad_picture("the policy already holds memory");
  try {
    return adopt_segments(start);
  } catch (...) {
    forget_everything();  // all or nothing: the policy holds nothing again
    throw;
  }
}

void CcaPolicy::forget_everything() {
  while (!by_base_.empty()) {
    Segment* seg = by_base_.begin()->second;
    const Pool pool = pool_of(*seg->pool);
    for (Block* b = seg->head; b != nullptr;) {
      Block* next = b->next;
      account_inactive(b, -1);
      if (!b->allocated) b->pool->erase(b);
      else live_.erase(b->addr);
      blocks_.recycle(b);
      b = next;
    }
    source_.release(reinterpret_cast<void*>(seg->base), seg->size, pool);
    drop_segment(seg);
  }
}

std::vector<Allocation> CcaPolicy::adopt_segments(const Layout& start) {
  std::vector<Allocation> out;
  uintptr_t end_of_previous = 0;
  for (const SegmentLayout& s : start) {
    const std::string where = "segment at " + std::to_string(s.addr);
    if (s.size == 0 || s.size % kMinBlockSize != 0) bad_picture(where + ": size not a positive multiple of 512");
    if (s.addr < end_of_previous) bad_picture(where + ": overlaps or precedes the previous segment");
    end_of_previous = s.addr + s.size;
    if (cfg_.expandable_segments) bad_picture(where + ": a start picture of expandable segments is not supported");
    BlockPool& pool = s.pool == Pool::kSmall ? small_ : large_;
    void* mem = source_.grow(s.size, s.pool);
    if (mem == nullptr) throw Error(ErrorCode::kOutOfMemory, where + ": the device cannot hold the trace's start");
    const uintptr_t base = reinterpret_cast<uintptr_t>(mem);
    Segment* seg = new_segment(base, s.size, &pool, nullptr);
    Block* last = nullptr;
    auto append = [&](uint64_t offset, uint64_t size, const BlockLayout* live) {
      Block* b = new_block(base + offset, size, s.stream, &pool, seg);
      link_after(b, last, nullptr);
      last = b;
      if (live != nullptr) {
        b->allocated = true;
        b->requested = live->requested;
        live_.insert(b->addr, b);
        out.push_back({reinterpret_cast<void*>(b->addr), b->size, s.pool});
      }
    };
    uint64_t cursor = 0;  // offset of the first byte not yet in a block
    for (size_t i = 0; i < s.blocks.size(); ++i) {
      const BlockLayout& b = s.blocks[i];
      const std::string at = where + ", block at " + std::to_string(b.addr);
      if (b.addr < s.addr + cursor || b.addr >= s.addr + s.size) bad_picture(at + ": outside its segment or overlapping");
      const uint64_t offset = b.addr - s.addr;
      if (offset % kMinBlockSize != 0) bad_picture(at + ": not 512-byte aligned");
      const uint64_t room = (i + 1 < s.blocks.size() ? std::min(s.blocks[i + 1].addr, s.addr + s.size)
                                                       : s.addr + s.size) - b.addr;
      // An unknown size is what PyTorch handed out: the rounded request, or
      // the whole gap when the remainder was too small to split off.
      uint64_t size = b.size;
      if (size == 0) {
        size = round_size(b.requested, cfg_);
        if (size > room) bad_picture(at + ": its request does not fit before the next block");
        if (size == room || !should_split(room, size, pool.is_small, false, cfg_)) size = room;
      }
      if (size > room || size % kMinBlockSize != 0) bad_picture(at + ": size does not fit before the next block");
      if (offset > cursor) append(cursor, offset - cursor, nullptr);
      append(offset, size, &b);
      cursor = offset + size;
    }
    if (cursor < s.size) append(cursor, s.size - cursor, nullptr);
    for (Block* b = seg->head; b != nullptr; b = b->next)
      if (!b->allocated) {
        pool.insert(b);
        account_inactive(b, +1);
      }
  }
  return out;
}

}  // namespace hbmalloc::cca
