// Allocator::layout(): after random work on a sim device, the segments are
// tiled exactly by their blocks, the picture adds up to stats(), and every
// live pointer is an allocated block of the requested size.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "support/invariants.h"

namespace hbmalloc {
namespace {

using testing::SimAllocator;

constexpr uint64_t MiB = 1ull << 20;

// Checks tiling and sums; returns the allocated blocks by address.
std::map<uint64_t, BlockLayout> check_layout(const Layout& layout, const Stats& s) {
  std::map<uint64_t, BlockLayout> allocated;
  int64_t reserved = 0, allocated_bytes = 0, requested = 0;
  uint64_t end_of_previous = 0;
  for (const SegmentLayout& seg : layout) {
    EXPECT_GE(seg.addr, end_of_previous) << "segments out of order or overlapping";
    end_of_previous = seg.addr + seg.size;
    reserved += int64_t(seg.size);
    uint64_t cursor = seg.addr;
    EXPECT_FALSE(seg.blocks.empty());
    for (const BlockLayout& b : seg.blocks) {
      EXPECT_EQ(b.addr, cursor) << "gap or overlap in segment " << seg.addr;
      EXPECT_GT(b.size, 0u);
      cursor = b.addr + b.size;
      if (b.allocated) {
        EXPECT_LE(b.requested, b.size);
        EXPECT_GT(b.requested, 0u);
        allocated_bytes += int64_t(b.size);
        requested += int64_t(b.requested);
        allocated[b.addr] = b;
      } else {
        EXPECT_EQ(b.requested, 0u);
      }
    }
    EXPECT_EQ(cursor, seg.addr + seg.size) << "blocks do not cover segment " << seg.addr;
  }
  EXPECT_EQ(reserved, s.reserved_bytes.all.current);
  EXPECT_EQ(allocated_bytes, s.allocated_bytes.all.current);
  EXPECT_EQ(requested, s.requested_bytes.all.current);
  return allocated;
}

TEST(Layout, EmptyAllocatorHasNoSegments) {
  SimAllocator a;
  EXPECT_TRUE(a->layout().empty());
}

TEST(Layout, SlabShowsUsedSlotsFreeRunsAndTail) {
  SimAllocator a(0, "small_size:1MiB,slab_size:2MiB");  // one 2 MiB slab per class
  // 1000 B -> 1024 B class: 2048 slots fill the 2 MiB slab exactly; 3000 B
  // classes leave a tail, checked through the tiling in RandomWork.
  void* p = a->malloc(1000);
  void* q = a->malloc(1000);
  void* r = a->malloc(1000);
  a->free(q);
  Layout l = a->layout();
  ASSERT_EQ(l.size(), 1u);
  const SegmentLayout& seg = l[0];
  EXPECT_EQ(seg.pool, Pool::kSmall);
  EXPECT_EQ(seg.size, 2 * MiB);
  ASSERT_EQ(seg.blocks.size(), 4u);  // p, hole where q was, r, the free rest
  EXPECT_EQ(seg.blocks[0].addr, reinterpret_cast<uint64_t>(p));
  EXPECT_TRUE(seg.blocks[0].allocated);
  EXPECT_EQ(seg.blocks[0].requested, 1000u);
  EXPECT_FALSE(seg.blocks[1].allocated);
  EXPECT_EQ(seg.blocks[1].addr, reinterpret_cast<uint64_t>(q));
  EXPECT_EQ(seg.blocks[2].addr, reinterpret_cast<uint64_t>(r));
  EXPECT_FALSE(seg.blocks[3].allocated);
  EXPECT_EQ(seg.blocks[3].size, 2 * MiB - 3 * 1024);
  check_layout(l, a->stats());
  a->free(p);
  a->free(r);
  // A slab with nothing in use is one hole.
  l = a->layout();
  ASSERT_EQ(l.size(), 1u);
  ASSERT_EQ(l[0].blocks.size(), 1u);
  EXPECT_FALSE(l[0].blocks[0].allocated);
  EXPECT_EQ(l[0].blocks[0].size, 2 * MiB);
}

TEST(Layout, LargeSegmentShowsSplitBlocks) {
  SimAllocator a;
  void* p = a->malloc(3 * MiB + 1);
  Layout l = a->layout();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0].pool, Pool::kLarge);
  EXPECT_EQ(l[0].size, 4 * MiB);
  ASSERT_EQ(l[0].blocks.size(), 2u);
  EXPECT_EQ(l[0].blocks[0].addr, reinterpret_cast<uint64_t>(p));
  EXPECT_EQ(l[0].blocks[0].size, 3 * MiB + 512);
  EXPECT_EQ(l[0].blocks[0].requested, 3 * MiB + 1);
  EXPECT_FALSE(l[0].blocks[1].allocated);
  check_layout(l, a->stats());
}

TEST(Layout, RandomWorkTilesAndAddsUpToStats) {
  SimAllocator a;
  std::mt19937_64 rng(7);
  std::map<void*, uint64_t> live;  // pointer -> requested
  for (int step = 0; step < 4000; ++step) {
    bool do_alloc = live.empty() || rng() % 100 < 55;
    if (do_alloc) {
      // Mostly small, some large, on two streams.
      uint64_t size = rng() % 10 < 7 ? 1 + rng() % (64 << 10) : MiB + rng() % (40 * MiB);
      void* p = a->malloc(size, rng() % 4 == 0 ? 1 : 0);
      live[p] = size;
    } else {
      auto it = live.begin();
      std::advance(it, long(rng() % live.size()));
      a->free(it->first);
      live.erase(it);
    }
    if (step % 97 == 0) a->empty_cache();
    if (step % 500 == 499) {
      std::map<uint64_t, BlockLayout> allocated = check_layout(a->layout(), a->stats());
      ASSERT_EQ(allocated.size(), live.size());
      for (const auto& [p, requested] : live) {
        auto it = allocated.find(reinterpret_cast<uint64_t>(p));
        ASSERT_NE(it, allocated.end()) << "live pointer missing from the layout";
        EXPECT_EQ(it->second.requested, requested);
      }
    }
  }
}

}  // namespace
}  // namespace hbmalloc
