// Replay of hand-built traces: figures, OOMs as results, min capacity, and
// the errors a corrupt trace gets.
#include "replay/replay.h"

#include <gtest/gtest.h>

#include <optional>
#include <random>
#include <vector>

#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "policy/policy_catalog.h"

namespace hbmalloc::replay {
namespace {

using trace::Action;
using trace::Event;

constexpr uint64_t kMiB = 1ull << 20;

struct TraceBuilder {
  trace::Trace t;
  trace::DeviceTrace& d;
  TraceBuilder() : d(t.devices.emplace_back()) {
    t.source = "built.hbt";
    t.format = "test";
    t.has_history = true;
  }
  uint32_t live(uint64_t size) {
    uint32_t id = d.block_count++;
    d.live_at_start.push_back({id, 0, 0, size, 0, trace::BlockState::kActiveAllocated});
    return id;
  }
  uint32_t alloc(uint64_t size, uint64_t stream = 0) {
    uint32_t id = d.block_count++;
    d.events.push_back(Event{0, 0, size, stream, id, Action::kAlloc});
    return id;
  }
  void free(uint32_t id) { d.events.push_back(Event{0, 0, 0, 0, id, Action::kFree}); }
  void event(Action a, uint64_t size = 0) { d.events.push_back(Event{0, 0, size, 0, trace::kNoBlock, a}); }
  // A request the recording failed: PyTorch's `oom` entry.
  void oom(uint64_t size, uint64_t stream = 0) { d.events.push_back(Event{0, 0, size, stream, trace::kNoBlock, Action::kOom}); }
};

TEST(Replay, PeakRequestedMatchesTheTraceFigures) {
  TraceBuilder b;
  uint32_t w = b.live(100 * kMiB);
  uint32_t a = b.alloc(300 * kMiB + 7);
  uint32_t s = b.alloc(1000);
  b.free(a);
  uint32_t c = b.alloc(50 * kMiB);
  b.free(w);
  b.free(s);
  b.free(c);
  ReplayResult r = replay(b.t, ReplayOptions{});
  EXPECT_EQ(r.events, 7u);
  EXPECT_EQ(r.allocs, 3u);
  EXPECT_EQ(r.frees, 4u);
  EXPECT_EQ(r.peak_requested, 400 * kMiB + 7 + 1000);
  EXPECT_EQ(r.peak_requested, r.native.peak_requested);
  trace::TraceFigures separately = trace::figures_of(b.d);
  EXPECT_EQ(r.native.allocs, separately.allocs);
  EXPECT_EQ(r.native.frees, separately.frees);
  EXPECT_EQ(r.native.peak_requested, separately.peak_requested);
  EXPECT_GE(r.peak_allocated, r.peak_requested);
  EXPECT_GE(r.peak_reserved, r.peak_allocated);
  EXPECT_DOUBLE_EQ(r.efficiency, double(r.peak_requested) / double(r.peak_reserved));
  EXPECT_TRUE(r.ooms.empty());
  EXPECT_EQ(r.final_stats.allocated_bytes.all.current, 0);
}

TEST(Replay, AnOomIsAResultAndTheReplayGoesOn) {
  TraceBuilder b;
  uint32_t a = b.alloc(60 * kMiB);
  uint32_t big = b.alloc(80 * kMiB);  // cannot fit beside a in 100 MiB
  b.free(a);
  b.free(big);  // freeing a block whose alloc failed is fine
  uint32_t c = b.alloc(90 * kMiB);  // fits once a is gone
  b.free(c);
  ReplayOptions o;
  o.capacity = 100 * kMiB;
  ReplayResult r = replay(b.t, o);
  ASSERT_EQ(r.ooms.size(), 1u);
  EXPECT_EQ(r.ooms[0].event, 1u);
  EXPECT_EQ(r.ooms[0].size, 80 * kMiB);
  EXPECT_EQ(r.ooms[0].usage.allocated, 60 * kMiB);
  EXPECT_EQ(r.ooms[0].capacity, 100 * kMiB);
  EXPECT_EQ(r.peak_requested, 90 * kMiB);
  EXPECT_EQ(r.final_stats.num_ooms, 1);
}

TEST(Replay, StopAtFirstOomEndsEarly) {
  TraceBuilder b;
  b.alloc(60 * kMiB);
  b.alloc(80 * kMiB);
  b.alloc(80 * kMiB);
  ReplayOptions o;
  o.capacity = 100 * kMiB;
  o.stop_at_first_oom = true;
  ReplayResult stopped = replay(b.t, o);
  EXPECT_EQ(stopped.ooms.size(), 1u);
  EXPECT_EQ(stopped.allocs, 2u);
  // The trace's own figures still cover every event.
  EXPECT_EQ(stopped.native.allocs, 3u);
  EXPECT_EQ(stopped.native.peak_requested, 220 * kMiB);
  o.stop_at_first_oom = false;
  EXPECT_EQ(replay(b.t, o).ooms.size(), 2u);
}

TEST(Replay, MinCapacityFitsAndTwoMiBLessDoesNot) {
  TraceBuilder b;
  std::vector<uint32_t> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(b.alloc((3 + i % 5) * kMiB + 4096 * i));
  for (int i = 0; i < 20; i += 2) b.free(ids[i]);
  uint32_t big = b.alloc(40 * kMiB);
  b.free(big);
  for (int i = 1; i < 20; i += 2) b.free(ids[i]);
  ReplayOptions o;
  uint64_t cap = min_capacity(b.t, o).value();
  ASSERT_GT(cap, 0u);
  EXPECT_EQ(cap % (2 * kMiB), 0u);
  o.capacity = cap;
  EXPECT_TRUE(replay(b.t, o).ooms.empty());
  o.capacity = cap - 2 * kMiB;
  EXPECT_FALSE(replay(b.t, o).ooms.empty());
}

// The checker replay_fuzz runs after every event accepts every state a
// replay passes through, under each policy, on a small device and on none,
// and changes nothing it reports.
TEST(Replay, InvariantsCheckedAfterEveryEventChangeNothing) {
  TraceBuilder b;
  std::mt19937_64 rng(7);
  std::vector<uint32_t> live;
  for (int i = 0; i < 1500; ++i) {
    if (!live.empty() && rng() % 5 < 2) {
      const size_t k = rng() % live.size();
      b.free(live[k]);
      live[k] = live.back();
      live.pop_back();
    } else {
      const uint64_t size = rng() % 4 == 0 ? (1 + rng() % 24) * kMiB + rng() % 4096 : 1 + rng() % (600 << 10);
      live.push_back(b.alloc(size, rng() % 3 == 0 ? 1 : 0));
    }
    if (i % 400 == 399) b.event(Action::kEmptyCache);
  }
  for (const char* policy : {"hbm", "cca"})
    for (std::optional<uint64_t> capacity : {std::optional<uint64_t>{}, std::optional<uint64_t>{96 * kMiB}}) {
      ReplayOptions o;
      o.config.policy = policy;
      o.capacity = capacity;
      const ReplayResult plain = replay(b.t, o);
      o.check_invariants = true;
      const ReplayResult checked = replay(b.t, o);
      EXPECT_EQ(checked.ooms.size(), plain.ooms.size()) << policy;
      EXPECT_EQ(checked.peak_reserved, plain.peak_reserved) << policy;
      EXPECT_EQ(checked.peak_requested, plain.peak_requested) << policy;
      if (capacity) {
        EXPECT_FALSE(plain.ooms.empty()) << policy << ": the small device should fail requests";
      }
    }
}

// Found by tests/fuzz/report_fuzz: the search probed devices past the 1 PiB
// the sim models, and the sim's refusal named no trace.
TEST(Replay, MinCapacityProbesNoDevicePastTheLargestModelled) {
  TraceBuilder b;
  const uint64_t half = kMaxDeviceBytes / 2;
  b.alloc(half + 1);  // rounded up a granule
  b.alloc(half - 1);  // the requests together are 1 PiB, what holds them more
  ReplayOptions o;
  ASSERT_GT(replay(b.t, o).peak_reserved, kMaxDeviceBytes);
  EXPECT_EQ(min_capacity(b.t, o), std::nullopt);
  // Where 1 PiB does serve them, the search may end there.
  TraceBuilder fits;
  fits.alloc(half);
  fits.alloc(half);
  EXPECT_EQ(min_capacity(fits.t, o), kMaxDeviceBytes);
}

TEST(Replay, FreeingANeverAllocatedBlockIsAnError) {
  TraceBuilder b;
  b.d.block_count = 2;
  b.free(1);
  try {
    replay(b.t, ReplayOptions{});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("built.hbt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("never allocated"), std::string::npos) << e.what();
  }
}

// A request past the largest device is the trace's fault: the error names the
// trace and the event, whether the request was recorded as served or failed.
TEST(Replay, ARequestPastTheLargestDeviceNamesItsEvent) {
  for (bool failed : {false, true}) {
    TraceBuilder b;
    b.alloc(kMiB);
    if (failed) b.oom(kMaxDeviceBytes + 1);
    else b.alloc(kMaxDeviceBytes + 1);
    try {
      replay(b.t, ReplayOptions{});
      FAIL() << "expected an error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("built.hbt: device 0 event 1"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("1 PiB"), std::string::npos) << e.what();
    }
  }
}

TEST(Replay, DoubleFreeAndOutOfRangeIdsAreErrors) {
  TraceBuilder b;
  uint32_t a = b.alloc(kMiB);
  b.free(a);
  b.free(a);
  EXPECT_THROW(replay(b.t, ReplayOptions{}), Error);
  TraceBuilder c;
  c.d.events.push_back(Event{0, 0, 10, 0, 99, Action::kAlloc});
  EXPECT_THROW(replay(c.t, ReplayOptions{}), Error);
}

TEST(Replay, UnknownDeviceNamesTheDevicesThere) {
  TraceBuilder b;
  ReplayOptions o;
  o.device = 3;
  try {
    replay(b.t, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no device 3"), std::string::npos) << e.what();
  }
}

TEST(Replay, SegmentFreeRunsReplayAsEmptyCache) {
  TraceBuilder b;
  uint32_t a = b.alloc(64 * kMiB);
  b.free(a);
  b.event(Action::kSegmentFree, 32 * kMiB);  // one empty_cache(): a run of two
  b.event(Action::kSegmentFree, 32 * kMiB);
  uint32_t c = b.alloc(64 * kMiB);
  b.free(c);
  b.event(Action::kSegmentFree, 64 * kMiB);
  b.event(Action::kSegmentAlloc, 128 * kMiB);
  ReplayResult r = replay(b.t, ReplayOptions{});
  EXPECT_EQ(r.empty_cache_calls, 2u);
  EXPECT_EQ(r.final_stats.vmm.release, int64_t(2 * 64 * kMiB / (2 * kMiB)));  // 32 granules, twice
  ReplayOptions segments;
  segments.config.vmm.enabled = false;
  ReplayResult plain = replay(b.t, segments);
  EXPECT_EQ(plain.empty_cache_calls, 2u);
  EXPECT_EQ(plain.final_stats.num_device_free, 2);
  ReplayOptions off;
  off.infer_empty_cache = false;
  EXPECT_EQ(replay(b.t, off).empty_cache_calls, 0u);
}

TEST(Replay, TimelineKeepsThePeak) {
  TraceBuilder b;
  std::vector<uint32_t> ids;
  for (int i = 0; i < 100; ++i) ids.push_back(b.alloc((i + 1) * kMiB));
  for (uint32_t id : ids) b.free(id);
  ReplayOptions o;
  o.timeline_points = 16;
  ReplayResult r = replay(b.t, o);
  ASSERT_FALSE(r.timeline.empty());
  EXPECT_LE(r.timeline.size(), 16u);
  uint64_t top = 0;
  for (const TimelinePoint& p : r.timeline) top = std::max(top, p.usage.reserved);
  EXPECT_EQ(top, r.peak_reserved);
  EXPECT_EQ(r.peak_reserved_event, 99u);
}

}  // namespace
}  // namespace hbmalloc::replay

namespace hbmalloc::replay {
namespace {

TEST(Replay, LayoutAtThePeakWithoutATimeline) {
  TraceBuilder b;
  std::vector<uint32_t> ids;
  for (int i = 0; i < 10; ++i) ids.push_back(b.alloc((i + 3) * kMiB));
  for (int i = 0; i < 10; i += 2) b.free(ids[i]);
  for (int i = 1; i < 10; i += 2) b.free(ids[i]);
  ReplayOptions o;
  o.capture_layouts = true;
  ReplayResult r = replay(b.t, o);
  EXPECT_TRUE(r.timeline.empty());
  EXPECT_EQ(r.peak_reserved_event, 9u);
  uint64_t reserved = 0, allocated = 0;
  for (const SegmentLayout& s : r.layout_at_peak) {
    reserved += s.size;
    for (const BlockLayout& blk : s.blocks) allocated += blk.allocated ? blk.size : 0;
  }
  EXPECT_EQ(reserved, r.peak_reserved);
  EXPECT_EQ(allocated, r.peak_allocated);
}

}  // namespace
}  // namespace hbmalloc::replay

namespace hbmalloc::replay {
namespace {

// 60 MiB live, then the recording fails a request of 80 MiB, then goes on.
TraceBuilder failed_request_trace() {
  TraceBuilder b;
  uint32_t a = b.alloc(60 * kMiB);
  b.oom(80 * kMiB, 3);
  uint32_t c = b.alloc(30 * kMiB);
  b.free(a);
  b.free(c);
  return b;
}

TEST(Replay, EveryPolicyFailsARecordedFailedRequestThatCannotFit) {
  TraceBuilder b = failed_request_trace();
  for (const PolicyDescription& p : policy_catalog()) {
    SCOPED_TRACE(std::string(p.name));
    ReplayOptions o;
    o.config.policy = std::string(p.name);
    o.capacity = 128 * kMiB;  // 60 live + 80 asked: no allocator serves it
    ReplayResult r = replay(b.t, o);
    ASSERT_EQ(r.failed_requests.size(), 1u);
    EXPECT_EQ(r.failed_requests[0].event, 1u);
    EXPECT_EQ(r.failed_requests[0].size, 80 * kMiB);
    EXPECT_EQ(r.failed_requests[0].stream, 3u);
    EXPECT_FALSE(r.failed_requests[0].served);
    ASSERT_EQ(r.ooms.size(), 1u);
    EXPECT_EQ(r.ooms[0].event, 1u);
    EXPECT_EQ(r.ooms[0].size, 80 * kMiB);
    EXPECT_TRUE(r.ooms[0].recorded_failure);
    EXPECT_EQ(r.peak_requested, 90 * kMiB);  // the replay goes on after it
  }
}

TEST(Replay, EveryPolicyServesARecordedFailedRequestThatFitsAndFreesItAtOnce) {
  TraceBuilder b = failed_request_trace();
  for (const PolicyDescription& p : policy_catalog()) {
    SCOPED_TRACE(std::string(p.name));
    ReplayOptions o;
    o.config.policy = std::string(p.name);
    o.capacity = 512 * kMiB;
    ReplayResult r = replay(b.t, o);
    ASSERT_EQ(r.failed_requests.size(), 1u);
    EXPECT_TRUE(r.failed_requests[0].served);
    EXPECT_TRUE(r.ooms.empty());
    // Held for a moment beside the 60 MiB live, then let go: the 30 MiB that
    // follows is live beside the 60 MiB only.
    EXPECT_EQ(r.peak_requested, 140 * kMiB);
    EXPECT_EQ(r.peak_requested, trace::figures_of(b.d).peak_demand);
    EXPECT_EQ(r.final_stats.requested_bytes.all.current, 0);
    EXPECT_EQ(r.allocs, 2u);  // the failed request is not an alloc of the trace
  }
}

TEST(Replay, EveryPolicysMinCapacityServesTheRecordedFailedRequest) {
  TraceBuilder b = failed_request_trace();
  for (const PolicyDescription& p : policy_catalog()) {
    SCOPED_TRACE(std::string(p.name));
    ReplayOptions o;
    o.config.policy = std::string(p.name);
    const uint64_t cap = min_capacity(b.t, o).value();
    EXPECT_GE(cap, 140 * kMiB);
    o.capacity = cap;
    ReplayResult fits = replay(b.t, o);
    EXPECT_TRUE(fits.ooms.empty());
    ASSERT_EQ(fits.failed_requests.size(), 1u);
    EXPECT_TRUE(fits.failed_requests[0].served);
    o.capacity = cap - 2 * kMiB;
    EXPECT_FALSE(replay(b.t, o).ooms.empty());
  }
}

TEST(Replay, PeakDemandCountsTheWorstFailedRequest) {
  TraceBuilder b;
  uint32_t a = b.alloc(50 * kMiB);
  b.oom(10 * kMiB);  // 60: below the 70 MiB peak that follows
  uint32_t c = b.alloc(20 * kMiB);
  b.free(c);
  b.oom(40 * kMiB);  // 90: the demand
  b.free(a);
  const trace::TraceFigures f = trace::figures_of(b.d);
  EXPECT_EQ(f.peak_requested, 70 * kMiB);
  EXPECT_EQ(f.peak_demand, 90 * kMiB);
  EXPECT_EQ(f.native_ooms, 2u);
}

}  // namespace
}  // namespace hbmalloc::replay
