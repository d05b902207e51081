// Unit tests of trace/trace_checks.h and trace/safe_text.h: what every trace
// must satisfy whatever its format, and text from files made safe to print.
#include "trace/trace_checks.h"

#include <gtest/gtest.h>

#include <string>

#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "record/safe_text.h"

namespace hbmalloc::trace {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

Trace one_device() {
  Trace t;
  t.source = "t.hbt";
  t.has_history = true;
  DeviceTrace& d = t.devices.emplace_back();
  d.has_segment_picture = true;
  return t;
}

Event segment(Action a, uint64_t addr, uint64_t size) {
  Event e;
  e.action = a;
  e.addr = addr;
  e.size = size;
  return e;
}

std::string error_of(const Trace& t) {
  try {
    check_trace(t);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    return e.what();
  }
  return "";
}

TEST(TraceChecks, AConsistentTraceAndProfilerSegmentsWithoutAddressesPass) {
  Trace t = one_device();
  DeviceTrace& d = t.devices[0];
  d.segments_at_start.push_back({0x1000000, 20 * kMiB, 0, false, false, {}});
  d.events = {segment(Action::kSegmentAlloc, 0x4000000, 2 * kMiB), segment(Action::kSegmentFree, 0x1000000, 20 * kMiB)};
  EXPECT_EQ(error_of(t), "");
  // Profiler traces know reserved bytes only: segments at address 0, counted not placed.
  Trace k = one_device();
  k.devices[0].segments_at_start.push_back({0, 4 * kMiB, 0, false, false, {}});
  k.devices[0].events = {segment(Action::kSegmentAlloc, 0, 2 * kMiB), segment(Action::kSegmentFree, 0, 6 * kMiB)};
  EXPECT_EQ(error_of(k), "");
}

TEST(TraceChecks, PicturesMustNotOverlapAndMustHoldTheirBlocks) {
  Trace t = one_device();
  t.devices[0].segments_at_start = {{0x1000000, 4 * kMiB, 0, false, false, {}}, {0x1200000, 4 * kMiB, 0, false, false, {}}};
  EXPECT_NE(error_of(t).find("overlap"), std::string::npos) << error_of(t);

  Trace b = one_device();
  SegmentInfo s{0x1000000, 2 * kMiB, 0, false, false, {}};
  s.blocks.push_back({kNoBlock, 0x9000000, 512, 512, 0, BlockState::kInactive});
  b.devices[0].segments_at_end.push_back(s);
  EXPECT_NE(error_of(b).find("outside its segment"), std::string::npos) << error_of(b);

  Trace over = one_device();
  SegmentInfo o{0x1000000, 2 * kMiB, 0, false, false, {}};
  o.blocks = {{kNoBlock, 0x1000000, 1024, 1024, 0, BlockState::kInactive},
              {kNoBlock, 0x1000200, 512, 512, 0, BlockState::kInactive}};  // starts inside the one before
  over.devices[0].segments_at_end.push_back(o);
  EXPECT_NE(error_of(over).find("over the block before it"), std::string::npos) << error_of(over);
}

TEST(TraceChecks, SegmentEventsFreeOnlyWhatWasHeld) {
  Trace t = one_device();
  t.devices[0].events = {segment(Action::kSegmentFree, 0x5000000, 2 * kMiB)};
  const std::string held = error_of(t);
  EXPECT_NE(held.find("t.hbt: device 0: event 0"), std::string::npos) << held;
  EXPECT_NE(held.find("frees more segment bytes than are held"), std::string::npos) << held;

  Trace wrong = one_device();
  wrong.devices[0].segments_at_start.push_back({0x1000000, 4 * kMiB, 0, false, false, {}});
  wrong.devices[0].events = {segment(Action::kSegmentFree, 0x3000000, 4 * kMiB)};
  EXPECT_NE(error_of(wrong).find("no segment of that address and size"), std::string::npos) << error_of(wrong);

  Trace twice = one_device();
  twice.devices[0].events = {segment(Action::kSegmentAlloc, 0x1000000, 4 * kMiB),
                             segment(Action::kSegmentAlloc, 0x1100000, 4 * kMiB)};
  EXPECT_NE(error_of(twice).find("event 1"), std::string::npos) << error_of(twice);
  EXPECT_NE(error_of(twice).find("overlaps"), std::string::npos) << error_of(twice);

  // Found by tests/fuzz/convert_fuzz: a block allocated outside every segment
  // gained a segment of its own when written as a snapshot.
  Trace outside = one_device();
  outside.devices[0].segments_at_start.push_back({0x1000000, 4 * kMiB, 0, false, false, {}});
  Event alloc = segment(Action::kAlloc, 0x1000000 + 3 * kMiB, kMiB);
  alloc.id = 0;
  outside.devices[0].block_count = 1;
  outside.devices[0].events = {alloc};
  EXPECT_EQ(error_of(outside), "");  // the segment's last MiB
  outside.devices[0].events[0].addr += 512;
  EXPECT_NE(error_of(outside).find("event 0 (alloc of 1048576 bytes at 0x1300200): it lies in no segment held then"),
            std::string::npos)
      << error_of(outside);
  outside.devices[0].events[0].addr = 0x9000000;
  EXPECT_NE(error_of(outside).find("no segment held then"), std::string::npos) << error_of(outside);

  // Found by tests/fuzz/convert_fuzz: a free naming one block by id and
  // another by address, which a snapshot (matching frees by address) read as
  // a block never freed.
  Trace mixed = one_device();
  mixed.devices[0].has_segment_picture = false;  // no segments to hold the blocks
  Event a = segment(Action::kAlloc, 0x1000000, 512);
  a.id = 0;
  Event f = segment(Action::kFree, 0x1000000, 512);
  f.id = 0;
  mixed.devices[0].block_count = 1;
  mixed.devices[0].events = {a, f};
  EXPECT_EQ(error_of(mixed), "");
  mixed.devices[0].events[1].addr = 0x1000200;
  EXPECT_NE(error_of(mixed).find("event 1 (free_completed of 512 bytes at 0x1000200): it frees block 0, which was "
                                 "allocated at 0x1000000"),
            std::string::npos)
      << error_of(mixed);
  mixed.devices[0].events[1].addr = 0;  // an address not told names nothing
  EXPECT_EQ(error_of(mixed), "");
}

// Found by tests/fuzz/replay_fuzz: a live block asking more than it holds
// replayed under cca to a peak allocated below the peak requested.
TEST(TraceChecks, ALiveBlockHoldsWhatWasAskedOfIt) {
  Trace t = one_device();
  SegmentInfo s{0x1000000, 4 * kMiB, 0, false, false, {}};
  s.blocks = {{kNoBlock, 0x1000000, 2 * kMiB, 3 * kMiB, 0, BlockState::kInactive},  // PyTorch's stale request: fine
              {kNoBlock, 0x1200000, 2 * kMiB, 2 * kMiB, 0, BlockState::kActiveAllocated}};
  t.devices[0].segments_at_start.push_back(s);
  t.devices[0].segments_at_start.push_back({0x5000000, 8 * kMiB, 0, false, false, {}});
  t.devices[0].live_at_start = {{0, 0x1200000, 2 * kMiB, 2 * kMiB, 0, BlockState::kActiveAllocated},
                                {1, 0x5000000, 0, 8 * kMiB, 0, BlockState::kActiveAllocated}};  // size not told
  EXPECT_EQ(error_of(t), "");

  Trace live = t;
  live.devices[0].live_at_start[0].requested = 2 * kMiB + 1;
  EXPECT_NE(error_of(live).find("a block live at start at 0x1200000 holds 2097152 bytes for a request of 2097153"),
            std::string::npos)
      << error_of(live);

  // Found by tests/fuzz/convert_fuzz: a block live at start outside every
  // segment then, which a snapshot gave a segment of its own.
  Trace astray = t;
  astray.devices[0].live_at_start[1].addr = 0x9000000;
  EXPECT_NE(error_of(astray).find("a block live at start at 0x9000000 lies in no segment at start"), std::string::npos)
      << error_of(astray);

  Trace pictured = t;
  pictured.devices[0].segments_at_start[0].blocks[1].state = BlockState::kActivePendingFree;
  pictured.devices[0].segments_at_start[0].blocks[1].requested = 3 * kMiB;
  EXPECT_NE(error_of(pictured).find("in the segment at start at 0x1000000"), std::string::npos) << error_of(pictured);
}

TEST(TraceChecks, SizesPastTheLargestDeviceAreRefused) {
  Trace big = one_device();
  big.devices[0].segments_at_start.push_back({0x5000000, uint64_t(1) << 62, 0, false, false, {}});
  EXPECT_NE(error_of(big).find("1 PiB"), std::string::npos) << error_of(big);

  Trace request = one_device();
  Event e;
  e.action = Action::kAlloc;
  e.id = 0;
  e.size = kMaxDeviceBytes + 1;
  request.devices[0].block_count = 1;
  request.devices[0].events = {e};
  EXPECT_NE(error_of(request).find("event 0"), std::string::npos) << error_of(request);
  request.devices[0].events[0].size = kMaxDeviceBytes;  // the largest device's worth is fine
  EXPECT_EQ(error_of(request), "");

  // Found by tests/fuzz/report_fuzz: requests each within 1 PiB, together past it.
  Trace together = one_device();
  Event half;
  half.action = Action::kAlloc;
  half.size = kMaxDeviceBytes / 2 + 1;
  Event second = half;
  second.id = 1;
  half.id = 0;
  Event freed;
  freed.action = Action::kFree;
  freed.id = 0;
  together.devices[0].block_count = 2;
  together.devices[0].events = {half, second};
  EXPECT_NE(error_of(together).find("event 1 (alloc of 562949953421313 bytes at 0x0): with the requests live then"),
            std::string::npos)
      << error_of(together);
  together.devices[0].events = {half, freed, second};  // one after the other is fine
  EXPECT_EQ(error_of(together), "");
  together.devices[0].live_at_start = {{2, 0, 0, kMaxDeviceBytes / 2 + 1, 0, BlockState::kActiveAllocated}};
  together.devices[0].block_count = 3;
  EXPECT_NE(error_of(together).find("event 0"), std::string::npos) << error_of(together);
}

TEST(SafeText, KeepsUtf8AndEscapesControlsAndInvalidBytes) {
  EXPECT_EQ(safe_text("plain.pickle"), "plain.pickle");
  EXPECT_EQ(safe_text("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  EXPECT_EQ(safe_text("a\nb\x1b[31m"), "a\\x0ab\\x1b[31m");
  EXPECT_EQ(safe_text("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(safe_text("\xc3\x28"), "\\xc3(");                 // a lead byte without its continuation
  EXPECT_EQ(safe_text("\xed\xa0\x80"), "\\xed\\xa0\\x80");    // a surrogate
  EXPECT_EQ(safe_text("\xc0\xaf"), "\\xc0\\xaf");             // overlong
  EXPECT_EQ(safe_text("\xc2\x9b"), "\\xc2\\x9b");             // C1 control (CSI)
  EXPECT_EQ(safe_text(std::string("a\0b", 3)), "a\\x00b");
  for (const char* s : {"\xff\x1b\n", "ok", "\xc2\x9b x"}) EXPECT_EQ(safe_text(safe_text(s)), safe_text(s)) << s;
}

}  // namespace
}  // namespace hbmalloc::trace
