// RAPIDS RMM logging_resource_adaptor CSV: the spellings of several RMM
// versions, failures as OOM events, and errors that name the line.
#include <gtest/gtest.h>

#include <string>

#include "support/trace_samples.h"
#include "trace/read_trace.h"

namespace hbmalloc::testing {
namespace {

using trace::read_rmm_csv;

constexpr const char* kHeader = "Thread,Time,Action,Pointer,Size,Stream\n";

TEST(Rmm, ReadsAllocFreeAndFailureRows) {
  // fmt-era pointers (0x...), %llx-era bare hex, %p's "(nil)" for null.
  std::string csv = std::string(kHeader) +
                    "140573312345856,14:05:09.123456,allocate,0x7f8a40000000,1024,0x5581e2a0\n"
                    "140573312345856,14:05:09.123500,allocate,7f8a40000400,2048,0\n"
                    "140573312345857,14:05:09.200000,allocate failure,(nil),1099511627776,0x5581e2a0\n"
                    "140573312345856,14:05:10.000001,free,0x7f8a40000000,1024,0x5581e2a0\n"
                    "140573312345856,14:05:10.5,allocate,0x7f8a40000000,512,0x0\n";
  Trace t = read_rmm_csv(csv, "log.csv");
  EXPECT_EQ(t.format, "rmm-csv");
  ASSERT_EQ(t.devices.size(), 1u);
  const DeviceTrace& d = t.devices[0];
  ASSERT_EQ(d.events.size(), 5u);
  EXPECT_EQ(d.events[0].action, Action::kAlloc);
  EXPECT_EQ(d.events[0].addr, 0x7f8a40000000u);
  EXPECT_EQ(d.events[0].stream, 0x5581e2a0u);
  EXPECT_EQ(d.events[0].time_us, 0);
  EXPECT_EQ(d.events[1].addr, 0x7f8a40000400u);
  EXPECT_EQ(d.events[1].time_us, 44);
  EXPECT_EQ(d.events[2].action, Action::kOom);
  EXPECT_EQ(d.events[2].size, 1099511627776u);
  EXPECT_EQ(d.events[2].id, trace::kNoBlock);
  EXPECT_EQ(d.events[3].action, Action::kFree);
  EXPECT_EQ(d.events[3].id, 0u);
  EXPECT_EQ(d.events[3].time_us, 876545);
  EXPECT_EQ(d.events[4].id, 2u);  // the freed pointer again: a new block
  EXPECT_EQ(d.events[4].time_us, 1376544);
  EXPECT_EQ(d.block_count, 3u);
  trace::TraceFigures f = trace::figures_of(d);
  EXPECT_EQ(f.peak_requested, 3072u);
  EXPECT_EQ(f.native_ooms, 1u);
  EXPECT_FALSE(f.native_peak_reserved.has_value());
}

TEST(Rmm, TimesPastMidnightAndEpochSecondsAndCrlf) {
  std::string csv = std::string("Thread,Time,Action,Pointer,Size,Stream\r\n") +
                    "1,23:59:59.999999,allocate,0x10,8,0x0\r\n"
                    "1,00:00:00.000001,free,0x10,8,0x0\r\n";
  Trace midnight = read_rmm_csv(csv, "m.csv");
  EXPECT_EQ(midnight.devices[0].events[1].time_us, 2);
  std::string epoch = std::string(kHeader) + "1,1634567890.123456,allocate,0x10,8,0x0\n"
                      "1,1634567890.234567,deallocate,0x10,8,0x0\n";
  Trace seconds = read_rmm_csv(epoch, "e.csv");
  EXPECT_EQ(seconds.devices[0].events[1].time_us, 111111);
  EXPECT_EQ(seconds.devices[0].events[1].action, Action::kFree);
}

TEST(Rmm, HeaderOnlyIsAnEmptyTrace) {
  Trace t = read_rmm_csv(kHeader, "h.csv");
  ASSERT_EQ(t.devices.size(), 1u);
  EXPECT_TRUE(t.devices[0].events.empty());
}

TEST(Rmm, FreeOfAPointerNotLiveNamesTheLine) {
  std::string csv = std::string(kHeader) + "1,10:00:00.000000,allocate,0x10,8,0x0\n"
                    "1,10:00:00.000001,free,0x20,8,0x0\n";
  EXPECT_EQ(ErrorOf([&] { read_rmm_csv(csv, "l.csv"); }), "invalid argument: l.csv:3: frees 0x20 that is not live");
}

TEST(Rmm, BadRowsNameTheLine) {
  struct Case {
    std::string row;
    std::string expected;
  };
  const Case cases[] = {
      {"1,10:00:00.0,allocate,0x10,8", "c.csv:2: expected 6 fields"},
      {"1,10:00:00.0,allocate,0x10,8,0,extra", "c.csv:2: more than 6 fields"},
      {"1,10:00:00.0,allocate,0xzz,8,0", "c.csv:2: bad pointer \"0xzz\""},
      {"1,10:00:00.0,allocate,0x10,-8,0", "c.csv:2: bad size \"-8\""},
      {"1,10:00:00.0,allocate,0x10,8,stream", "c.csv:2: bad stream"},
      {"1,ten o'clock,allocate,0x10,8,0", "c.csv:2: bad time"},
      {"1,1:2:3:4.5,allocate,0x10,8,0", "c.csv:2: bad time"},
      {"1,99999999999999999999,allocate,0x10,8,0", "c.csv:2: bad time"},
      {"1,10:00:00.0,reallocate,0x10,8,0", "c.csv:2: unknown action \"reallocate\""},
  };
  for (const Case& c : cases) {
    std::string message = ErrorOf([&] { read_rmm_csv(std::string(kHeader) + c.row + "\n", "c.csv"); });
    EXPECT_NE(message.find(c.expected), std::string::npos) << c.row << " -> " << message;
  }
  std::string twice = std::string(kHeader) + "1,10:00:00.0,allocate,0x10,8,0\n1,10:00:00.0,allocate,0x10,8,0\n";
  EXPECT_NE(ErrorOf([&] { read_rmm_csv(twice, "c.csv"); }).find("c.csv:3: allocates 0x10 that is already live"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] { read_rmm_csv("Time,Thread\n", "c.csv"); }).find("c.csv:1: not an RMM log"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] { read_rmm_csv("", "c.csv"); }).find("c.csv: not an RMM log"), std::string::npos);
}

}  // namespace
}  // namespace hbmalloc::testing
