#include "policy/hbm/large_pool.h"

#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

namespace {
uint64_t round_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }
[[noreturn]] void violated(const std::string& what) { throw Error(ErrorCode::kInvariant, what); }
}  // namespace

LargePool::LargePool(uint64_t segment_round, SegmentSource& source)
    : segment_round_(segment_round), source_(source) {}

// Free blocks of a segment that is in use are "inactive split", as in PyTorch.
void LargePool::account_inactive(const Block* b, int sign) {
  if (b == nullptr || b->allocated || !b->is_split()) return;
  LiveStats& stats = source_.stats();
  stats.inactive_split.add(Pool::kLarge, sign);
  stats.inactive_split_bytes.add(Pool::kLarge, sign * int64_t(b->size));
}

Block* LargePool::new_segment(uint64_t size, StreamId stream) {
  uint64_t bytes = round_up(size, segment_round_);
  void* mem = source_.grow(bytes, Pool::kLarge);
  if (mem == nullptr) return nullptr;
  LargeSegment* seg = segments_.make(LargeSegment{reinterpret_cast<uintptr_t>(mem), bytes});
  Block* b = blocks_.make();
  b->addr = seg->base;
  b->size = bytes;
  b->stream = stream;
  b->segment = seg;
  // Segments mostly come in rising address order: hinting the end skips the search.
  segment_heads_.emplace_hint(segment_heads_.end(), seg->base, b);
  return b;
}

Block* LargePool::allocate(uint64_t size, StreamId stream) {
  uint64_t rounded = round_up(size, kRound);
  Block* b = free_.take_best_fit(stream, rounded);
  if (b == nullptr) {
    b = new_segment(rounded, stream);
    if (b == nullptr) return nullptr;
  }
  account_inactive(b, -1);
  if (b->size > rounded) {  // the remainder stays free, right after the block
    Block* rest = blocks_.make();
    rest->addr = b->addr + rounded;
    rest->size = b->size - rounded;
    rest->stream = stream;
    rest->segment = b->segment;
    rest->prev = b;
    rest->next = b->next;
    if (b->next) b->next->prev = rest;
    b->next = rest;
    b->size = rounded;
    free_.insert(rest);
    account_inactive(rest, +1);
  }
  b->allocated = true;
  return b;
}

void LargePool::free(Block* b) {
  b->allocated = false;
  // Merge with free neighbours; a merged neighbour leaves the index.
  for (Block* n : {b->prev, b->next}) {
    if (n == nullptr || n->allocated) continue;
    account_inactive(n, -1);
    free_.erase(n);
  }
  if (Block* p = b->prev; p && !p->allocated) {
    p->size += b->size;
    p->next = b->next;
    if (b->next) b->next->prev = p;
    blocks_.recycle(b);
    b = p;
  }
  if (Block* n = b->next; n && !n->allocated) {
    b->size += n->size;
    b->next = n->next;
    if (n->next) n->next->prev = b;
    blocks_.recycle(n);
  }
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

uint64_t LargePool::release_cached() {
  uint64_t released = 0;
  for (auto it = segment_heads_.begin(); it != segment_heads_.end();) {
    Block* b = it->second;
    if (b->allocated || b->next != nullptr) {
      ++it;
      continue;
    }
    LargeSegment* seg = b->segment;
    free_.erase(b);
    source_.release(reinterpret_cast<void*>(seg->base), seg->size, Pool::kLarge);
    released += seg->size;
    blocks_.recycle(b);
    segments_.recycle(seg);
    it = segment_heads_.erase(it);
  }
  return released;
}

uint64_t LargePool::largest_free_block() const {
  return free_.largest();
}

void LargePool::check(PoolTally& tally) const {
  size_t free_blocks = 0;
  uintptr_t end_of_previous = 0;
  for (const auto& [base, head] : segment_heads_) {
    const LargeSegment* seg = head->segment;
    std::string where = "segment at " + std::to_string(base);
    if (seg == nullptr || seg->base != base || head->addr != base || head->prev != nullptr)
      violated(where + ": head block does not start the segment");
    if (base < end_of_previous) violated(where + ": overlaps the previous segment");
    end_of_previous = base + seg->size;
    ++tally.segments;
    tally.reserved += int64_t(seg->size);
    // Blocks tile the segment: each starts where the previous ended.
    uintptr_t cursor = base;
    for (const Block* b = head; b; b = b->next) {
      std::string at = where + ", block at " + std::to_string(b->addr);
      if (b->segment != seg) violated(at + ": points to another segment");
      if (b->addr != cursor) violated(at + ": gap or overlap (expected " + std::to_string(cursor) + ")");
      if (b->size == 0 || b->size % kRound != 0) violated(at + ": size not a positive multiple of 512");
      if (b->stream != head->stream) violated(at + ": stream differs from its segment");
      if (b->next && b->next->prev != b) violated(at + ": broken back link");
      cursor += b->size;
      if (b->allocated) {
        ++tally.in_use;
        continue;
      }
      ++free_blocks;
      if (b->next && !b->next->allocated) violated(at + ": two free neighbours not coalesced");
      if (!free_.contains(b)) violated(at + ": free block missing from the index");
      if (b->is_split()) {
        ++tally.inactive_split;
        tally.inactive_split_bytes += int64_t(b->size);
      }
    }
    if (cursor != base + seg->size) violated(where + ": blocks do not cover the segment");
  }
  if (!free_.consistent()) violated("free index: a bin is out of order, misplaced or disagrees with its bitmap");
  if (free_blocks != free_.size())
    violated("free index holds " + std::to_string(free_.size()) + " blocks, segments hold " +
             std::to_string(free_blocks));
}

void LargePool::append_layout(Layout& out, const std::function<uint64_t(uintptr_t)>& requested_of) const {
  for (const auto& [base, head] : segment_heads_) {
    SegmentLayout seg{base, head->segment->size, Pool::kLarge, head->stream, {}};
    for (const Block* b = head; b; b = b->next)
      seg.blocks.push_back({b->addr, b->size, b->allocated ? requested_of(b->addr) : 0, b->allocated});
    out.push_back(std::move(seg));
  }
}

}  // namespace hbmalloc
