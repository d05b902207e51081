// Test helpers for trace readers and writers: a small trace that uses every
// part of the model, a field-by-field comparison, and error expectations.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "hbmalloc/error.hpp"
#include "record/trace.h"

namespace hbmalloc::testing {

using trace::Action;
using trace::BlockInfo;
using trace::BlockState;
using trace::DeviceTrace;
using trace::Event;
using trace::SegmentInfo;
using trace::Trace;

inline Event MakeEvent(Action action, uint32_t id, uint64_t size, uint64_t addr = 0,
                       uint64_t stream = 0, int64_t time_us = 0) {
  Event e;
  e.action = action;
  e.id = id;
  e.size = size;
  e.addr = addr;
  e.stream = stream;
  e.time_us = time_us;
  return e;
}

// Two devices; device 0 has blocks live at start, segments at start and end
// (with blocks), every action, non-trivial streams and times; device 3 is sparse.
inline Trace SampleTrace() {
  constexpr uint32_t kNo = trace::kNoBlock;
  Trace t;
  t.recorder = "hbmalloc test 0.1";
  t.capacity = uint64_t{80} << 30;
  t.has_history = true;
  t.settings = {{"policy", "hbm"}, {"max_split_size_mb", "512"}, {"empty", ""}};

  DeviceTrace d0;
  d0.device = 0;
  d0.has_segment_picture = true;
  d0.live_at_start = {
      {0, 0x7f0000000000, 2 << 20, (2 << 20) - 100, 7, BlockState::kActiveAllocated},
      {1, 0x7f0000200000, 1024, 1000, 0, BlockState::kActivePendingFree},
  };
  SegmentInfo s0;
  s0.addr = 0x7f0000000000;
  s0.size = 20 << 20;
  s0.stream = 7;
  s0.blocks = {d0.live_at_start[0], d0.live_at_start[1],
               {kNo, 0x7f0000200400, (18 << 20) - 1024, 0, 7, BlockState::kInactive}};
  d0.segments_at_start = {s0};
  SegmentInfo small;
  small.addr = 0x7f0001400000;
  small.size = 2 << 20;
  small.small_pool = true;
  small.expandable = true;
  d0.segments_at_start.push_back(small);
  d0.events = {
      MakeEvent(Action::kSegmentAlloc, kNo, 4 << 20, 0x7f0002000000, 7, 10),
      MakeEvent(Action::kAlloc, 2, 3 << 20, 0x7f0002000000, 7, 11),
      MakeEvent(Action::kAlloc, 3, 512, 0x7f0001400000, 0, 12),
      MakeEvent(Action::kFreeRequested, 1, 1000, 0x7f0000200000, 0, 13),
      MakeEvent(Action::kFree, 1, 1000, 0x7f0000200000, 0, 14),
      MakeEvent(Action::kOom, kNo, uint64_t{90} << 30, 123456789, 7, 15),
      MakeEvent(Action::kSegmentMap, kNo, 2 << 20, 0x7f0003000000, 0, 16),
      MakeEvent(Action::kSegmentUnmap, kNo, 2 << 20, 0x7f0003000000, 0, 17),
      MakeEvent(Action::kFree, 2, 3 << 20, 0x7f0002000000, 7, 18),
      MakeEvent(Action::kEmptyCache, kNo, 0, 0, 0, 19),
      MakeEvent(Action::kSegmentFree, kNo, 4 << 20, 0x7f0002000000, 7, 20),
      MakeEvent(Action::kSnapshot, kNo, 0, 0, 0, 21),
      MakeEvent(Action::kMarker, kNo, 5, 6, 7, -22),
      MakeEvent(Action::kAlloc, 4, 1, 0x7f0001400200, UINT64_MAX, INT64_MAX),
  };
  d0.block_count = 5;
  SegmentInfo end = s0;
  end.blocks = {d0.live_at_start[0], {kNo, 0x7f0000200000, (18 << 20), 0, 7, BlockState::kInactive}};
  d0.segments_at_end = {end};

  DeviceTrace d3;
  d3.device = 3;
  d3.events = {MakeEvent(Action::kAlloc, 0, 4096, 0x1000, 0, 1),
               MakeEvent(Action::kFree, 0, 4096, 0x1000, 0, 2)};
  d3.block_count = 1;
  t.devices = {d0, d3};
  return t;
}

inline void ExpectSameBlock(const BlockInfo& a, const BlockInfo& b, const std::string& where) {
  EXPECT_EQ(a.id, b.id) << where;
  EXPECT_EQ(a.addr, b.addr) << where;
  EXPECT_EQ(a.size, b.size) << where;
  EXPECT_EQ(a.requested, b.requested) << where;
  EXPECT_EQ(a.stream, b.stream) << where;
  EXPECT_EQ(a.state, b.state) << where;
}

inline void ExpectSameSegments(const std::vector<SegmentInfo>& a, const std::vector<SegmentInfo>& b,
                               const std::string& where) {
  ASSERT_EQ(a.size(), b.size()) << where;
  for (size_t i = 0; i < a.size(); ++i) {
    std::string at = where + " segment " + std::to_string(i);
    EXPECT_EQ(a[i].addr, b[i].addr) << at;
    EXPECT_EQ(a[i].size, b[i].size) << at;
    EXPECT_EQ(a[i].stream, b[i].stream) << at;
    EXPECT_EQ(a[i].small_pool, b[i].small_pool) << at;
    EXPECT_EQ(a[i].expandable, b[i].expandable) << at;
    ASSERT_EQ(a[i].blocks.size(), b[i].blocks.size()) << at;
    for (size_t j = 0; j < a[i].blocks.size(); ++j)
      ExpectSameBlock(a[i].blocks[j], b[i].blocks[j], at + " block " + std::to_string(j));
  }
}

// Everything but source and format, and the figures derived from it.
inline void ExpectSameTrace(const Trace& a, const Trace& b) {
  EXPECT_EQ(a.recorder, b.recorder);
  EXPECT_EQ(a.capacity, b.capacity);
  EXPECT_EQ(a.has_history, b.has_history);
  EXPECT_EQ(a.settings, b.settings);
  ASSERT_EQ(a.devices.size(), b.devices.size());
  for (size_t i = 0; i < a.devices.size(); ++i) {
    const DeviceTrace& x = a.devices[i];
    const DeviceTrace& y = b.devices[i];
    std::string where = "device " + std::to_string(x.device);
    EXPECT_EQ(x.device, y.device);
    EXPECT_EQ(x.block_count, y.block_count) << where;
    EXPECT_EQ(x.has_segment_picture, y.has_segment_picture) << where;
    ASSERT_EQ(x.live_at_start.size(), y.live_at_start.size()) << where;
    for (size_t j = 0; j < x.live_at_start.size(); ++j)
      ExpectSameBlock(x.live_at_start[j], y.live_at_start[j], where + " live " + std::to_string(j));
    ExpectSameSegments(x.segments_at_start, y.segments_at_start, where + " at start");
    ExpectSameSegments(x.segments_at_end, y.segments_at_end, where + " at end");
    ASSERT_EQ(x.events.size(), y.events.size()) << where;
    for (size_t j = 0; j < x.events.size(); ++j) {
      const Event& e = x.events[j];
      const Event& f = y.events[j];
      std::string at = where + " event " + std::to_string(j);
      EXPECT_EQ(e.action, f.action) << at;
      EXPECT_EQ(e.id, f.id) << at;
      EXPECT_EQ(e.size, f.size) << at;
      EXPECT_EQ(e.addr, f.addr) << at;
      EXPECT_EQ(e.stream, f.stream) << at;
      EXPECT_EQ(e.time_us, f.time_us) << at;
    }
    trace::TraceFigures fx = trace::figures_of(x);
    trace::TraceFigures fy = trace::figures_of(y);
    EXPECT_EQ(fx.events, fy.events) << where;
    EXPECT_EQ(fx.segment_events, fy.segment_events) << where;
    EXPECT_EQ(fx.peak_requested, fy.peak_requested) << where;
    EXPECT_EQ(fx.native_peak_reserved, fy.native_peak_reserved) << where;
    EXPECT_EQ(fx.native_ooms, fy.native_ooms) << where;
  }
}

// The error message of `f`, which must throw hbmalloc::Error(kInvalidArgument).
inline std::string ErrorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an hbmalloc::Error";
  return "";
}

}  // namespace hbmalloc::testing
