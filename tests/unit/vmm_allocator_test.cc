// The hbm policy's page-mapped large path on the (checked) sim backend:
// blocks share granules where they meet, a request succeeds whenever free
// physical memory covers it, remapping waits for queued work, every VMM
// operation is counted, and backends without VMM fall back to segments.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/forwarding_backend.h"
#include "backend/host_backend.h"
#include "backend/sim_backend.h"
#include "hbmalloc/allocator.hpp"
#include "support/invariants.h"
#include "support/no_vmm_backend.h"

namespace hbmalloc {
namespace {

using testing::InvariantsHold;
using testing::LayoutAgreesWithStats;
using testing::SimAllocator;

constexpr uint64_t MiB = 1ull << 20;

uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

// Every live block is mapped with access set in the sim.
::testing::AssertionResult Mapped(SimAllocator& a, const std::vector<std::pair<void*, uint64_t>>& blocks) {
  for (auto [p, size] : blocks)
    if (!a.sim->accessible(Addr(p), size)) return ::testing::AssertionFailure() << p << " is not mapped";
  return ::testing::AssertionSuccess();
}

TEST(VmmAllocator, NeighboursShareTheGranuleWhereTheyMeet) {
  SimAllocator a;
  void* x = a->malloc(3 * MiB);
  void* y = a->malloc(3 * MiB);
  void* z = a->malloc(3 * MiB);
  EXPECT_EQ(Addr(y), Addr(x) + 3 * MiB);  // one arena, one after the other
  EXPECT_EQ(Addr(z), Addr(y) + 3 * MiB);
  Stats s = a->stats();
  EXPECT_EQ(s.reserved_bytes.large_pool.current, int64_t(10 * MiB));  // 9 MiB on five granules, not 12
  EXPECT_EQ(s.segment.large_pool.current, 1);                        // one run of mapped pages
  EXPECT_EQ(s.vmm.create, 5);
  EXPECT_EQ(s.vmm.map, 5);
  EXPECT_EQ(s.vmm.set_access, 5);
  EXPECT_EQ(s.vmm.unmap, 0);
  EXPECT_EQ(s.num_device_alloc, 0);  // no plain segment
  EXPECT_EQ(a.sim->used_bytes(), 10 * MiB);
  EXPECT_TRUE(Mapped(a, {{x, 3 * MiB}, {y, 3 * MiB}, {z, 3 * MiB}}));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(VmmAllocator, GrowingUsesTheFreeBlockBeforeTheGap) {
  SimAllocator a;
  void* x = a->malloc(7 * MiB);
  void* y = a->malloc(1 * MiB + 512);  // ends inside the fifth granule
  a->free(y);
  // 1 MiB + 512 free at the end of the mapped run: a 2 MiB request starts there
  // and needs one more granule, not two.
  void* z = a->malloc(2 * MiB);
  EXPECT_EQ(z, y);
  EXPECT_EQ(a->stats().reserved_bytes.all.current, int64_t(10 * MiB));
  EXPECT_TRUE(Mapped(a, {{x, 7 * MiB}, {z, 2 * MiB}}));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// Free memory in pieces too small for the request: remapping serves it
// within the capacity, with no release-and-retry and no new granule.
TEST(VmmAllocator, ARequestFitsWheneverFreePhysicalMemoryCoversIt) {
  SimAllocator a(64 * MiB, "remap:pressure");
  std::vector<void*> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(a->malloc(8 * MiB));
  for (int i = 0; i < 8; i += 2) a->free(blocks[i]);  // 32 MiB free in four 8 MiB holes
  const Stats before = a->stats();
  void* big = a->malloc(30 * MiB);
  ASSERT_NE(big, nullptr);
  const Stats s = a->stats();
  EXPECT_EQ(s.num_alloc_retries, 0);
  EXPECT_EQ(s.num_ooms, 0);
  EXPECT_EQ(s.vmm.create, before.vmm.create);  // nothing new: all remapped
  EXPECT_EQ(s.vmm.unmap, 15);                   // 30 MiB of cached granules moved
  EXPECT_EQ(s.vmm.map - before.vmm.map, 15);
  EXPECT_LE(uint64_t(s.reserved_bytes.all.current), 64 * MiB);
  std::vector<std::pair<void*, uint64_t>> live = {{big, 30 * MiB}};
  for (int i = 1; i < 8; i += 2) live.push_back({blocks[i], 8 * MiB});
  EXPECT_TRUE(Mapped(a, live));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  // Once free physical memory does not cover a request, it fails cleanly.
  EXPECT_THROW(a->malloc(8 * MiB), Error);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(big);
  EXPECT_NE(a->malloc(8 * MiB), nullptr);
}

// Near a full device a request may need both: new granules where the limit
// leaves room and remapped ones for the rest, even where the threshold would
// let it grow by all of them. Neither half alone covers it; no release and
// retry is needed.
TEST(VmmAllocator, NearAFullDeviceARequestTakesTheRoomLeftAndRemapsTheRest) {
  SimAllocator a(20 * MiB, "remap:pressure,pressure_threshold:0.5");
  void* hole = a->malloc(8 * MiB);
  void* keep = a->malloc(8 * MiB);
  a->free(hole);                      // 4 cached granules; the limit leaves room for 2
  void* big = a->malloc(10 * MiB);  // 5 granules: the hole is too small for it
  ASSERT_NE(big, nullptr);
  const Stats s = a->stats();
  EXPECT_EQ(s.num_alloc_retries, 0);
  EXPECT_EQ(s.vmm.release, 0);
  EXPECT_EQ(s.vmm.remapped, 3);
  EXPECT_EQ(s.vmm.create, 10);
  EXPECT_EQ(s.reserved_bytes.all.current, int64_t(20 * MiB));
  EXPECT_TRUE(Mapped(a, {{keep, 8 * MiB}, {big, 10 * MiB}}));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(VmmAllocator, RemapNeverReleasesAndRetriesInstead) {
  SimAllocator a(64 * MiB, "remap:never");
  std::vector<void*> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(a->malloc(8 * MiB));
  for (int i = 0; i < 8; i += 2) a->free(blocks[i]);
  ASSERT_NE(a->malloc(30 * MiB), nullptr);
  const Stats s = a->stats();
  EXPECT_EQ(s.num_alloc_retries, 1);  // the cache went back to the device first
  EXPECT_GT(s.vmm.release, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// With room to grow, remap:pressure creates while the cache stays within
// 1 - pressure_threshold of reserved; remap:always moves cached granules first.
TEST(VmmAllocator, PressureThresholdDecidesBetweenGrowingAndRemapping) {
  for (const char* conf : {"remap:always,remap_budget:off", "remap:pressure,pressure_threshold:0.5"}) {
    SCOPED_TRACE(conf);
    SimAllocator a(0, conf);
    void* keep = a->malloc(16 * MiB);
    void* hole = a->malloc(8 * MiB);
    void* keep2 = a->malloc(16 * MiB);
    a->free(hole);
    void* big = a->malloc(12 * MiB);  // the 8 MiB hole does not fit it
    const Stats s = a->stats();
    if (std::string(conf).rfind("remap:always", 0) == 0) {
      EXPECT_EQ(s.vmm.unmap, 4);  // the hole's granules moved under the new block, two more made
      EXPECT_EQ(s.reserved_bytes.all.current, int64_t(44 * MiB));
    } else {
      EXPECT_EQ(s.vmm.unmap, 0);  // 8 MiB cached of 52 reserved: no pressure
      EXPECT_EQ(s.reserved_bytes.all.current, int64_t(52 * MiB));
    }
    EXPECT_TRUE(Mapped(a, {{keep, 16 * MiB}, {keep2, 16 * MiB}, {big, 12 * MiB}}));
    EXPECT_TRUE(InvariantsHold(*a.alloc));
  }
}

// The remap budget: remapping's modeled time stays within remap_budget of the
// clock's elapsed time plus one remap_window (here a replay's trace clock,
// set by hand): a bucket that starts full and refills at the share. Past it
// granules are created instead, unless the limit leaves no room for them;
// with no clock there is no budget.
constexpr double kRemapSeconds = 26e-6 + 1.5e-6 + 36e-6;  // one granule's unmap, map and set-access

// Two 8 MiB holes between held blocks; a 12 MiB request (six granules) fits
// neither, so remap:always wants to move six.
std::vector<void*> MakeHoles(Allocator& a) {
  std::vector<void*> held;
  for (int i = 0; i < 5; ++i) held.push_back(a.malloc(8 * MiB));
  a.free(held[1]);
  a.free(held[3]);
  return {held[0], held[2], held[4]};
}
void MakeHoles(SimAllocator& a) { MakeHoles(*a.alloc); }

struct Moved {
  int64_t remapped, refused;
  bool operator==(const Moved&) const = default;
};
std::ostream& operator<<(std::ostream& os, const Moved& m) {
  return os << m.remapped << " remapped, " << m.refused << " made instead";
}

// A 12 MiB request beside MakeHoles' holes under `conf`, on the trace clock
// at `clock`: the granules it remapped and those the budget had made instead.
Moved TwelveMiBBesideHoles(const std::string& conf, std::optional<int64_t> clock = 1'000'000) {
  SimAllocator a(0, conf);
  a.sim->set_trace_time(clock);
  MakeHoles(a);
  EXPECT_NE(a->malloc(12 * MiB), nullptr);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  return {a->stats().vmm.remapped, a->stats().vmm.remap_refused};
}

TEST(VmmAllocator, TheRemapBudgetStartsWithOneWindowOfCredit) {
  // 1% of a 14 ms window: 140 us, two granules' remap; the other four are made.
  EXPECT_EQ(TwelveMiBBesideHoles("remap:always,remap_budget:0.01,remap_window:14ms"), (Moved{2, 4}));
  // The default window (60 s) holds 600 ms: all six move at once.
  EXPECT_EQ(TwelveMiBBesideHoles("remap:always,remap_budget:0.01"), (Moved{6, 0}));
  // Budget 0: nothing moves.
  EXPECT_EQ(TwelveMiBBesideHoles("remap:always,remap_budget:0"), (Moved{0, 6}));
}

TEST(VmmAllocator, TheRemapBudgetRefillsAtItsShareAndHoldsOneWindowAtMost) {
  SimAllocator a(0, "remap:always,remap_budget:0.01,remap_window:14ms");
  // One round at `at_us`: the holes made anew, the 12 MiB request, then
  // everything freed and given back. The granules it remapped.
  auto round = [&a](int64_t at_us) {
    a.sim->set_trace_time(at_us);
    std::vector<void*> held;
    for (int i = 0; i < 5; ++i) held.push_back(a->malloc(8 * MiB));
    a->free(held[1]);
    a->free(held[3]);
    const int64_t before = a->stats().vmm.remapped;
    void* p = a->malloc(12 * MiB);
    EXPECT_NE(p, nullptr);
    const int64_t moved = a->stats().vmm.remapped - before;
    for (void* q : {p, held[0], held[2], held[4]}) a->free(q);
    a->empty_cache();
    return moved;
  };
  EXPECT_EQ(round(1'000'000), 2) << "the full bucket: 140 us";
  EXPECT_EQ(round(1'000'000), 0) << "no time passed: nothing more";
  EXPECT_EQ(round(1'000'000 + 7'000), 1) << "7 ms later 1% of them, 70 us: one granule";
  EXPECT_EQ(round(101'000'000), 2) << "100 s later the bucket holds one window's 140 us, not a second's worth";
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(VmmAllocator, TheRemapBudgetGivesWayOnAFullDeviceAndNeedsAClock) {
  {  // A full device: the budget gives way rather than fail the request.
    SimAllocator a(40 * MiB, "remap:always,remap_budget:0");
    MakeHoles(a);
    ASSERT_NE(a->malloc(12 * MiB), nullptr);
    EXPECT_GT(a->stats().vmm.unmap, 0);
    EXPECT_EQ(a->stats().vmm.remap_refused, 0);
    EXPECT_LE(a->stats().reserved_bytes.all.current, int64_t(40 * MiB));
  }
  // No clock (a trace without times): no budget.
  EXPECT_EQ(TwelveMiBBesideHoles("remap:always,remap_budget:0", std::nullopt).remapped, 6);
}

// Unset, the budget is 1% under hbm's default remapping and none once remap
// or pressure_threshold is given.
TEST(VmmAllocator, TheDefaultBudgetHoldsTheDefaultRemappingOnly) {
  // At the default threshold the 12 MiB request may grow by one granule
  // (40 MiB / 0.95 is 42.1) and wants five remapped: 1% of 14 ms allows two.
  EXPECT_EQ(TwelveMiBBesideHoles("remap_window:14ms"), (Moved{2, 3}));
  EXPECT_EQ(TwelveMiBBesideHoles("pressure_threshold:0.95,remap_window:14ms"), (Moved{5, 0}));
  EXPECT_EQ(TwelveMiBBesideHoles("remap:always,remap_window:14ms"), (Moved{6, 0}));
  EXPECT_EQ(TwelveMiBBesideHoles("remap:always,remap_budget:0.01,remap_window:14ms"), (Moved{2, 4}));
}

// In a process the budget is kept against the steady clock: time that
// passes refills the bucket, up to its window's worth.
TEST(VmmAllocator, TheRemapBudgetRefillsOnTheSteadyClockInAProcess) {
  Config config = Config::parse("remap:always,remap_budget:0.01,remap_window:10ms");
  config.backend = "host";
  Allocator a(config, std::make_unique<HostBackend>(0, 0));
  // Each round: the holes made anew and a 12 MiB request that wants six
  // granules remapped; what it remapped, after which everything is given back.
  auto round = [&a] {
    std::vector<void*> held = MakeHoles(a);
    const int64_t before = a.stats().vmm.remapped;
    void* p = a.malloc(12 * MiB);
    EXPECT_NE(p, nullptr);
    held.push_back(p);
    for (void* q : held) a.free(q);
    a.empty_cache();
    return a.stats().vmm.remapped - before;
  };
  EXPECT_EQ(round(), 1) << "1% of 10 ms: 100 us, one granule's remap";
  // 50 ms refill 500 us, of which the bucket keeps 100 us: one granule again
  // (a clock that stood still would give none).
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(round(), 1);
  EXPECT_TRUE(InvariantsHold(a));
}

// Over a long run of random requests on the trace clock, the modeled time of
// every remap stays within budget x (elapsed + window), and the budget binds.
TEST(VmmAllocator, RemappingNeverPassesTheBudgetsBound) {
  constexpr double kBudget = 0.01, kWindow = 0.05;
  SimAllocator a(0, "remap:always,remap_budget:0.01,remap_window:50ms");
  std::mt19937_64 rng(5);
  std::vector<void*> live;
  const int64_t start = 1'000'000;
  for (int op = 0; op < 20'000; ++op) {
    const int64_t now = start + int64_t(op) * 200;  // 200 us an operation: 4 s in all
    a.sim->set_trace_time(now);
    if (live.size() < 64 && (live.empty() || rng() % 2)) {
      live.push_back(a->malloc((1 + rng() % 64) * MiB + rng() % MiB));
    } else {
      const size_t i = rng() % live.size();
      a->free(live[i]);
      live[i] = live.back();
      live.pop_back();
    }
    const VmmCounts v = a->stats().vmm;
    ASSERT_LE(double(v.remapped) * kRemapSeconds, kBudget * (double(now - start) / 1e6 + kWindow) + 1e-12)
        << "op " << op;
  }
  const VmmCounts v = a->stats().vmm;
  EXPECT_GT(v.remap_refused, 0) << "the budget never bound: the test shows nothing";
  EXPECT_GT(double(v.remapped) * kRemapSeconds, 2 * kBudget * kWindow) << "the bucket never refilled";
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  for (void* p : live) a->free(p);
}

// Remapping that recurs is bought out (remap_overhead). Two requests take
// turns at a peak already reached, each where the other's pages are: a
// 12 MiB block that fits no hole and a 10 MiB one in the hole it leaves, on
// an unlimited device where only the pressure rule (0.95) remaps. Each step
// moves the same granules back and forth. What each of `steps` steps remapped.
struct Turns {
  std::vector<int64_t> remapped;  // per step
  int64_t bought = 0;
  int64_t reserved = 0;  // at the end
};
Turns TakeTurns(const std::string& conf, int steps = 20) {
  SimAllocator a(0, conf);
  a.sim->set_trace_time(1'000'000);
  void* keep = a->malloc(2 * MiB);
  void* hole = a->malloc(10 * MiB);
  void* keep2 = a->malloc(2 * MiB);
  EXPECT_TRUE(keep && hole && keep2);
  a->free(hole);
  Turns t;
  for (int step = 0; step < steps; ++step) {
    const int64_t before = a->stats().vmm.remapped;
    void* b = a->malloc(12 * MiB);
    EXPECT_NE(b, nullptr);
    a->free(b);
    void* c = a->malloc(10 * MiB);
    EXPECT_NE(c, nullptr);
    a->free(c);
    t.remapped.push_back(a->stats().vmm.remapped - before);
  }
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  t.bought = a->stats().vmm.remap_bought;
  t.reserved = a->stats().reserved_bytes.all.current;
  a->free(keep);
  a->free(keep2);
  return t;
}

int64_t Sum(const std::vector<int64_t>& v, size_t from = 0) {
  int64_t s = 0;
  for (size_t i = from; i < v.size(); ++i) s += v[i];
  return s;
}

TEST(VmmAllocator, RemappingThatRecursIsBoughtOut) {
  const Turns off = TakeTurns("remap_overhead:off");
  ASSERT_GT(Sum(off.remapped, 10), 0) << "the turns never remap: the test shows nothing";
  for (size_t i = 1; i < off.remapped.size(); ++i) EXPECT_GT(off.remapped[i], 0) << "step " << i;
  EXPECT_EQ(off.bought, 0);

  // At the defaults the 10 MiB request, remapped at the peak in each of the
  // first four steps, gets its five granules new in the fifth: the moves stop
  // (10 granules a step before) for 10 MiB more reserved.
  const Turns on = TakeTurns("");
  EXPECT_EQ(on.bought, 5);
  EXPECT_EQ(Sum(on.remapped, 5), 0) << "still remapping: " << ::testing::PrintToString(on.remapped);
  EXPECT_EQ(Sum(on.remapped), 45);
  EXPECT_EQ(on.reserved, off.reserved + int64_t(10 * MiB));
}

// Unset, remap_overhead holds under the default remapping only, as the
// budget; given, it holds under any.
TEST(VmmAllocator, TheDefaultOverheadHoldsTheDefaultRemappingOnly) {
  const Turns chosen = TakeTurns("pressure_threshold:0.95");
  EXPECT_EQ(chosen.bought, 0);
  EXPECT_GT(Sum(chosen.remapped, 10), 0);
  const Turns both = TakeTurns("pressure_threshold:0.95,remap_overhead:0.05");
  EXPECT_GT(both.bought, 0);
  EXPECT_EQ(Sum(both.remapped, 10), 0);
  // A share of creating time remapping has not reached: nothing bought.
  const Turns high = TakeTurns("remap_overhead:100");
  EXPECT_EQ(high.bought, 0);
  EXPECT_EQ(high.remapped, TakeTurns("remap_overhead:off").remapped);
}

// On the largest device hbmalloc models (1 PiB) each stream's arena reserves
// a bounded range, so a dozen streams all get theirs: no release-and-retry.
TEST(VmmAllocator, ArenasOfManyStreamsFitOnAHugeDevice) {
  SimAllocator a(uint64_t(1) << 50, "");
  std::vector<void*> held;
  for (StreamId stream = 0; stream < 12; ++stream) held.push_back(a->malloc(64 * MiB, stream));
  const Stats s = a->stats();
  EXPECT_EQ(s.num_alloc_retries, 0);
  EXPECT_EQ(s.vmm.release, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  for (void* p : held) a->free(p);
}

// Memory freed on a stream whose work is still queued moves only after that
// work is done: the remap records an event, finds it pending and synchronizes.
TEST(VmmAllocator, RemappingWaitsForTheFreeingStreamsWork) {
  SimAllocator a(32 * MiB, "remap:always,remap_budget:off");
  void* p = a->malloc(16 * MiB, /*stream=*/1);
  void* q = a->malloc(16 * MiB, /*stream=*/2);
  (void)q;
  a.sim->hold_stream(1);  // kernels using p are still queued on stream 1
  EventId queued = a.sim->record_event(1);
  a->free(p);
  EXPECT_FALSE(a.sim->event_done(queued));
  void* r = a->malloc(16 * MiB, /*stream=*/3);  // only p's granules can serve it
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(a.sim->event_done(queued)) << "remapped before stream 1's work was done";
  EXPECT_EQ(a->stats().num_sync_all_streams, 1);
  // Without queued work no synchronization is needed.
  a->free(r);
  void* t = a->malloc(16 * MiB, /*stream=*/4);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(a->stats().num_sync_all_streams, 1);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// A GPU running behind (sim_lag): a remap asks whether the work before the
// taken pages' own latest free ran, not the block's: an old free's pages
// unmap without a synchronization though a newer free joined their block.
// Asking for the block's newest free, as before, synchronized here.
TEST(VmmAllocator, WithAGpuBehindOldFreesUnmapWithoutSynchronizing) {
  SimAllocator a(28 * MiB, "pressure_threshold:0.5");  // 14 pages; growth until the device is full
  a.sim->set_work_lag_us(1000);
  a.sim->set_trace_time(900'000);
  a->empty_cache();  // nothing cached: page histories start here
  void* s2 = a->malloc(2 * MiB, /*stream=*/2);   // page 0: a second stream, so frees are fenced
  void* k0 = a->malloc(2 * MiB, 1);              // page 1
  void* b = a->malloc(2 * MiB, 1);               // page 2
  void* old = a->malloc(16 * MiB, 1);            // pages 3-10
  void* k1 = a->malloc(2 * MiB, 1);              // page 11
  ASSERT_TRUE(s2 && k0 && b && old && k1);
  a.sim->set_trace_time(1'000'000);
  a->free(old);
  a.sim->set_trace_time(1'020'000);
  a->free(b);  // joins old's pages: one free block, freed just now
  void* y = a->malloc(20 * MiB, 1);  // pages 12-21: 2 new, 8 remapped from old's
  ASSERT_NE(y, nullptr);
  Stats s = a->stats();
  EXPECT_EQ(s.vmm.remapped, 8);
  EXPECT_EQ(s.num_sync_all_streams, 0) << "old's pages were freed 20 ms ago, their work long done";
  EXPECT_LE(s.reserved_bytes.all.peak, int64_t(28 * MiB));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  // Memory whose work has not run still waits: y's pages, freed just now,
  // are what a request in the hole must remap.
  a->free(y);
  void* z = a->malloc(4 * MiB, 1);
  ASSERT_NE(z, nullptr);
  EXPECT_EQ(a->stats().num_sync_all_streams, 1);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  for (void* p : {z, s2, k0, k1}) a->free(p);
}

// A stream takes the mapped free block another stream let go, once that
// stream's work on it is done, instead of unmapping its pages and mapping
// them again at its own arena (a pipeline whose micro-batches each run on a
// stream of their own).
TEST(VmmAllocator, AStreamTakesAnotherStreamsMappedFreeBlockInsteadOfRemapping) {
  SimAllocator a(32 * MiB, "remap:always,remap_budget:off");
  void* p = a->malloc(16 * MiB, /*stream=*/1);
  void* q = a->malloc(16 * MiB, /*stream=*/2);
  a->free(p);
  const Stats before = a->stats();
  EXPECT_EQ(a->malloc(16 * MiB, /*stream=*/3), p);
  const Stats after = a->stats();
  EXPECT_EQ(after.vmm.unmap, before.vmm.unmap);
  EXPECT_EQ(after.vmm.map, before.vmm.map);
  EXPECT_EQ(after.num_sync_all_streams, 0);
  a->free(q);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// A sim whose streams can be destroyed: an event recorded on one then is an
// error, as in CUDA.
class StreamsThatEnd final : public ForwardingBackend {
 public:
  explicit StreamsThatEnd(uint64_t capacity) : ForwardingBackend(std::make_unique<SimBackend>(0, capacity)) {}
  SimBackend& sim() { return static_cast<SimBackend&>(inner()); }
  EventId record_event(StreamId stream) override {
    if (stream == ended) throw Error(ErrorCode::kBackend, "event recorded on a destroyed stream");
    return ForwardingBackend::record_event(stream);
  }
  StreamId ended = ~StreamId(0);
};

// Memory a stream freed after its last fence, the stream destroyed since, is
// remapped for another stream after a device synchronization: no event is
// recorded on a stream other than the one allocating.
TEST(VmmAllocator, RemappingADestroyedStreamsMemoryRecordsNoEventOnIt) {
  auto owned = std::make_unique<StreamsThatEnd>(32 * MiB);
  StreamsThatEnd& backend = *owned;
  Config config = Config::parse("remap:always,remap_budget:off");
  config.backend = "sim";
  Allocator a(config, std::move(owned));
  void* keep = a.malloc(8 * MiB, /*stream=*/2);
  backend.sim().hold_stream(1);
  void* p = a.malloc(8 * MiB, 1);
  void* r = a.malloc(8 * MiB, 1);
  a.free(p);  // fenced, the fence pending
  a.free(r);  // after the pending fence: not fenced
  backend.sim().complete_stream(1);
  backend.ended = 1;
  void* t = a.malloc(16 * MiB, /*stream=*/3);  // only stream 1's pages can serve it
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(a.stats().num_sync_all_streams, 1);
  a.free(t);
  a.free(keep);
  EXPECT_TRUE(InvariantsHold(a));
}

// While a pool is routed to (a CUDA graph capture) no event may be queried
// and nothing synchronized or unmapped: no remap then, only new granules, and
// no stream takes another's free block.
TEST(VmmAllocator, NoRemappingWhileAGraphIsCaptured) {
  SimAllocator a(32 * MiB, "remap:always,remap_budget:off");
  void* p = a->malloc(16 * MiB, /*stream=*/1);
  ASSERT_NE(a->malloc(16 * MiB, /*stream=*/2), nullptr);
  a->free(p);
  const PoolId graph{1, 1};
  a->begin_allocate_to_pool(graph, [](StreamId s) { return s == 7; });
  EXPECT_THROW(a->malloc(16 * MiB, /*stream=*/3), Error);  // only p's granules could serve it
  EXPECT_THROW(a->malloc(16 * MiB, /*stream=*/7), Error);  // nor the graph's pool
  Stats s = a->stats();
  EXPECT_EQ(s.vmm.unmap, 0);
  EXPECT_EQ(s.num_sync_all_streams, 0);
  a->end_allocate_to_pool(graph);
  // Now p's block itself serves stream 3: stream 1's work on it is done, so
  // nothing is unmapped.
  EXPECT_EQ(a->malloc(16 * MiB, /*stream=*/3), p);
  EXPECT_EQ(a->stats().vmm.unmap, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(VmmAllocator, EmptySlabsGiveTheirGranulesToLargeBlocks) {
  SimAllocator a(16 * MiB, "remap:pressure,small_size:1MiB,slab_size:2MiB");  // slabs on granules
  std::vector<void*> small;
  try {  // slabs of several classes until the device is full
    for (int i = 0;; ++i) small.push_back(a->malloc(16 * 1024 + 1 + (i % 8) * 40000));
  } catch (const Error& e) {
    ASSERT_EQ(e.code(), ErrorCode::kOutOfMemory);
  }
  EXPECT_EQ(a->stats().reserved_bytes.small_pool.current, int64_t(16 * MiB));
  for (void* p : small) a->free(p);
  // All of the device is in empty slabs now; a large block takes it over.
  const int64_t retries = a->stats().num_alloc_retries;
  void* big = a->malloc(14 * MiB);
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(a->stats().num_alloc_retries, retries);
  EXPECT_EQ(a->stats().vmm.unmap, 7);  // seven empty slabs' granules
  EXPECT_LE(a->stats().reserved_bytes.all.current, int64_t(16 * MiB));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// At the limit, a small request whose slab cannot get a granule is served by
// a large free block (here the rest of the granule a large block ends in).
TEST(VmmAllocator, ASmallRequestWithNoRoomForASlabUsesACachedLargeBlock) {
  for (const char* conf : {"", "vmm:off"}) {
    SCOPED_TRACE(conf);
    SimAllocator a(8 * MiB, conf);
    void* big = a->malloc(7 * MiB + 512);  // 8 MiB reserved, the device is full
    void* small = a->malloc(100 * 1024);
    ASSERT_NE(small, nullptr);
    EXPECT_EQ(Addr(small), Addr(big) + 7 * MiB + 512);
    Stats s = a->stats();
    EXPECT_EQ(s.allocation.large_pool.current, 2);
    EXPECT_EQ(s.reserved_bytes.all.current, int64_t(8 * MiB));
    EXPECT_EQ(s.num_ooms, 0);
    EXPECT_TRUE(InvariantsHold(*a.alloc));
    a->free(small);
    a->free(big);
    EXPECT_TRUE(InvariantsHold(*a.alloc));
  }
}

// Slabs beside the arenas are blocks of the mid pool: small and mid-size
// blocks share its pages, as in PyTorch's small pool, and count in the small
// pool's statistics as PyTorch's blocks of up to 1 MiB do. A 128 KiB plain
// segment per slab sat beside them, partly used, and cost hbm a granule of
// least capacity against expandable segments on NiuHuang forward 100.
TEST(VmmAllocator, SlabsShareTheMidPoolsPagesWithMidSizeBlocks) {
  SimAllocator a;
  const uint64_t slab = Config{}.slab_size;
  void* p = a->malloc(1000);
  void* mid = a->malloc(200 * 1024);
  void* q = a->malloc(100);  // another class: a second slab
  Stats s = a->stats();
  EXPECT_EQ(s.reserved_bytes.all.current, int64_t(2 * MiB)) << "one granule holds them all";
  EXPECT_EQ(s.reserved_bytes.small_pool.current, int64_t(2 * MiB));
  EXPECT_EQ(s.segment.small_pool.current, 1) << "the mid pool's run of pages";
  EXPECT_EQ(s.segment.large_pool.current, 0);
  EXPECT_EQ(s.allocated_bytes.small_pool.current, s.allocated_bytes.all.current) << "blocks of up to 1 MiB";
  EXPECT_EQ(s.num_device_alloc, 0);
  EXPECT_EQ(Addr(mid), Addr(p) + slab);
  EXPECT_EQ(Addr(q), Addr(mid) + 200 * 1024);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  // Each slab shows as its slots within the mid pool's segment.
  const Layout layout = a->layout();
  ASSERT_EQ(layout.size(), 1u);
  EXPECT_EQ(layout[0].pool, Pool::kSmall);
  EXPECT_TRUE(LayoutAgreesWithStats(*a.alloc));
  size_t live = 0;
  for (const BlockLayout& b : layout[0].blocks) live += b.allocated;
  EXPECT_EQ(live, 3u);
  for (void* x : {p, mid, q}) a->free(x);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->empty_cache();
  s = a->stats();
  EXPECT_EQ(s.reserved_bytes.all.current, 0);
  EXPECT_EQ(s.reserved_bytes.small_pool.current, 0);
  // All the device gave is one granule, and no byte moved between the pools.
  EXPECT_EQ(s.reserved_bytes.all.allocated, int64_t(2 * MiB));
  EXPECT_EQ(s.reserved_bytes.all.freed, int64_t(2 * MiB));
  EXPECT_EQ(s.reserved_bytes.small_pool.allocated, int64_t(2 * MiB));
  EXPECT_EQ(s.reserved_bytes.large_pool.allocated, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// An empty slab beyond its class's spare gives its block back at once: the
// mid pool caches the memory for a request of any size.
TEST(VmmAllocator, AnEmptySlabPastItsClassesSpareGoesBackToTheMidPool) {
  SimAllocator a;
  const uint64_t slab = Config{}.slab_size;
  std::vector<void*> small;
  for (int i = 0; i < 3 * 2; ++i) small.push_back(a->malloc(64 * 1024));  // three slabs of two slots
  for (void* p : small) a->free(p);
  // The first slab stays, its class's spare (laid out as one free block, no
  // slot in use); the other two went back to the mid pool, one free block.
  const Layout layout = a->layout();
  ASSERT_EQ(layout.size(), 1u);
  ASSERT_EQ(layout[0].blocks.size(), 2u);
  EXPECT_EQ(layout[0].blocks[0].addr, Addr(small[0]));
  EXPECT_EQ(layout[0].blocks[0].size, slab);
  EXPECT_EQ(layout[0].blocks[1].addr, Addr(small[2]));
  EXPECT_EQ(layout[0].blocks[1].size, 2 * MiB - slab);
  // Its slots are served again from the spare, with nothing else taken.
  void* again = a->malloc(64 * 1024);
  EXPECT_EQ(again, small[0]);
  a->free(again);
  Stats s = a->stats();
  EXPECT_EQ(s.reserved_bytes.all.current, int64_t(2 * MiB));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  // The room of the two slabs given back serves a mid-size block, nothing grown.
  void* mid = a->malloc(2 * slab);
  EXPECT_EQ(Addr(mid), Addr(small[2]));
  EXPECT_EQ(a->stats().reserved_bytes.all.current, int64_t(2 * MiB));
  a->free(mid);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// On a full device a stream's new slab takes a block of the granule another
// stream's slab holds, not a granule of its own nor the out-of-memory retry.
TEST(VmmAllocator, ASlabOnAFullDeviceSharesTheGranuleOfAnotherStreamsSlab) {
  SimAllocator a(4 * MiB);
  void* theirs = a->malloc(1000, 1);  // stream 1's slab, in the mid pool's granule
  void* big = a->malloc(2 * MiB, 0);  // the device is full
  ASSERT_EQ(a->stats().reserved_bytes.all.current, int64_t(4 * MiB));
  void* ours = a->malloc(1000, 0);
  ASSERT_NE(ours, nullptr);
  EXPECT_EQ(Addr(ours), Addr(theirs) + Config{}.slab_size);
  const Stats s = a->stats();
  EXPECT_EQ(s.num_alloc_retries, 0);
  EXPECT_EQ(s.num_ooms, 0);
  EXPECT_EQ(s.reserved_bytes.all.current, int64_t(4 * MiB));
  EXPECT_EQ(s.vmm.create, 2);
  EXPECT_EQ(s.vmm.unmap, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  for (void* p : {ours, theirs, big}) a->free(p);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// On a full device an empty slab (its class's spare) gives its mid pool
// block back when a large request wants more than the limit has room for:
// the granule under it is remapped and the rest created, with no
// out-of-memory retry (which would flush the whole cache).
TEST(VmmAllocator, AnEmptySlabsGranuleServesALargeBlockOnAFullDevice) {
  SimAllocator a(4 * MiB);
  a->free(a->malloc(1000));  // its slab stays, empty, on a granule of the mid pool
  ASSERT_EQ(a->stats().reserved_bytes.all.current, int64_t(2 * MiB));
  const Stats before = a->stats();
  void* big = a->malloc(4 * MiB);  // one granule to create, the slab's to remap
  ASSERT_NE(big, nullptr);
  const Stats s = a->stats();
  EXPECT_EQ(s.num_alloc_retries, 0);
  EXPECT_EQ(s.vmm.create - before.vmm.create, 1);
  EXPECT_EQ(s.vmm.unmap - before.vmm.unmap, 1);
  EXPECT_EQ(s.vmm.release, 0);
  EXPECT_EQ(s.reserved_bytes.small_pool.current, 0);
  EXPECT_EQ(s.reserved_bytes.all.current, int64_t(4 * MiB));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(big);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// On a full device, a small request whose slab needs a page of the mid pool
// gets one cached granule remapped from the large pool. Before slabs were
// mid blocks, the out-of-memory retry flushed the whole cache (here all 7
// granules, on a real job gigabytes), to create them again on the next
// large request.
TEST(VmmAllocator, ASlabOnAFullDeviceTakesOneCachedGranuleNotTheWholeCache) {
  SimAllocator a(14 * MiB);
  void* head = a->malloc(3 * MiB - 512);  // pages 0-1
  void* keep = a->malloc(1 * MiB + 512);  // page 1 (above mid_size: a large block)
  void* rest = a->malloc(10 * MiB);  // pages 2-6
  ASSERT_TRUE(head && keep && rest);
  a->free(head);
  a->free(rest);
  a->empty_cache();  // only page 1 (under keep) stays
  void* big = a->malloc(12 * MiB);
  ASSERT_EQ(big, rest);
  a->free(big);  // the device is full: pages 1-7 mapped, 2-7 cached; page 0 unmapped
  ASSERT_EQ(a->stats().reserved_bytes.all.current, int64_t(14 * MiB));
  const Stats before = a->stats();
  void* small = a->malloc(1000);
  ASSERT_NE(small, nullptr);
  Stats s = a->stats();
  EXPECT_EQ(s.num_alloc_retries, before.num_alloc_retries);
  EXPECT_EQ(s.vmm.release, before.vmm.release);
  EXPECT_EQ(s.vmm.unmap - before.vmm.unmap, 1) << "one granule remapped";
  EXPECT_EQ(s.reserved_bytes.all.current, int64_t(14 * MiB));
  EXPECT_EQ(s.reserved_bytes.small_pool.current, int64_t(2 * MiB)) << "the mid pool's granule, the slab on it";
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  // The cache left serves a large request again without creating anything.
  void* again = a->malloc(10 * MiB);
  EXPECT_EQ(again, rest);
  EXPECT_EQ(a->stats().vmm.create, s.vmm.create);
  EXPECT_EQ(a->stats().num_alloc_retries, before.num_alloc_retries);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  for (void* p : {small, keep, again}) a->free(p);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// "Non-releasable" (inactive split) memory is what empty_cache cannot give
// back: in an arena, a free block's bytes on a page it shares with a live
// block, not its whole pages (which PyTorch's expandable segments, too,
// release and count as none). It counted every mapped byte of the block.
TEST(VmmAllocator, NonReleasableMemoryIsWhatEmptyCacheLeaves) {
  SimAllocator a;
  void* p = a->malloc(1 * MiB + 512);  // above mid_size: a large block, page 0
  void* q = a->malloc(8 * MiB);        // right after it: pages 0-4
  ASSERT_EQ(Addr(q), Addr(p) + 1 * MiB + 512);
  a->free(q);  // joins the arena's free tail: page 0's rest is shared with p, pages 1-4 are whole
  Stats s = a->stats();
  EXPECT_EQ(s.reserved_bytes.large_pool.current, int64_t(10 * MiB));
  EXPECT_EQ(s.inactive_split.large_pool.current, 1);
  EXPECT_EQ(s.inactive_split_bytes.large_pool.current, int64_t(1 * MiB - 512));
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->empty_cache();
  s = a->stats();
  EXPECT_EQ(s.reserved_bytes.large_pool.current, int64_t(2 * MiB));
  EXPECT_EQ(s.reserved_bytes.large_pool.current - s.allocated_bytes.large_pool.current,
            s.inactive_split_bytes.large_pool.current);
  EXPECT_EQ(s.inactive_split_bytes.large_pool.current, int64_t(1 * MiB - 512));
  a->free(p);
  s = a->stats();
  EXPECT_EQ(s.inactive_split.large_pool.current, 0);
  EXPECT_EQ(s.inactive_split_bytes.large_pool.current, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// A slab's tail that no slot fits is non-releasable too while a slot is used,
// as is the rest of the mid pool's page the slab lies on; an empty slab on a
// mid block counts as one free block of its size until it goes back.
TEST(VmmAllocator, ASlabsTailIsNonReleasableWhileASlotIsUsed) {
  SimAllocator a;
  const int64_t slab = int64_t(Config{}.slab_size), slot = 48 * 1024;
  const int64_t rest = int64_t(2 * MiB) - slab;  // the page's free mid block beside the slab
  void* p = a->malloc(uint64_t(slot));  // two 48 KiB slots and a 32 KiB tail in a 128 KiB slab
  Stats s = a->stats();
  EXPECT_EQ(s.inactive_split_bytes.small_pool.current, slot + (slab - 2 * slot) + rest);
  EXPECT_EQ(s.inactive_split.small_pool.current, 2) << "the free slot and the mid block; the tail is bytes only";
  a->free(p);  // the slab stays, its class's spare: one free block of its size on the mid pool's page
  s = a->stats();
  EXPECT_EQ(s.inactive_split_bytes.small_pool.current, slab + rest);
  EXPECT_EQ(s.inactive_split.small_pool.current, 2);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->empty_cache();
  s = a->stats();
  EXPECT_EQ(s.inactive_split_bytes.small_pool.current, 0);
  EXPECT_EQ(s.reserved_bytes.small_pool.current, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

// Where the device has room for a slab but not for a granule, the slab is a
// plain segment as before slabs were mid blocks; it goes back to the device
// with the cache.
TEST(VmmAllocator, ASlabFallsBackToAPlainSegmentWhereNoGranuleFits) {
  const uint64_t slab = Config{}.slab_size;
  SimAllocator a(2 * MiB + 15 * slab);
  void* big = a->malloc(2 * MiB);  // the only granule the device has room for
  std::vector<void*> small;
  for (int i = 0; i < 30; ++i) small.push_back(a->malloc(64 * 1024));  // 15 plain slabs of two slots
  Stats s = a->stats();
  EXPECT_EQ(s.reserved_bytes.all.current, int64_t(2 * MiB + 15 * slab));
  EXPECT_EQ(s.reserved_bytes.small_pool.current, int64_t(15 * slab));
  EXPECT_EQ(s.segment.small_pool.current, 15);
  EXPECT_EQ(s.num_device_alloc, 15);
  EXPECT_EQ(s.num_alloc_retries, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  for (void* p : small) a->free(p);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(big);
  a->empty_cache();
  s = a->stats();
  EXPECT_EQ(s.num_device_free, 15);
  EXPECT_EQ(s.reserved_bytes.all.current, 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
}

TEST(VmmAllocator, EmptyCacheKeepsOnlyTheGranulesUnderLiveBlocks) {
  SimAllocator a;
  void* x = a->malloc(5 * MiB);
  void* y = a->malloc(20 * MiB);
  void* z = a->malloc(100);
  a->free(y);
  a->free(z);
  a->empty_cache();
  Stats s = a->stats();
  EXPECT_EQ(s.reserved_bytes.all.current, int64_t(6 * MiB));  // x's three granules
  EXPECT_EQ(a.sim->used_bytes(), 6 * MiB);
  EXPECT_EQ(s.vmm.release, s.vmm.create - 3);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  a->free(x);
  a->empty_cache();
  EXPECT_EQ(a->stats().reserved_bytes.all.current, 0);
  EXPECT_EQ(a.sim->used_bytes(), 0u);
  EXPECT_EQ(a.sim->mappings(), 0u);
}

TEST(VmmAllocator, StatsJsonCountsVmmOperations) {
  SimAllocator a;
  a->free(a->malloc(3 * MiB));
  std::string json = stats_to_json(a->stats());
  for (const char* key : {"\"hbmalloc.vmm.create\":2", "\"hbmalloc.vmm.map\":2", "\"hbmalloc.vmm.set_access\":2",
                          "\"hbmalloc.vmm.unmap\":0", "\"hbmalloc.vmm.release\":0", "\"hbmalloc.vmm.peak_held\":2",
                          "\"hbmalloc.vmm.modeled_seconds\":0.000475", "\"hbmalloc.device_alloc_bytes\":0",
                          "\"hbmalloc.device_free_bytes\":0"})
    EXPECT_NE(json.find(key), std::string::npos) << key << " in " << json;
}

// What the sim holds when the allocator, and so the backend, goes away.
struct Leftover {
  uint64_t used = 1, granules = 1, mappings = 1, ranges = 1;
};
class WatchedSim final : public ForwardingBackend {
 public:
  WatchedSim(Leftover& out) : ForwardingBackend(std::make_unique<SimBackend>(0, 0)), out_(out) {}
  ~WatchedSim() override {  // the policy has gone already: the Allocator destroys it first
    const auto& sim = static_cast<const SimBackend&>(inner());
    out_ = {sim.used_bytes(), sim.live_granules(), sim.mappings(), sim.reserved_ranges()};
  }

 private:
  Leftover& out_;
};

TEST(VmmAllocator, DestroyingTheAllocatorGivesEverythingBack) {
  Leftover left;
  {
    Allocator a(Config::parse("backend:sim"), std::make_unique<WatchedSim>(left));
    a.malloc(5 * MiB);
    a.free(a.malloc(100));
    EXPECT_GT(a.stats().reserved_bytes.all.current, 0);
  }
  EXPECT_EQ(left.used, 0u);
  EXPECT_EQ(left.granules, 0u);
  EXPECT_EQ(left.mappings, 0u);
  EXPECT_EQ(left.ranges, 0u);
}

// A backend without VMM (granularity 0): plain segments, as with vmm:off.
TEST(VmmAllocator, FallsBackToSegmentsWithoutVmm) {
  Allocator a(Config::parse("backend:sim"), std::make_unique<testing::NoVmmBackend>());
  void* x = a.malloc(3 * MiB);
  a.malloc(3 * MiB);
  Stats s = a.stats();
  EXPECT_EQ(s.segment.large_pool.current, 2);
  EXPECT_EQ(s.reserved_bytes.large_pool.current, int64_t(8 * MiB));
  EXPECT_EQ(s.num_device_alloc, 2);
  EXPECT_EQ(s.vmm.create, 0);
  a.free(x);
  EXPECT_TRUE(InvariantsHold(a));
}

TEST(VmmAllocator, AGranuleSmallerThanTheDevicesIsAConfigError) {
  Config c = Config::parse("backend:sim,granule_size:1MiB");
  try {
    Allocator a(c, std::make_unique<SimBackend>(0, 0));  // a 2 MiB device granule
    FAIL() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kConfig);
    EXPECT_NE(std::string(e.what()).find("granule_size"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace hbmalloc
