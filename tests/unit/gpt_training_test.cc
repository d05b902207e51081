// The project's own example trace: deterministic, consistent, and
// fragmenting enough to be worth a report.
#include "synth/gpt_training.h"

#include <gtest/gtest.h>

#include "replay/replay.h"

namespace hbmalloc::trace {
namespace {

TEST(SyntheticTrace, IsDeterministicPerSeed) {
  Trace a = synth::gpt_training({});
  Trace b = synth::gpt_training({});
  ASSERT_EQ(a.devices[0].events.size(), b.devices[0].events.size());
  for (size_t i = 0; i < a.devices[0].events.size(); ++i) {
    EXPECT_EQ(a.devices[0].events[i].size, b.devices[0].events[i].size);
    EXPECT_EQ(a.devices[0].events[i].action, b.devices[0].events[i].action);
  }
  synth::GptOptions other;
  other.seed = 2;
  EXPECT_NE(figures_of(synth::gpt_training(other).devices[0]).peak_requested,
            figures_of(a.devices[0]).peak_requested);
}

TEST(SyntheticTrace, ReplaysCleanlyAndEndsWithOnlyTheModelLive) {
  Trace t = synth::gpt_training({});
  replay::ReplayResult r = replay::replay(t, replay::ReplayOptions{});
  EXPECT_TRUE(r.ooms.empty());
  EXPECT_EQ(r.peak_requested, figures_of(t.devices[0]).peak_requested);
  // Weights and two Adam moments stay: 3x the parameter bytes.
  uint64_t live = uint64_t(r.final_stats.requested_bytes.all.current);
  EXPECT_GT(live, 0u);
  EXPECT_GT(r.peak_requested, live);
  EXPECT_LT(r.efficiency, 1.0);
  std::printf("synthetic: %llu events, peak requested %llu, peak reserved %llu, efficiency %.4f\n",
              (unsigned long long)r.events, (unsigned long long)r.peak_requested,
              (unsigned long long)r.peak_reserved, r.efficiency);
}

}  // namespace
}  // namespace hbmalloc::trace

#include "trace/read_trace.h"

namespace hbmalloc::trace {
namespace {

// examples/gpt_train.hbt is `hbmalloc synth --out examples/gpt_train.hbt`;
// regenerate it when the generator or the .hbt format changes.
TEST(SyntheticTrace, ShippedExampleIsTheGeneratorsOutput) {
  Trace shipped = read_trace_file(std::string(HBMALLOC_SOURCE_DIR) + "/examples/gpt_train.hbt");
  Trace fresh = synth::gpt_training({});
  ASSERT_EQ(shipped.devices.size(), 1u);
  const DeviceTrace &a = shipped.devices[0], &b = fresh.devices[0];
  ASSERT_EQ(a.events.size(), b.events.size());
  for (size_t i = 0; i < a.events.size(); ++i) {
    ASSERT_EQ(a.events[i].action, b.events[i].action) << i;
    ASSERT_EQ(a.events[i].size, b.events[i].size) << i;
    ASSERT_EQ(a.events[i].id, b.events[i].id) << i;
    ASSERT_EQ(a.events[i].stream, b.events[i].stream) << i;
  }
}

}  // namespace
}  // namespace hbmalloc::trace
