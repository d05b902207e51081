// hbm's mid-size pool: requests above small_size up to mid_size (1 MiB) get
// arenas (or segments) of their own, so a long-lived block of a few hundred
// KiB never splits a hole a large request comes back for; a pool that cannot
// grow still takes a cached free block of the other.
#include <gtest/gtest.h>

#include <string>

#include "hbmalloc/allocator.hpp"
#include "support/invariants.h"

namespace hbmalloc {
namespace {

using testing::InvariantsHold;
using testing::SimAllocator;

constexpr uint64_t KiB = 1ull << 10, MiB = 1ull << 20;

uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

// A step frees a 20 MiB activation, keeps a 200 KiB statistic, and asks for
// the 20 MiB again: with the mid pool it lands in its own hole and nothing
// is created or remapped; with mid_size:0 the statistic took the hole's
// start, and the request needs 20 MiB elsewhere (grown, or remapped from the
// hole's cached pages under remap:pressure).
TEST(MidPool, ALongLivedMidBlockLeavesALargeHoleWhole) {
  for (const std::string conf : {"", "vmm:off", "remap:never"}) {
    SCOPED_TRACE(conf);
    for (bool apart : {true, false}) {
      SCOPED_TRACE(apart ? "apart" : "mid_size:0");
      SimAllocator a(0, conf + (apart ? "" : (conf.empty() ? "" : ",") + std::string("mid_size:0")));
      void* act = a->malloc(20 * MiB);
      void* other = a->malloc(20 * MiB);
      a->free(act);
      void* stat = a->malloc(200 * KiB);
      const Stats before = a->stats();
      void* again = a->malloc(20 * MiB);
      const Stats after = a->stats();
      if (apart) {
        EXPECT_EQ(again, act);
        EXPECT_TRUE(Addr(stat) < Addr(act) || Addr(stat) >= Addr(act) + 20 * MiB) << "the mid block sits apart";
        EXPECT_EQ(after.reserved_bytes.all.current, before.reserved_bytes.all.current) << "the hole was reused";
        EXPECT_EQ(after.vmm.create + after.vmm.unmap, before.vmm.create + before.vmm.unmap);
      } else {
        EXPECT_EQ(stat, act) << "best fit put it at the hole's start";
        EXPECT_NE(again, act);
        if (!conf.empty())
          EXPECT_GE(after.reserved_bytes.all.current, before.reserved_bytes.all.current + int64_t(18 * MiB));
        else
          EXPECT_GE(after.vmm.unmap - before.vmm.unmap, 9) << "the hole's pages remapped";
      }
      EXPECT_TRUE(InvariantsHold(*a.alloc));
      for (void* p : {again, other, stat}) a->free(p);
      EXPECT_TRUE(InvariantsHold(*a.alloc));
    }
  }
}

// The pool a request belongs to is full and the device too: a cached free
// block of the other pool holds it, with no out-of-memory. Here the mid pool
// has 1.75 MiB free beside a live 256 KiB block and the device is full.
TEST(MidPool, ALargeRequestOnAFullDeviceUsesACachedMidBlock) {
  for (const char* conf : {"", "vmm:off"}) {
    SCOPED_TRACE(conf);
    SimAllocator a(4 * MiB, conf);
    void* mid[8];
    for (void*& p : mid) p = a->malloc(256 * KiB);  // one 2 MiB mid segment or granule
    void* other = a->malloc(2 * MiB - 512);          // the rest of the device, a large block
    ASSERT_NE(other, nullptr);
    for (int i = 0; i < 7; ++i) a->free(mid[i]);
    void* big = a->malloc(1536 * KiB);
    ASSERT_NE(big, nullptr);
    EXPECT_EQ(big, mid[0]);
    EXPECT_EQ(a->stats().num_ooms, 0);
    EXPECT_EQ(a->stats().reserved_bytes.all.current, int64_t(4 * MiB));
    EXPECT_TRUE(InvariantsHold(*a.alloc));
    // Freed, it coalesces back into the mid pool's free block.
    a->free(big);
    void* again = a->malloc(1536 * KiB);
    EXPECT_EQ(again, mid[0]);
    for (void* p : {again, mid[7], other}) a->free(p);
    EXPECT_TRUE(InvariantsHold(*a.alloc));
  }
}

// A mapped hole in the large pool no larger than mid_size holds no large
// request on its own: a mid-size request takes it before growing the mid
// pool. A larger hole is left whole for the large requests.
TEST(MidPool, AMidRequestFillsALargeHoleTooSmallForAnyLargeRequest) {
  for (const char* conf : {"", "vmm:off"}) {
    SCOPED_TRACE(conf);
    SimAllocator a(0, conf);
    void* head = a->malloc(3 * MiB);
    void* hole = a->malloc(1536 * KiB);
    void* tail = a->malloc(4 * MiB);
    a->free(hole);
    void* big = a->malloc(1280 * KiB);  // best fit: the hole's start, 256 KiB left after it
    ASSERT_EQ(big, hole);
    void* mid = a->malloc(200 * KiB);
    EXPECT_EQ(Addr(mid), Addr(big) + 1280 * KiB) << "the crevice";
    a->free(big);  // a 1.25 MiB hole before the mid block now: too large to fill
    void* other = a->malloc(200 * KiB);
    EXPECT_TRUE(Addr(other) < Addr(hole) || Addr(other) >= Addr(hole) + 1280 * KiB) << "not in the hole";
    void* again = a->malloc(1280 * KiB);
    EXPECT_EQ(again, hole) << "the large hole stayed whole";
    EXPECT_TRUE(InvariantsHold(*a.alloc));
    for (void* p : {head, tail, mid, other, again}) a->free(p);
    EXPECT_TRUE(InvariantsHold(*a.alloc));
  }
}

// Requests at the edges: small_size goes to slabs, just above it and
// mid_size itself to the mid pool, above mid_size to the large pool; with
// mid_size at or below small_size there is no mid band.
TEST(MidPool, TheBandIsAboveSmallSizeUpToMidSize) {
  SimAllocator a;
  void* slab = a->malloc(64 * KiB);
  void* low = a->malloc(64 * KiB + 1);
  void* high = a->malloc(1 * MiB);
  void* large = a->malloc(1 * MiB + 1);
  EXPECT_EQ(Addr(high), Addr(low) + 64 * KiB + 512) << "one mid arena, one after the other";
  EXPECT_NE(Addr(large), Addr(high) + 1 * MiB) << "the large block is not in the mid arena";
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  for (void* p : {slab, low, high, large}) a->free(p);

  SimAllocator none(0, "mid_size:64KiB");
  void* x = none->malloc(100 * KiB);
  void* y = none->malloc(2 * MiB);
  EXPECT_EQ(Addr(y), Addr(x) + 100 * KiB) << "no mid band: both in the large arena";
  EXPECT_TRUE(InvariantsHold(*none.alloc));
  for (void* p : {x, y}) none->free(p);
}

}  // namespace
}  // namespace hbmalloc
