// Unit tests for allocator/backend/sim_backend.h: the simulated device
// (capacity, fake address space, stream events).
#include "backend/sim_backend.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "hbmalloc/allocator.hpp"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"

namespace hbmalloc {
namespace {

constexpr uint64_t kMiB = uint64_t(1) << 20;
constexpr uint64_t kGiB = uint64_t(1) << 30;
constexpr uint64_t kTiB = uint64_t(1) << 40;
constexpr uint64_t kAlign = 2 * kMiB;

uint64_t Addr(void* p) { return reinterpret_cast<uint64_t>(p); }
uint64_t RoundUp(uint64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

// Expects free_segment to throw Error(kBackend).
void ExpectBackendError(SimBackend& sim, void* ptr, uint64_t bytes) {
  try {
    sim.free_segment(ptr, bytes);
    ADD_FAILURE() << "free_segment(" << Addr(ptr) << ", " << bytes << ") did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBackend) << e.what();
  }
}

TEST(SimBackendTest, Identity) {
  SimBackend sim(3, 80 * kGiB);
  EXPECT_EQ(sim.name(), "sim");
  EXPECT_EQ(sim.device(), 3);
  EXPECT_EQ(sim.capacity(), 80 * kGiB);
  EXPECT_EQ(sim.used_bytes(), 0u);
  EXPECT_EQ(sim.live_segments(), 0u);
}

TEST(SimBackendTest, CapacityEnforced) {
  SimBackend sim(0, 10 * kMiB);
  void* a = sim.malloc_segment(4 * kMiB);
  void* b = sim.malloc_segment(4 * kMiB);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(sim.used_bytes(), 8 * kMiB);
  EXPECT_EQ(sim.live_segments(), 2u);
  EXPECT_EQ(sim.malloc_segment(4 * kMiB), nullptr);  // would be 12 MiB
  EXPECT_EQ(sim.used_bytes(), 8 * kMiB);              // a refusal changes nothing
  EXPECT_EQ(sim.live_segments(), 2u);
  void* c = sim.malloc_segment(2 * kMiB);  // exactly fills the device
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(sim.used_bytes(), 10 * kMiB);
  EXPECT_EQ(sim.malloc_segment(1), nullptr);
  EXPECT_EQ(sim.malloc_segment(11 * kMiB), nullptr);  // more than the whole device
  EXPECT_EQ(sim.malloc_segment(UINT64_MAX), nullptr);  // no overflow in the check

  sim.free_segment(a, 4 * kMiB);
  EXPECT_EQ(sim.used_bytes(), 6 * kMiB);
  void* d = sim.malloc_segment(4 * kMiB);
  EXPECT_NE(d, nullptr);
  EXPECT_EQ(sim.used_bytes(), 10 * kMiB);
  sim.free_segment(b, 4 * kMiB);
  sim.free_segment(c, 2 * kMiB);
  sim.free_segment(d, 4 * kMiB);
  EXPECT_EQ(sim.used_bytes(), 0u);
  EXPECT_EQ(sim.live_segments(), 0u);
}

TEST(SimBackendTest, UsedBytesCountsRequestedBytes) {
  SimBackend sim(0, 0);
  void* a = sim.malloc_segment(1);
  void* b = sim.malloc_segment(3 * kMiB + 5);
  EXPECT_EQ(sim.used_bytes(), 3 * kMiB + 6);
  // Addresses are still 2 MiB apart at least: the 1-byte segment takes a
  // whole aligned unit.
  EXPECT_GE(Addr(b) > Addr(a) ? Addr(b) - Addr(a) : Addr(a) - Addr(b), kAlign);
  sim.free_segment(a, 1);
  sim.free_segment(b, 3 * kMiB + 5);
  EXPECT_EQ(sim.used_bytes(), 0u);
}

TEST(SimBackendTest, ZeroCapacityIsUnlimited) {
  SimBackend sim(0, 0);
  EXPECT_EQ(sim.capacity(), 0u);
  std::vector<void*> segs;
  for (int i = 0; i < 200; ++i) {  // 200 TiB of pretend memory
    void* p = sim.malloc_segment(kTiB / 16);
    ASSERT_NE(p, nullptr) << "segment " << i;
    segs.push_back(p);
  }
  EXPECT_EQ(sim.used_bytes(), 200 * (kTiB / 16));
  for (void* p : segs) sim.free_segment(p, kTiB / 16);
  EXPECT_EQ(sim.used_bytes(), 0u);
}

TEST(SimBackendTest, ZeroByteSegmentThrows) {
  SimBackend sim(0, 0);
  try {
    sim.malloc_segment(0);
    ADD_FAILURE() << "malloc_segment(0) did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(SimBackendTest, RandomSequenceNeverOverlaps) {
  SimBackend sim(0, 0);
  std::mt19937_64 rng(0xC0FFEE);
  std::map<uint64_t, uint64_t> live;  // addr -> requested bytes
  std::vector<uint64_t> live_addrs;   // for picking a random victim
  uint64_t used = 0, peak_span = 0;
  const uint64_t base = SimBackend::kWindow;
  std::uniform_int_distribution<uint64_t> size_dist(2 * kMiB, kGiB);

  for (int op = 0; op < 20000; ++op) {
    bool do_alloc = live_addrs.empty() || rng() % 100 < 52;
    if (do_alloc) {
      // Half the time an aligned size, half the time an arbitrary one.
      uint64_t bytes = size_dist(rng);
      if (rng() % 2) bytes = RoundUp(bytes);
      void* p = sim.malloc_segment(bytes);
      ASSERT_NE(p, nullptr);
      uint64_t a = Addr(p);
      ASSERT_EQ(a % kAlign, 0u) << "op " << op;
      ASSERT_GE(a, base) << "op " << op;
      ASSERT_LT(a + RoundUp(bytes), base * 2) << "op " << op;  // inside device 0's window
      // No overlap with the neighbours (whole 2 MiB units, as the sim reserves).
      auto next = live.lower_bound(a);
      ASSERT_TRUE(next == live.end() || next->first >= a + RoundUp(bytes))
          << "op " << op << ": [" << a << ", +" << bytes << ") overlaps segment at " << next->first;
      if (next != live.begin()) {
        auto prev = std::prev(next);
        ASSERT_LE(prev->first + RoundUp(prev->second), a)
            << "op " << op << ": [" << a << ", +" << bytes << ") overlaps segment at " << prev->first;
      }
      live[a] = bytes;
      live_addrs.push_back(a);
      used += bytes;
      peak_span = std::max(peak_span, a + RoundUp(bytes) - base);
    } else {
      size_t i = rng() % live_addrs.size();
      uint64_t a = live_addrs[i];
      live_addrs[i] = live_addrs.back();
      live_addrs.pop_back();
      sim.free_segment(reinterpret_cast<void*>(a), live[a]);
      used -= live[a];
      live.erase(a);
    }
    ASSERT_EQ(sim.used_bytes(), used) << "op " << op;
    ASSERT_EQ(sim.live_segments(), live.size()) << "op " << op;
  }
  // Freed ranges were reused: the address space touched stays within a small
  // multiple of the most ever live (a bump allocator would need ~5 TiB here).
  EXPECT_LT(peak_span, 2 * kTiB) << "peak span " << peak_span;

  // Free everything; the window shrinks back, so the same addresses return.
  std::vector<std::pair<uint64_t, uint64_t>> order(live.begin(), live.end());
  for (const auto& [a, bytes] : order) sim.free_segment(reinterpret_cast<void*>(a), bytes);
  EXPECT_EQ(sim.used_bytes(), 0u);
  EXPECT_EQ(sim.live_segments(), 0u);
  void* first = sim.malloc_segment(kGiB);
  EXPECT_EQ(Addr(first), base);
  sim.free_segment(first, kGiB);
}

TEST(SimBackendTest, SameSequenceGetsSameAddressesAfterFreeingEverything) {
  SimBackend sim(1, 0);
  std::mt19937_64 rng(7);
  std::vector<uint64_t> sizes;
  for (int i = 0; i < 500; ++i) sizes.push_back(2 * kMiB + rng() % (64 * kMiB));

  auto run = [&]() {
    std::vector<uint64_t> addrs;
    for (uint64_t s : sizes) addrs.push_back(Addr(sim.malloc_segment(s)));
    return addrs;
  };
  std::vector<uint64_t> first = run();
  // Free in a scrambled order so ranges coalesce from both sides.
  std::vector<size_t> idx(sizes.size());
  for (size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  std::shuffle(idx.begin(), idx.end(), rng);
  for (size_t i : idx) sim.free_segment(reinterpret_cast<void*>(first[i]), sizes[i]);
  EXPECT_EQ(sim.live_segments(), 0u);
  std::vector<uint64_t> second = run();
  EXPECT_EQ(first, second);
  EXPECT_EQ(first[0], 2 * SimBackend::kWindow);  // device 1's window starts at 2 windows up
}

TEST(SimBackendTest, FreedHoleIsReused) {
  SimBackend sim(0, 0);
  void* a = sim.malloc_segment(8 * kMiB);
  void* b = sim.malloc_segment(8 * kMiB);
  void* c = sim.malloc_segment(8 * kMiB);
  sim.free_segment(b, 8 * kMiB);
  // Two 4 MiB segments fit in b's hole, one after the other.
  void* d = sim.malloc_segment(4 * kMiB);
  void* e = sim.malloc_segment(4 * kMiB);
  EXPECT_EQ(Addr(d), Addr(b));
  EXPECT_EQ(Addr(e), Addr(b) + 4 * kMiB);
  // Freeing a, e, d coalesces to one 16 MiB hole below c: a 24 MiB segment
  // does not fit in it and goes above c, a 16 MiB one fills it exactly.
  sim.free_segment(a, 8 * kMiB);
  sim.free_segment(e, 4 * kMiB);
  sim.free_segment(d, 4 * kMiB);
  void* g = sim.malloc_segment(24 * kMiB);
  EXPECT_EQ(Addr(g), Addr(c) + 8 * kMiB);
  void* f = sim.malloc_segment(16 * kMiB);
  EXPECT_EQ(Addr(f), Addr(a));
  EXPECT_EQ(Addr(f) + 16 * kMiB, Addr(c));
  // Best fit: a 2 MiB request prefers a 2 MiB hole over a larger one.
  sim.free_segment(g, 24 * kMiB);  // top of the window: shrinks back
  void* h1 = sim.malloc_segment(2 * kMiB);
  EXPECT_EQ(Addr(h1), Addr(c) + 8 * kMiB);
  void* h2 = sim.malloc_segment(10 * kMiB);
  void* h3 = sim.malloc_segment(2 * kMiB);
  void* h4 = sim.malloc_segment(2 * kMiB);
  sim.free_segment(h2, 10 * kMiB);  // 10 MiB hole
  sim.free_segment(h4, 2 * kMiB);   // top: shrinks back
  sim.free_segment(h1, 2 * kMiB);   // 2 MiB hole
  void* h5 = sim.malloc_segment(kMiB);
  EXPECT_EQ(Addr(h5), Addr(h1));
  for (auto [p, n] : {std::pair{c, 8 * kMiB}, std::pair{f, 16 * kMiB}, std::pair{h3, 2 * kMiB},
                      std::pair{h5, kMiB}})
    sim.free_segment(p, n);
  EXPECT_EQ(sim.live_segments(), 0u);
  // Everything coalesced back into the shrinking top.
  EXPECT_EQ(Addr(sim.malloc_segment(64 * kMiB)), SimBackend::kWindow);
}

TEST(SimBackendTest, BadFreeThrowsBackendErrorAndChangesNothing) {
  SimBackend sim(0, 0);
  void* a = sim.malloc_segment(4 * kMiB);
  ExpectBackendError(sim, reinterpret_cast<void*>(Addr(a) + kAlign), 2 * kMiB);  // not a segment start
  ExpectBackendError(sim, reinterpret_cast<void*>(0x1234), 4 * kMiB);           // never allocated
  ExpectBackendError(sim, nullptr, 4 * kMiB);
  ExpectBackendError(sim, a, 2 * kMiB);      // wrong size
  ExpectBackendError(sim, a, 4 * kMiB + 1);  // wrong size, same rounded size
  EXPECT_EQ(sim.used_bytes(), 4 * kMiB);
  EXPECT_EQ(sim.live_segments(), 1u);
  sim.free_segment(a, 4 * kMiB);
  ExpectBackendError(sim, a, 4 * kMiB);  // double free
  EXPECT_EQ(sim.used_bytes(), 0u);
}

TEST(SimBackendTest, DevicesGetDisjointWindows) {
  SimBackend d0(0, 0), d1(1, 0), d7(7, 0);
  std::vector<std::pair<uint64_t, uint64_t>> ranges;  // [lo, hi) over all devices
  for (SimBackend* sim : {&d0, &d1, &d7}) {
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < 64; ++i) {
      uint64_t bytes = (i + 1) * 16 * kMiB;
      uint64_t a = Addr(sim->malloc_segment(bytes));
      EXPECT_EQ(a / SimBackend::kWindow, uint64_t(sim->device()) + 1) << "device " << sim->device();
      lo = std::min(lo, a);
      hi = std::max(hi, a + bytes);
    }
    ranges.push_back({lo, hi});
  }
  for (size_t i = 0; i < ranges.size(); ++i)
    for (size_t j = i + 1; j < ranges.size(); ++j)
      EXPECT_TRUE(ranges[i].second <= ranges[j].first || ranges[j].second <= ranges[i].first)
          << "devices' ranges " << i << " and " << j << " overlap";
}

// An unlimited device that fills its address window reports out of memory
// rather than handing out addresses in the next device's window.
TEST(SimBackendTest, UnlimitedDeviceStaysInsideItsWindow) {
  SimBackend d0(0, 0), d1(1, 0);
  std::vector<void*> segs;
  void* p = nullptr;
  const uint64_t kChunk = SimBackend::kWindow / 16;
  for (int i = 0; i < 17; ++i) {
    p = d0.malloc_segment(kChunk);
    if (p == nullptr) break;  // refusing is fine; straying is not
    segs.push_back(p);
    EXPECT_LE(Addr(p) + kChunk, 2 * SimBackend::kWindow) << "device 0 segment " << i << " leaves its window";
  }
  EXPECT_EQ(segs.size(), 16u);  // the 17th does not fit: out of memory, not a stray address
  void* q = d1.malloc_segment(kChunk);
  for (void* s : segs) EXPECT_NE(Addr(s), Addr(q)) << "device 0 and device 1 returned the same address";
}

TEST(SimBackendTest, EventsOnIdleStreamAreDoneAtOnce) {
  SimBackend sim(0, 0);
  EventId e0 = sim.record_event(0);
  EventId e1 = sim.record_event(0xabc);
  EventId e2 = sim.record_event(0xabc);
  EXPECT_NE(e0, e1);
  EXPECT_NE(e1, e2);
  EXPECT_NE(e0, e2);
  EXPECT_TRUE(sim.event_done(e0));
  EXPECT_TRUE(sim.event_done(e1));
  EXPECT_TRUE(sim.event_done(e2));
  EXPECT_TRUE(sim.event_done(e2));  // querying does not consume the event
  sim.release_event(e0);
  sim.release_event(e1);
  sim.release_event(e2);
}

TEST(SimBackendTest, HeldStreamKeepsEventsPendingUntilCompleted) {
  SimBackend sim(0, 0);
  const StreamId s = 0x5000, other = 0x6000;
  EventId before = sim.record_event(s);
  sim.hold_stream(s);
  EventId e1 = sim.record_event(s);
  EventId e2 = sim.record_event(s);
  EventId o = sim.record_event(other);
  EXPECT_TRUE(sim.event_done(before));  // recorded before the hold
  EXPECT_FALSE(sim.event_done(e1));
  EXPECT_FALSE(sim.event_done(e2));
  EXPECT_TRUE(sim.event_done(o));  // other streams are unaffected
  EXPECT_FALSE(sim.event_done(e1));  // still pending on a second query

  sim.complete_stream(s);
  EXPECT_TRUE(sim.event_done(e1));
  EXPECT_TRUE(sim.event_done(e2));
  // complete_stream also releases the hold.
  EventId e3 = sim.record_event(s);
  EXPECT_TRUE(sim.event_done(e3));
  for (EventId e : {before, e1, e2, o, e3}) sim.release_event(e);
}

TEST(SimBackendTest, HoldingTheDefaultStream) {
  SimBackend sim(0, 0);
  sim.hold_stream(0);
  EventId e = sim.record_event(0);
  EXPECT_FALSE(sim.event_done(e));
  sim.complete_stream(0);
  EXPECT_TRUE(sim.event_done(e));
}

TEST(SimBackendTest, SynchronizeCompletesEverything) {
  SimBackend sim(0, 0);
  std::vector<EventId> events;
  for (StreamId s : {StreamId(1), StreamId(2), StreamId(3)}) {
    sim.hold_stream(s);
    for (int i = 0; i < 3; ++i) events.push_back(sim.record_event(s));
  }
  for (EventId e : events) EXPECT_FALSE(sim.event_done(e));
  sim.synchronize();
  for (EventId e : events) EXPECT_TRUE(sim.event_done(e));
  // The hold itself stays: work queued after the synchronize is pending again.
  EventId later = sim.record_event(1);
  EXPECT_FALSE(sim.event_done(later));
  sim.complete_stream(1);
  EXPECT_TRUE(sim.event_done(later));
}

// cudaFree waits for the device: work queued before a plain segment is freed
// is done once the free returns, on every stream.
TEST(SimBackendTest, FreeingASegmentCompletesQueuedWork) {
  SimBackend sim(0, 0);
  void* p = sim.malloc_segment(2 * kMiB);
  sim.hold_stream(1);
  sim.hold_stream(2);
  EventId on1 = sim.record_event(1), on2 = sim.record_event(2);
  EXPECT_FALSE(sim.event_done(on1));
  sim.free_segment(p, 2 * kMiB);
  EXPECT_TRUE(sim.event_done(on1));
  EXPECT_TRUE(sim.event_done(on2));
  EXPECT_FALSE(sim.event_done(sim.record_event(1)));  // the hold stays for later work
}

// sim_lag: the GPU runs behind the host, so work is done only once the
// clock (a replay's trace time) has moved past the lag; a synchronize or a
// segment's free still finishes it at once.
TEST(SimBackendTest, AWorkLagKeepsEventsPendingUntilTheClockPassesIt) {
  SimBackend sim(0, 0);
  sim.set_work_lag_us(1000);
  sim.set_trace_time(5000);
  EventId a = sim.record_event(1);
  sim.set_trace_time(5400);
  EventId b = sim.record_event(1);
  EXPECT_FALSE(sim.event_done(a));
  sim.set_trace_time(5999);
  EXPECT_FALSE(sim.event_done(a));
  sim.set_trace_time(6000);
  EXPECT_TRUE(sim.event_done(a));
  EXPECT_FALSE(sim.event_done(b));  // queued later, runs later
  sim.synchronize();
  EXPECT_TRUE(sim.event_done(b));

  EventId c = sim.record_event(2);
  void* p = sim.malloc_segment(2 * kMiB);
  EXPECT_FALSE(sim.event_done(c));
  sim.free_segment(p, 2 * kMiB);
  EXPECT_TRUE(sim.event_done(c));

  // A held stream stays held past the lag; completing it ends both.
  sim.hold_stream(3);
  EventId d = sim.record_event(3);
  sim.set_trace_time(9000);
  EXPECT_FALSE(sim.event_done(d));
  sim.complete_stream(3);
  EXPECT_TRUE(sim.event_done(d));

  // Without times (a trace that has none) there is no lag to keep.
  sim.set_trace_time(std::nullopt);
  EXPECT_TRUE(sim.event_done(sim.record_event(1)));
}

TEST(SimBackendTest, UnknownOrReleasedEventThrows) {
  SimBackend sim(0, 0);
  for (EventId bad : {EventId(0), EventId(12345)}) {
    try {
      sim.event_done(bad);
      ADD_FAILURE() << "event_done(" << bad << ") did not throw";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kBackend);
    }
  }
  EventId e = sim.record_event(0);
  EXPECT_TRUE(sim.event_done(e));
  sim.release_event(e);
  EXPECT_THROW(sim.event_done(e), Error);
  // Ids are not reused after release.
  EventId f = sim.record_event(0);
  EXPECT_NE(f, e);
}

TEST(SimBackendTest, SegmentsAndGranulesShareTheCapacity) {
  SimBackend sim(0, 8 * kMiB);
  void* seg = sim.malloc_segment(4 * kMiB);
  ASSERT_NE(seg, nullptr);
  GranuleId a = sim.create_granule(2 * kMiB), b = sim.create_granule(2 * kMiB);
  ASSERT_NE(a, 0u);
  ASSERT_NE(b, 0u);
  EXPECT_EQ(sim.used_bytes(), 8 * kMiB);
  EXPECT_EQ(sim.create_granule(2 * kMiB), 0u);
  EXPECT_EQ(sim.malloc_segment(2 * kMiB), nullptr);
  sim.free_segment(seg, 4 * kMiB);
  EXPECT_NE(sim.create_granule(4 * kMiB), 0u);
  EXPECT_EQ(sim.live_granules(), 3u);
}

TEST(SimBackendTest, TracksMappingsAndAccess) {
  SimBackend sim(0, 0);
  void* range = sim.reserve_range(8 * kMiB);
  ASSERT_NE(range, nullptr);
  const uint64_t base = Addr(range);
  EXPECT_GE(base, sim.window_base());
  GranuleId a = sim.create_granule(2 * kMiB), b = sim.create_granule(4 * kMiB);
  sim.map(range, a);
  sim.map(reinterpret_cast<void*>(base + 2 * kMiB), b);
  EXPECT_EQ(sim.granule_mapped_at(base), a);
  EXPECT_EQ(sim.granule_mapped_at(base + 2 * kMiB), b);
  EXPECT_EQ(sim.granule_mapped_at(base + 4 * kMiB), 0u);  // inside b, not its start
  EXPECT_EQ(sim.mappings(), 2u);
  EXPECT_FALSE(sim.accessible(base, 1));  // mapped is not yet usable
  sim.set_access(range, 2 * kMiB);
  EXPECT_TRUE(sim.accessible(base + 100, 2 * kMiB - 100));
  EXPECT_FALSE(sim.accessible(base, 2 * kMiB + 1));
  // set_access covers whole granules: half of b is refused.
  EXPECT_THROW(sim.set_access(reinterpret_cast<void*>(base + 2 * kMiB), 2 * kMiB), Error);
  sim.set_access(reinterpret_cast<void*>(base + 2 * kMiB), 4 * kMiB);
  EXPECT_TRUE(sim.accessible(base, 6 * kMiB));
  EXPECT_FALSE(sim.accessible(base, 6 * kMiB + 1));
  sim.unmap(range, 2 * kMiB);
  EXPECT_FALSE(sim.accessible(base, 1));
  EXPECT_TRUE(sim.accessible(base + 2 * kMiB, 4 * kMiB));
  // Mapped again, access starts over.
  sim.map(reinterpret_cast<void*>(base + 6 * kMiB), a);
  EXPECT_FALSE(sim.accessible(base + 6 * kMiB, 1));
  EXPECT_EQ(sim.reserved_ranges(), 1u);
  // Address space is not capacity and does not overlap segments.
  void* seg = sim.malloc_segment(2 * kMiB);
  EXPECT_TRUE(Addr(seg) >= base + 8 * kMiB || Addr(seg) + 2 * kMiB <= base);
}

TEST(SimBackendTest, GranularityIsChecked) {
  EXPECT_THROW(SimBackend(0, 0, 3 * kMiB), Error);
  EXPECT_THROW(SimBackend(0, 0, 1024), Error);
  EXPECT_THROW(SimBackend(0, 0, 4 * kMiB), Error);
  SimBackend small(0, 0, 64 << 10);
  EXPECT_EQ(small.vmm_granularity(), uint64_t(64) << 10);
  EXPECT_NE(small.create_granule(64 << 10), 0u);
}

}  // namespace
}  // namespace hbmalloc

TEST(SimBackendTest, DeviceIndexOutOfRangeIsRefused) {
  using hbmalloc::SimBackend;
  EXPECT_THROW(SimBackend(-1, 0), hbmalloc::Error);
  EXPECT_THROW(SimBackend(4096, 0), hbmalloc::Error);
  SimBackend last(4095, 0);
  EXPECT_NE(last.malloc_segment(2 << 20), nullptr);
}

// Capacities up to the largest device hbmalloc models work, under every
// policy; past it they are refused, never wrapped (256 TiB once failed the
// first 256 MiB request).
TEST(SimBackendTest, CapacitiesUpToOnePebibyteWorkAndLargerAreRefused) {
  for (const char* policy : {"hbm", "cca"}) {
    for (uint64_t capacity : {uint64_t(1) << 47, uint64_t(1) << 48, hbmalloc::kMaxDeviceBytes}) {
      SCOPED_TRACE(std::string(policy) + " " + std::to_string(capacity));
      hbmalloc::Config c = hbmalloc::Config::parse(std::string("backend:sim,policy:") + policy);
      c.capacity = capacity;
      hbmalloc::Allocator a(c, hbmalloc::make_sim_backend(c, 0));
      void* p = a.malloc(256ull << 20, 0);
      EXPECT_NE(p, nullptr);
      a.free(p);
    }
  }
  EXPECT_THROW(hbmalloc::SimBackend(0, hbmalloc::kMaxDeviceBytes + 1), hbmalloc::Error);
  EXPECT_THROW(hbmalloc::SimBackend(0, UINT64_MAX), hbmalloc::Error);
  // The last device's window still holds the largest device.
  hbmalloc::SimBackend last(4095, hbmalloc::kMaxDeviceBytes);
  EXPECT_NE(last.malloc_segment(hbmalloc::kMaxDeviceBytes), nullptr);
}
