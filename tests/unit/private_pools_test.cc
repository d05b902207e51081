// Private pools (CUDA graphs, torch.cuda.MemPool): routing by stream, memory
// kept apart from the default pool, statistics shared, release by use count.
#include <gtest/gtest.h>

#include "support/invariants.h"

namespace hbmalloc {
namespace {

using testing::InvariantsHold;
using testing::SimAllocator;

constexpr uint64_t MiB = 1ull << 20;
constexpr PoolId kGraph{0, 1};

bool on_stream_5(StreamId s) { return s == 5; }

// The private pool of the segment holding ptr ({0, 0}: the default pool); a
// pointer no segment holds fails the test.
PoolId PoolHolding(const Allocator& a, void* ptr) {
  const uint64_t addr = reinterpret_cast<uintptr_t>(ptr);
  for (const SegmentLayout& seg : a.layout())
    if (addr >= seg.addr && addr < seg.addr + seg.size) return seg.private_pool;
  ADD_FAILURE() << "no segment holds " << ptr;
  return PoolId{};
}

TEST(PrivatePools, AllocationsOnARoutedStreamLandInThePoolOthersDoNot) {
  SimAllocator a;
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  void* in_pool = a->malloc(8 * MiB, 5);
  void* outside = a->malloc(8 * MiB, 6);
  a->end_allocate_to_pool(kGraph);
  int in_pools = 0;
  for (const SegmentLayout& seg : a->layout())
    if (seg.private_pool == kGraph) {
      ++in_pools;
      EXPECT_EQ(seg.addr, reinterpret_cast<uintptr_t>(in_pool));
    }
  EXPECT_EQ(in_pools, 1);
  EXPECT_EQ(a->pool_use_count(kGraph), 1);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(outside);
  a->free(in_pool);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(PrivatePools, PoolMemoryIsNotReusedOutsideThePoolNorReleasedWhileInUse) {
  SimAllocator a;
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  void* p = a->malloc(8 * MiB, 5);
  a->free(p);  // freed during capture: cached in the pool
  a->end_allocate_to_pool(kGraph);
  void* q = a->malloc(8 * MiB, 5);  // same stream, but no longer routed
  EXPECT_NE(q, p);
  a->free(q);
  a->empty_cache();  // the graph still addresses p's memory
  EXPECT_EQ(a->stats().reserved_bytes.all.current, int64_t(8 * MiB));
  // A second capture into the same pool reuses its memory.
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  EXPECT_EQ(a->malloc(8 * MiB, 5), p);
  a->end_allocate_to_pool(kGraph);
  EXPECT_EQ(a->pool_use_count(kGraph), 2);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(p);
}

TEST(PrivatePools, StatisticsCountPoolBlocksAsTheDevices) {
  SimAllocator a;
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  void* p = a->malloc(3 * MiB, 5);
  a->end_allocate_to_pool(kGraph);
  Stats s = a->stats();
  EXPECT_EQ(s.allocated_bytes.all.current, int64_t(3 * MiB));
  EXPECT_EQ(s.reserved_bytes.all.current, int64_t(4 * MiB));
  EXPECT_EQ(s.requested_bytes.all.current, int64_t(3 * MiB));
  a->free(p, 3 * MiB);
  s = a->stats();
  EXPECT_EQ(s.allocated_bytes.all.current, 0);
  EXPECT_EQ(s.reserved_bytes.all.current, int64_t(4 * MiB));  // cached in the pool
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(PrivatePools, ReleasingTheLastUseGivesMemoryBackOnceItsBlocksAreFreed) {
  SimAllocator a;
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  void* kept = a->malloc(8 * MiB, 5);  // an output the caller still holds
  void* gone = a->malloc(4 * MiB, 5);
  a->free(gone);
  a->end_allocate_to_pool(kGraph);
  a->release_pool(kGraph);
  EXPECT_EQ(a->pool_use_count(kGraph), 0);
  EXPECT_EQ(a->stats().reserved_bytes.all.current, int64_t(8 * MiB));  // the free segment went at once
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(kept);
  EXPECT_EQ(a->stats().reserved_bytes.all.current, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(PrivatePools, SharedPoolNeedsEveryUseReleased) {
  SimAllocator a;
  a->create_pool(kGraph);
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  void* p = a->malloc(2 * MiB, 5);
  a->end_allocate_to_pool(kGraph);
  a->free(p);
  a->release_pool(kGraph);
  EXPECT_EQ(a->stats().reserved_bytes.all.current, int64_t(2 * MiB));
  a->release_pool(kGraph);
  EXPECT_EQ(a->stats().reserved_bytes.all.current, 0);
}

TEST(PrivatePools, LatestRouteWinsAndEachPoolIsRoutedOnce) {
  SimAllocator a;
  const PoolId other{0, 2};
  a->begin_allocate_to_pool(kGraph, [](StreamId) { return true; });
  a->begin_allocate_to_pool(other, on_stream_5);
  EXPECT_THROW(a->begin_allocate_to_pool(other, on_stream_5), Error);
  void* p = a->malloc(2 * MiB, 5);
  void* q = a->malloc(2 * MiB, 6);
  a->end_allocate_to_pool(other);
  a->end_allocate_to_pool(kGraph);
  EXPECT_THROW(a->end_allocate_to_pool(kGraph), Error);
  EXPECT_EQ(PoolHolding(*a.alloc, p), other);
  EXPECT_EQ(PoolHolding(*a.alloc, q), kGraph);
  a->free(p);
  a->free(q);
}

TEST(PrivatePools, BadPoolCallsAreErrorsThatChangeNothing) {
  SimAllocator a;
  EXPECT_THROW(a->release_pool(kGraph), Error);
  EXPECT_THROW(a->create_pool(PoolId{}), Error);
  EXPECT_THROW(a->begin_allocate_to_pool(kGraph, nullptr), Error);
  EXPECT_EQ(a->pool_use_count(kGraph), 0);
  a->create_pool(kGraph);
  a->release_pool(kGraph);
  EXPECT_THROW(a->release_pool(kGraph), Error);
}

TEST(PrivatePools, DoubleFreeOfAPoolBlockIsCaught) {
  SimAllocator a;
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  void* p = a->malloc(8 * MiB, 5);
  a->end_allocate_to_pool(kGraph);
  a->free(p);
  try {
    a->free(p);
    ADD_FAILURE() << "a second free of a pool block was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kDoubleFree) << e.what();  // named as such, not as an unknown pointer
  }
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// A pool's cached free blocks count in the device's largest free block, as
// they count in its cached bytes; otherwise fragmentation reads 100%.
TEST(PrivatePools, LargestFreeBlockCountsThePoolsCache) {
  SimAllocator a;
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  void* p = a->malloc(8 * MiB, 5);
  a->free(p);  // cached in the pool
  a->end_allocate_to_pool(kGraph);
  const Stats s = a->stats();
  EXPECT_EQ(s.reserved_bytes.all.current - s.allocated_bytes.all.current, int64_t(8 * MiB));
  EXPECT_EQ(s.largest_free_block, int64_t(8 * MiB));
  EXPECT_EQ(s.external_fragmentation, 0.0);
}

TEST(PrivatePools, SizeMismatchOnAPoolBlockIsNamedAndKeepsTheBlock) {
  SimAllocator a;
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  void* p = a->malloc(3 * MiB, 5);
  a->end_allocate_to_pool(kGraph);
  try {
    a->free(p, 3 * MiB + 1);
    FAIL() << "a wrong size was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kSizeMismatch) << e.what();
  }
  EXPECT_EQ(a->stats().allocation.all.current, 1);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(p, 3 * MiB);
  EXPECT_EQ(a->stats().allocation.all.current, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(PrivatePools, RecordStreamOnAPoolBlockDelaysItsReuse) {
  SimAllocator a;
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  void* p = a->malloc(8 * MiB, 5);
  a->end_allocate_to_pool(kGraph);
  a->record_stream(p, 9);
  a.sim->hold_stream(9);
  a->free(p);
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  void* q = a->malloc(8 * MiB, 5);
  EXPECT_NE(q, p);  // stream 9 may still read p
  a->end_allocate_to_pool(kGraph);
  a.sim->complete_stream(9);
  void* small = a->malloc(100, 1);  // outside a capture, pending frees drain
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  EXPECT_EQ(a->malloc(8 * MiB, 5), p);  // back in the pool, reused there
  a->end_allocate_to_pool(kGraph);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  for (void* x : {p, q, small}) a->free(x);
}

TEST(PrivatePools, WhileCapturingNoEventIsQueriedAndNothingIsReleased) {
  SimAllocator a(64 * MiB);
  void* p = a->malloc(8 * MiB, 1);
  void* cached = a->malloc(16 * MiB, 1);
  a->free(cached);  // a free segment that an OOM retry would release
  a->begin_allocate_to_pool(kGraph, on_stream_5);
  a->record_stream(p, 2);  // stream 2 is idle: its event is done already
  a->free(p);
  void* q = a->malloc(1 * MiB, 1);
  EXPECT_EQ(a->stats().active_bytes.all.current, int64_t(8 * MiB + 1 * MiB));  // p still pending
  EXPECT_THROW(a->malloc(60 * MiB, 5), Error);  // fails at once, no cache release
  Stats s = a->stats();
  EXPECT_EQ(s.num_alloc_retries, 0);
  EXPECT_EQ(s.num_sync_all_streams, 0);
  EXPECT_EQ(s.num_ooms, 1);
  a->end_allocate_to_pool(kGraph);
  void* r = a->malloc(1 * MiB, 1);  // capture over: pending frees drain
  EXPECT_EQ(a->stats().active_bytes.all.current, int64_t(2 * MiB));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(q);
  a->free(r);
}

}  // namespace
}  // namespace hbmalloc
