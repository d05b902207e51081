// PyTorch profiler traces: [memory] events with and without addresses, the
// reserved figures as synthetic segments, and the shared ResNet-50 sample.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "support/trace_samples.h"
#include "trace/read_trace.h"

namespace hbmalloc::testing {
namespace {

using trace::read_kineto;

std::string Memory(int64_t ts, int64_t bytes, const std::string& extra, int device_type = 1,
                   const char* name = "[memory]") {
  return std::string(R"({"ph": "i", "s": "t", "name": ")") + name + R"(", "pid": 1, "tid": 1, "ts": )" +
         std::to_string(ts) + R"(, "args": {"Device Type": )" + std::to_string(device_type) +
         R"(, "Device Id": 0, "Bytes": )" + std::to_string(bytes) + extra + "}}";
}
std::string Addr(uint64_t addr, int64_t reserved) {
  return R"(, "Addr": )" + std::to_string(addr) + R"(, "Total Allocated": 0, "Total Reserved": )" +
         std::to_string(reserved);
}
std::string Trace(const std::vector<std::string>& events) {
  std::string out = R"({"schemaVersion": 1, "deviceProperties": [{"id": 0, "totalGlobalMem": 34084028416}],)"
                    R"( "traceEvents": [{"ph": "X", "name": "aten::mm", "ts": 1, "dur": 3})";
  for (const std::string& e : events) out += ",\n" + e;
  return out + "]}";
}

constexpr int64_t MiB = 1 << 20;

TEST(Kineto, MatchesFreesByAddressAndTurnsReservedFiguresIntoSegments) {
  std::string json = Trace({
      Memory(10, 512, Addr(1000, 2 * MiB)),
      Memory(10, 64, Addr(1000, 2 * MiB), /*device_type=*/0),  // CPU memory: skipped
      Memory(20, MiB, Addr(2000, 2 * MiB)),
      Memory(30, 4 * MiB, Addr(3000, 6 * MiB)),
      Memory(40, -512, Addr(1000, 6 * MiB)),
      Memory(50, -256, Addr(9999, 6 * MiB)),  // allocated before profiling began
      Memory(60, int64_t{1} << 40, R"(, "Total Allocated": 0, "Total Reserved": 6291456)", 1, "[OutOfMemory]"),
      Memory(70, -4 * MiB, Addr(3000, 2 * MiB)),
      Memory(5, 100, Addr(500, 2 * MiB)),  // out of time order in the file
  });
  hbmalloc::trace::Trace t = read_kineto(json, "p.json");
  EXPECT_EQ(t.format, "kineto");
  EXPECT_EQ(t.capacity, 34084028416u);
  ASSERT_EQ(t.devices.size(), 1u);
  const DeviceTrace& d = t.devices[0];
  ASSERT_EQ(d.live_at_start.size(), 1u);
  EXPECT_EQ(d.live_at_start[0].id, 0u);
  EXPECT_EQ(d.live_at_start[0].addr, 9999u);
  EXPECT_EQ(d.live_at_start[0].requested, 256u);
  ASSERT_EQ(d.segments_at_start.size(), 1u);
  EXPECT_EQ(d.segments_at_start[0].size, uint64_t(2 * MiB));
  EXPECT_TRUE(d.has_segment_picture);
  EXPECT_EQ(d.block_count, 5u);

  ASSERT_EQ(d.events.size(), 10u);
  EXPECT_EQ(d.events[0].time_us, 5);  // sorted by ts
  EXPECT_EQ(d.events[0].id, 1u);
  EXPECT_EQ(d.events[3].action, Action::kSegmentAlloc);
  EXPECT_EQ(d.events[3].size, uint64_t(4 * MiB));
  EXPECT_EQ(d.events[4].id, 4u);
  EXPECT_EQ(d.events[5].action, Action::kFree);
  EXPECT_EQ(d.events[5].id, 2u);  // address 1000
  EXPECT_EQ(d.events[6].id, 0u);  // the block live at start
  EXPECT_EQ(d.events[7].action, Action::kOom);
  EXPECT_EQ(d.events[8].action, Action::kSegmentFree);
  EXPECT_EQ(d.events[9].id, 4u);

  trace::TraceFigures f = trace::figures_of(d);
  EXPECT_EQ(f.peak_requested, 256u + 100 + 512 + MiB + 4 * MiB);
  EXPECT_EQ(f.native_peak_reserved, uint64_t(6 * MiB));  // the largest "Total Reserved"
  EXPECT_EQ(f.segment_events, 2u);
  EXPECT_EQ(f.native_ooms, 1u);
}

TEST(Kineto, WithoutAddressesAFreeTakesTheLatestLiveBlockOfItsSize) {
  std::string json = Trace({
      Memory(1, 100, ""),
      Memory(2, 200, ""),
      Memory(3, 100, ""),
      Memory(4, -100, ""),
      Memory(5, -200, ""),
      Memory(6, -300, ""),
      Memory(7, 0, ""),  // allocates nothing
  });
  hbmalloc::trace::Trace t = read_kineto(json, "old.json");
  const DeviceTrace& d = t.devices[0];
  EXPECT_FALSE(d.has_segment_picture);
  ASSERT_EQ(d.live_at_start.size(), 1u);
  EXPECT_EQ(d.live_at_start[0].size, 300u);
  ASSERT_EQ(d.events.size(), 6u);
  EXPECT_EQ(d.events[0].id, 1u);
  EXPECT_EQ(d.events[2].id, 3u);
  EXPECT_EQ(d.events[3].id, 3u);  // the second 100-byte block
  EXPECT_EQ(d.events[4].id, 2u);
  EXPECT_EQ(d.events[5].id, 0u);
  trace::TraceFigures f = trace::figures_of(d);
  EXPECT_EQ(f.peak_requested, 700u);
  EXPECT_FALSE(f.native_peak_reserved.has_value());
}

TEST(Kineto, ErrorsNameTheEvent) {
  EXPECT_NE(ErrorOf([] { read_kineto(R"({"schemaVersion": 1})", "p.json"); }).find("no \"traceEvents\" list"),
            std::string::npos);
  EXPECT_NE(ErrorOf([] { read_kineto("[]", "p.json"); }).find("no \"traceEvents\""), std::string::npos);
  EXPECT_NE(ErrorOf([] { read_kineto("{\"traceEvents\": [", "p.json"); }).find("p.json: not valid JSON"),
            std::string::npos);
  std::string no_bytes = Trace({R"({"name": "[memory]", "args": {"Device Type": 1}})"});
  EXPECT_NE(ErrorOf([&] { read_kineto(no_bytes, "p.json"); }).find("memory event 1: no \"Bytes\""),
            std::string::npos);
  std::string no_args = Trace({R"({"name": "[memory]"})"});
  EXPECT_NE(ErrorOf([&] { read_kineto(no_args, "p.json"); }).find("memory event 1: no \"args\""), std::string::npos);
  std::string device = Trace({R"({"name": "[memory]", "args": {"Device Type": 1, "Device Id": 5000, "Bytes": 1}})"});
  EXPECT_NE(ErrorOf([&] { read_kineto(device, "p.json"); }).find("device 5000 out of range"), std::string::npos);
  std::string bytes = Trace({R"({"name": "[memory]", "args": {"Device Type": 1, "Bytes": 1.5}})"});
  EXPECT_NE(ErrorOf([&] { read_kineto(bytes, "p.json"); }).find("\"Bytes\" must be an integer"), std::string::npos);
  std::string twice = Trace({Memory(1, 8, Addr(16, 0)), Memory(2, 8, Addr(16, 0))});
  EXPECT_NE(ErrorOf([&] { read_kineto(twice, "p.json"); }).find("memory event 2: allocates address 16"),
            std::string::npos);
  std::string mismatch = Trace({Memory(1, 8, Addr(16, 0)), Memory(2, -16, Addr(16, 0))});
  EXPECT_NE(ErrorOf([&] { read_kineto(mismatch, "p.json"); }).find("frees 16 bytes at address 16, allocated with 8"),
            std::string::npos);
  std::string ts = Trace({R"({"name": "[memory]", "ts": 1e300, "args": {"Device Type": 1, "Bytes": 1}})"});
  EXPECT_NE(ErrorOf([&] { read_kineto(ts, "p.json"); }).find("\"ts\" out of range"), std::string::npos);
}

// The shared sample: an old profiler, no addresses and no totals.
TEST(Kineto, SharedResNetSample) {
  std::filesystem::path path = std::filesystem::path(HBMALLOC_SOURCE_DIR) / ".." / "shared" / "traces" / "kineto" /
                               "kineto_tbplugin_resnet50_nw0_worker0.1623143089861.pt.trace.json.gz";
  ASSERT_TRUE(std::filesystem::exists(path)) << "../shared/traces must be beside the repository: no " << path;
  hbmalloc::trace::Trace t = trace::read_trace_file(path.string());
  EXPECT_EQ(t.format, "kineto");
  EXPECT_EQ(t.capacity, 34084028416u);  // the V100's totalGlobalMem
  ASSERT_EQ(t.devices.size(), 1u);
  trace::TraceFigures f = trace::figures_of(t.devices[0]);
  EXPECT_EQ(f.events, 8220u);  // the CUDA [memory] events; 4618 CPU ones are skipped
  EXPECT_EQ(t.devices[0].live_at_start.size(), 0u);
  EXPECT_EQ(f.peak_requested, 2791636480u);
  EXPECT_FALSE(f.native_peak_reserved.has_value());  // the trace has no "Total Reserved"
}

}  // namespace
}  // namespace hbmalloc::testing
