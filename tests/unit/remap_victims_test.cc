// Which cached pages a remap takes (LargePool::reclaim): the ones with the
// longest reuse distance, so a repeating step keeps its pages mapped and the
// pages nobody comes back to go first.
#include <gtest/gtest.h>

#include <vector>

#include "support/invariants.h"

namespace hbmalloc {
namespace {

using testing::InvariantsHold;
using testing::SimAllocator;

constexpr uint64_t MiB = 1ull << 20;

// Two requests take turns on a full device, each where the other is not
// (pages 5-9 and 11-16), while 4 cached pages of a block freed long ago
// (pages 0-3) are never used again. Both steps fit once those 4 pages are
// given up: after a warm-up the steps remap nothing (16 granules in all, by
// the second step). Taking the largest free block first instead (the order
// before reuse distance) gave the turns each other's pages forever: 8
// granules remapped every step, 96 after 12.
TEST(RemapVictims, PagesNobodyComesBackToGoBeforeAStepsOwn) {
  SimAllocator a(26 * MiB, "pressure_threshold:0.5");
  void* stale = a->malloc(8 * MiB);   // pages 0-3
  void* keep = a->malloc(2 * MiB);    // page 4
  void* first = a->malloc(10 * MiB);  // pages 5-9
  void* keep2 = a->malloc(2 * MiB);   // page 10
  ASSERT_TRUE(stale && keep && first && keep2);
  a->free(stale);
  a->free(first);
  std::vector<int64_t> remapped;
  for (int step = 0; step < 12; ++step) {
    void* b = a->malloc(12 * MiB);  // fits neither hole: pages 11-16
    ASSERT_NE(b, nullptr) << "step " << step;
    a->free(b);
    void* c = a->malloc(10 * MiB);  // the hole at pages 5-9 again
    ASSERT_EQ(c, first) << "step " << step;
    a->free(c);
    remapped.push_back(a->stats().vmm.remapped);
    ASSERT_TRUE(InvariantsHold(*a.alloc));
  }
  EXPECT_GT(remapped.front(), 0) << "the device must be full enough to remap";
  EXPECT_EQ(remapped.back(), remapped[3]) << "the steps still take each other's pages";
  EXPECT_LE(a->stats().reserved_bytes.all.peak, int64_t(26 * MiB));
  a->free(keep);
  a->free(keep2);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// A step of three blocks at their own addresses (4, 5 and 6 pages) on a
// device that maps 11 of their 15: whatever the order, some pages move every
// step. With one reuse distance for all, ties go by address, so the same
// block's pages stay mapped step after step and only the other two trade.
// (The largest-block order before happened to do the same here.)
TEST(RemapVictims, AStepTooBigToKeepMappedLosesTheSamePagesEachTime) {
  SimAllocator a(36 * MiB);
  void* holes[3];
  void* seps[3];
  const uint64_t sizes[3] = {8 * MiB, 10 * MiB, 12 * MiB};
  for (int i = 0; i < 3; ++i) {
    holes[i] = a->malloc(sizes[i]);
    seps[i] = a->malloc(2 * MiB);
    ASSERT_TRUE(holes[i] && seps[i]);
  }
  for (void* h : holes) a->free(h);
  a->empty_cache();
  a->set_memory_fraction(28.0 / 36.0);  // the separators' 3 pages and 11 more
  std::vector<int64_t> remapped;
  for (int step = 0; step < 12; ++step) {
    for (int i = 0; i < 3; ++i) {
      void* p = a->malloc(sizes[i]);
      ASSERT_EQ(p, holes[i]) << "step " << step << ", block " << i;
      a->free(p);
    }
    remapped.push_back(a->stats().vmm.remapped);
    ASSERT_TRUE(InvariantsHold(*a.alloc));
  }
  // The first block stays mapped; the other two trade 4 pages each way:
  // 8 granules a step, every step (taking the least recently freed pages
  // instead moved 12 a step).
  for (size_t step = 1; step < remapped.size(); ++step)
    EXPECT_EQ(remapped[step] - remapped[step - 1], 8) << "step " << step;
  EXPECT_LE(a->stats().reserved_bytes.all.current, int64_t(28 * MiB));
  for (void* s : seps) a->free(s);
}

// Emptying the cache takes every cached page whatever its history.
TEST(RemapVictims, EmptyCacheTakesEveryCachedPage) {
  SimAllocator a(26 * MiB, "pressure_threshold:0.5");
  void* keep = a->malloc(2 * MiB);
  for (int step = 0; step < 4; ++step) {
    void* b = a->malloc(12 * MiB);
    void* c = a->malloc(10 * MiB);
    ASSERT_TRUE(b && c);
    a->free(b);
    a->free(c);
  }
  a->empty_cache();
  EXPECT_EQ(a->stats().reserved_bytes.all.current, int64_t(2 * MiB));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(keep);
}

}  // namespace
}  // namespace hbmalloc
