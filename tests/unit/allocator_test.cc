// The Allocator on the sim backend: placement, statistics with PyTorch's
// meaning, streams, the cache, memory limits and the out-of-memory path.
#include <gtest/gtest.h>

#include <vector>

#include "support/invariants.h"

namespace hbmalloc {
namespace {

using testing::InvariantsHold;
using testing::SimAllocator;

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t GiB = 1ull << 30;
// Tests of placement with plain segments (vmm_allocator_test.cc has the page-mapped ones).
constexpr const char* kSegments = "vmm:off";

TEST(Allocator, ZeroSizeIsNullAndFreeingNullIsANoOp) {
  SimAllocator a;
  EXPECT_EQ(a->malloc(0), nullptr);
  a->free(nullptr);
  EXPECT_EQ(a->stats().allocation.all.current, 0);
}

TEST(Allocator, SmallRequestsShareOneSlabSegment) {
  SimAllocator a(0, kSegments);
  void* p = a->malloc(100);
  void* q = a->malloc(700);  // 704-byte class
  Stats s = a->stats();
  EXPECT_EQ(s.segment.small_pool.current, 2);  // one slab per size class
  EXPECT_EQ(s.reserved_bytes.small_pool.current, int64_t(2 * Config{}.slab_size));
  EXPECT_EQ(s.allocated_bytes.small_pool.current, 512 + 704);
  EXPECT_EQ(s.requested_bytes.small_pool.current, 800);
  EXPECT_EQ(s.allocation.small_pool.current, 2);
  EXPECT_EQ(s.allocation.large_pool.current, 0);
  void* r = a->malloc(512);  // same class as p: same slab, next slot
  EXPECT_EQ(reinterpret_cast<uintptr_t>(r), reinterpret_cast<uintptr_t>(p) + 512);
  EXPECT_EQ(a->stats().segment.small_pool.current, 2);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  for (void* x : {p, q, r}) a->free(x);
  EXPECT_EQ(a->stats().allocated_bytes.all.current, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(Allocator, SmallSlotsAreReusedLifo) {
  SimAllocator a;
  void* p = a->malloc(4000);
  a->free(p);
  EXPECT_EQ(a->malloc(4000), p);
}

TEST(Allocator, LargeBlocksAreRoundedTo512AndSegmentsTo2MiB) {
  SimAllocator a;
  void* p = a->malloc(3 * MiB + 1);
  Stats s = a->stats();
  EXPECT_EQ(s.allocated_bytes.large_pool.current, int64_t(3 * MiB + 512));
  EXPECT_EQ(s.reserved_bytes.large_pool.current, int64_t(4 * MiB));
  EXPECT_EQ(s.requested_bytes.large_pool.current, int64_t(3 * MiB + 1));
  // The tail of the segment is a free split block: inactive_split.
  EXPECT_EQ(s.inactive_split.large_pool.current, 1);
  EXPECT_EQ(s.inactive_split_bytes.large_pool.current, int64_t(MiB - 512));
  a->free(p);
  s = a->stats();
  EXPECT_EQ(s.inactive_split.large_pool.current, 0);  // coalesced back to one whole block
  EXPECT_EQ(s.reserved_bytes.large_pool.current, int64_t(4 * MiB));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(Allocator, BestFitPicksTheSmallestFreeBlockThatFits) {
  SimAllocator a(0, kSegments);
  void* big = a->malloc(64 * MiB);
  void* mid = a->malloc(8 * MiB);
  void* keep1 = a->malloc(2 * MiB);
  (void)keep1;
  a->free(big);
  a->free(mid);
  void* p = a->malloc(6 * MiB);
  EXPECT_EQ(p, mid);  // the 8 MiB block, not the 64 MiB one
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(Allocator, SplitAndCoalesceRestoreOneBlock) {
  SimAllocator a;
  void* whole = a->malloc(32 * MiB);
  a->free(whole);
  std::vector<void*> parts;
  for (int i = 0; i < 4; ++i) parts.push_back(a->malloc(8 * MiB));
  EXPECT_EQ(a->stats().segment.large_pool.current, 1);  // all carved from the cached segment
  for (int i = 0; i < 4; ++i) EXPECT_EQ(reinterpret_cast<uintptr_t>(parts[i]), reinterpret_cast<uintptr_t>(whole) + i * 8 * MiB);
  // Free out of order: middle ones first, so coalescing merges on both sides.
  for (int i : {1, 2, 0, 3}) {
    a->free(parts[i]);
    EXPECT_TRUE(InvariantsHold(*a.alloc));
  }
  EXPECT_EQ(a->malloc(32 * MiB), whole);
}

TEST(Allocator, StatCountersKeepPeaksAndTotals) {
  SimAllocator a;
  void* p = a->malloc(10 * MiB);
  void* q = a->malloc(10 * MiB);
  a->free(p);
  a->free(q);
  Stats s = a->stats();
  EXPECT_EQ(s.allocation.all.current, 0);
  EXPECT_EQ(s.allocation.all.peak, 2);
  EXPECT_EQ(s.allocation.all.allocated, 2);
  EXPECT_EQ(s.allocation.all.freed, 2);
  EXPECT_EQ(s.allocated_bytes.all.peak, int64_t(20 * MiB));
  a->reset_peak_stats();
  EXPECT_EQ(a->stats().allocated_bytes.all.peak, 0);
  EXPECT_EQ(a->stats().reserved_bytes.all.peak, a->stats().reserved_bytes.all.current);
}

TEST(Allocator, EmptyCacheReleasesEveryFreeSegment) {
  SimAllocator a(0, kSegments);
  void* keep = a->malloc(5 * MiB);
  for (uint64_t size : {uint64_t(100), uint64_t(5000), 3 * MiB, 50 * MiB}) a->free(a->malloc(size));
  EXPECT_GT(a->stats().segment.all.current, 1);
  a->empty_cache();
  Stats s = a->stats();
  EXPECT_EQ(s.segment.all.current, 1);  // only the one holding `keep`
  EXPECT_EQ(s.reserved_bytes.all.current, int64_t(6 * MiB));
  EXPECT_EQ(a.sim->used_bytes(), 6 * MiB);
  EXPECT_EQ(s.num_device_free, s.num_device_alloc - 1);
  // Plain segments: their bytes are what was reserved and released.
  EXPECT_EQ(s.device_alloc_bytes, s.reserved_bytes.all.allocated);
  EXPECT_EQ(s.device_free_bytes, s.reserved_bytes.all.freed);
  EXPECT_EQ(s.device_alloc_bytes - s.device_free_bytes, int64_t(6 * MiB));
  EXPECT_EQ(s.vmm, VmmCounts{});
  // Priced as their 2 MiB granules: created, mapped and opened when taken,
  // unmapped and released when given back.
  const double taken = double(s.device_alloc_bytes) / double(2 * MiB), given = double(s.device_free_bytes) / double(2 * MiB);
  EXPECT_NEAR(modeled_device_seconds(s), taken * (200e-6 + 1.5e-6 + 36e-6) + given * (26e-6 + 26e-6), 1e-12);
  // Each cudaMalloc / cudaFree is one call, priced per call as the table says.
  EXPECT_EQ(s.device_alloc_calls, s.num_device_alloc);
  EXPECT_EQ(s.device_free_calls, s.num_device_free);
  DevicePrices per_call;
  per_call.malloc_call = 1e-3;
  per_call.free_call = 2e-3;
  EXPECT_NEAR(modeled_device_seconds(s, per_call) - modeled_device_seconds(s),
              double(s.device_alloc_calls) * 1e-3 + double(s.device_free_calls) * 2e-3, 1e-12);
  a->free(keep);
  a->empty_cache();
  EXPECT_EQ(a->stats().reserved_bytes.all.current, 0);
  EXPECT_EQ(a.sim->live_segments(), 0u);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// A large block freed on one stream serves another once the work queued on
// its stream before the free is done (a fence recorded at the free says so);
// before that only its own stream, whose order makes it safe, reuses it.
TEST(Allocator, AStreamTakesAnotherStreamsFreeBlockOnceThatStreamsWorkIsDone) {
  SimAllocator a(0, kSegments);
  void* other = a->malloc(8 * MiB, /*stream=*/2);  // a second stream: frees are fenced from now on
  a.sim->hold_stream(1);                          // kernels on stream 1 still queued
  void* p = a->malloc(8 * MiB, 1);
  a->free(p);
  void* q = a->malloc(8 * MiB, 3);
  EXPECT_NE(q, p);
  EXPECT_EQ(a->malloc(8 * MiB, 1), p);
  a->free(p);
  a.sim->complete_stream(1);
  EXPECT_NE(a->malloc(8 * MiB, 3), p) << "freed after the pending fence: not known done yet";
  // Stream 1's next call fences its frees again (its work is done at once now).
  a->free(a->malloc(1000, 1));
  EXPECT_EQ(a->malloc(8 * MiB, 3), p);
  // Slabs stay with their stream.
  void* s1 = a->malloc(1000, 1);
  a->free(s1);
  EXPECT_NE(a->malloc(1000, 2), s1);
  a->free(other);
  a->free(q);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// Before a second stream allocates nothing is fenced (no event per free in a
// one-stream job), so a block freed then is its stream's alone.
TEST(Allocator, FreesBeforeASecondStreamStayWithTheirStream) {
  SimAllocator a(0, kSegments);
  void* p = a->malloc(8 * MiB, /*stream=*/1);
  a->free(p);
  EXPECT_NE(a->malloc(8 * MiB, 2), p);
  EXPECT_EQ(a->malloc(8 * MiB, 1), p);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(Allocator, OutOfMemoryReleasesTheCacheRetriesThenFailsCleanly) {
  SimAllocator a(64 * MiB, kSegments);
  void* p = a->malloc(40 * MiB, 1);
  a->free(p);  // 40 MiB cached for stream 1
  // Stream 2 cannot use stream 1's cache (freed before a second stream
  // came, so never fenced): the allocator must release it.
  void* q = a->malloc(40 * MiB, 2);
  ASSERT_NE(q, nullptr);
  Stats s = a->stats();
  EXPECT_EQ(s.num_alloc_retries, 1);
  EXPECT_EQ(s.num_ooms, 0);
  try {
    a->malloc(40 * MiB, 2);
    FAIL() << "expected out of memory";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory);
    EXPECT_NE(std::string(e.what()).find("40.00 MiB"), std::string::npos) << e.what();
  }
  s = a->stats();
  EXPECT_EQ(s.num_ooms, 1);
  EXPECT_EQ(s.num_alloc_retries, 2);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  // Still usable: smaller requests fit, and freeing makes room again.
  void* small = a->malloc(10 * MiB, 2);
  ASSERT_NE(small, nullptr);
  a->free(q);
  a->free(small);
  EXPECT_NE(a->malloc(60 * MiB, 3), nullptr);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(Allocator, MemoryFractionCapsReserved) {
  SimAllocator a(100 * MiB);
  a->set_memory_fraction(0.5);
  EXPECT_EQ(a->stats().memory_limit, int64_t(50 * MiB));
  EXPECT_THROW(a->malloc(52 * MiB), Error);
  void* p = a->malloc(48 * MiB);
  EXPECT_NE(p, nullptr);
  EXPECT_THROW(a->set_memory_fraction(0.0), Error);
  EXPECT_THROW(a->set_memory_fraction(1.5), Error);
  a->set_memory_fraction(1.0);
  EXPECT_NE(a->malloc(50 * MiB), nullptr);
}

TEST(Allocator, MemoryFractionFromConfig) {
  SimAllocator a(GiB, "memory_fraction:0.25");
  EXPECT_EQ(a->stats().memory_limit, int64_t(GiB / 4));
  EXPECT_THROW(a->malloc(300 * MiB), Error);
}

TEST(Allocator, RecordStreamDelaysReuseUntilTheOtherStreamIsDone) {
  SimAllocator a;
  void* p = a->malloc(8 * MiB, 1);
  a->record_stream(p, 2);
  a.sim->hold_stream(2);  // stream 2 still has p's work queued
  a->free(p);
  Stats s = a->stats();
  EXPECT_EQ(s.allocation.all.current, 0);  // the caller let go...
  EXPECT_EQ(s.active.all.current, 1);      // ...but the memory is still in use
  EXPECT_EQ(s.active_bytes.all.current, int64_t(8 * MiB));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  void* q = a->malloc(8 * MiB, 1);
  EXPECT_NE(q, p);  // not reused while stream 2 may read it
  EXPECT_THROW(a->free(p), Error);  // a second free is still a double free
  a.sim->complete_stream(2);
  a->free(q);
  void* r = a->malloc(8 * MiB, 1);  // pending frees are drained on malloc
  EXPECT_TRUE(r == p || r == q);
  EXPECT_EQ(a->stats().active.all.current, 1);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(Allocator, EmptyCacheSynchronizesPendingFrees) {
  SimAllocator a;
  void* p = a->malloc(1000, 1);
  a->record_stream(p, 7);
  a.sim->hold_stream(7);
  a->free(p);
  a->empty_cache();
  Stats s = a->stats();
  EXPECT_EQ(s.num_sync_all_streams, 1);
  EXPECT_EQ(s.active.all.current, 0);
  EXPECT_EQ(s.reserved_bytes.all.current, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(Allocator, RecordStreamOnItsOwnStreamIsANoOp) {
  SimAllocator a;
  void* p = a->malloc(4096, 3);
  a->record_stream(p, 3);
  a.sim->hold_stream(3);
  a->free(p);
  EXPECT_EQ(a->stats().active.all.current, 0);
}

TEST(Allocator, StatsReportLargestFreeBlockAndExternalFragmentation) {
  SimAllocator a(0, kSegments);
  std::vector<void*> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(a->malloc(4 * MiB));
  a->empty_cache();
  for (int i = 0; i < 8; i += 2) a->free(blocks[i]);  // four separate 4 MiB holes
  Stats s = a->stats();
  EXPECT_EQ(s.largest_free_block, int64_t(4 * MiB));
  EXPECT_NEAR(s.external_fragmentation, 0.75, 1e-9);  // 1 - 4/16
  for (int i = 1; i < 8; i += 2) a->free(blocks[i]);
  s = a->stats();
  // Eight separate 4 MiB segments: 32 MiB cached, no 8 MiB request fits in it.
  EXPECT_NEAR(s.external_fragmentation, 0.875, 1e-9);
  a->empty_cache();
  EXPECT_EQ(a->stats().external_fragmentation, 0.0);  // nothing cached
}

TEST(Allocator, StatsJsonUsesPytorchKeys) {
  SimAllocator a(0, std::string(kSegments) + ",slab_size:2MiB");  // one 2 MiB slab
  a->free(a->malloc(1000));
  std::string json = stats_to_json(a->stats());
  for (const char* key :
       {"\"allocation.all.current\":0", "\"segment.small_pool.current\":1", "\"active.large_pool.peak\":0",
        "\"inactive_split.all.current\":0", "\"allocated_bytes.small_pool.peak\":1024",
        "\"reserved_bytes.all.current\":2097152", "\"active_bytes.all.freed\":1024",
        "\"inactive_split_bytes.all.allocated\"", "\"requested_bytes.all.allocated\":1000",
        "\"num_alloc_retries\":0", "\"num_ooms\":0", "\"num_sync_all_streams\":0", "\"num_device_alloc\":1",
        "\"num_device_free\":0", "\"hbmalloc.largest_free_block\":2097152", "\"hbmalloc.external_fragmentation\""})
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json;
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
}

TEST(Allocator, UnknownBackendOrPolicyIsAConfigError) {
  // The code of the Error that building an allocator for `device` throws.
  auto error_of = [](const Config& c, int device) {
    try {
      Allocator a(c, device);
    } catch (const Error& e) {
      return e.code();
    }
    ADD_FAILURE() << "no error for device " << device << " with " << c.to_string();
    return ErrorCode::kInvariant;
  };
  Config c;
  c.backend = "tpu";
  EXPECT_EQ(error_of(c, 0), ErrorCode::kConfig);
  c.backend = "sim";
  c.policy = "nope";
  EXPECT_EQ(error_of(c, 0), ErrorCode::kConfig);
  c.policy = "hbm";
  EXPECT_EQ(error_of(c, 99), ErrorCode::kInvalidArgument);  // sim has 8 devices by default
}

}  // namespace
}  // namespace hbmalloc
