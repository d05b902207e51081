// The project's own example trace: deterministic, consistent, and
// fragmenting enough to be worth a report.
#include "trace/synthetic.h"

#include <gtest/gtest.h>

#include "replay/replay.h"

namespace hbmalloc::trace {
namespace {

TEST(SyntheticTrace, IsDeterministicPerSeed) {
  Trace a = synthetic_training_trace({});
  Trace b = synthetic_training_trace({});
  ASSERT_EQ(a.devices[0].events.size(), b.devices[0].events.size());
  for (size_t i = 0; i < a.devices[0].events.size(); ++i) {
    EXPECT_EQ(a.devices[0].events[i].size, b.devices[0].events[i].size);
    EXPECT_EQ(a.devices[0].events[i].action, b.devices[0].events[i].action);
  }
  SyntheticOptions other;
  other.seed = 2;
  EXPECT_NE(figures_of(synthetic_training_trace(other).devices[0]).peak_requested,
            figures_of(a.devices[0]).peak_requested);
}

TEST(SyntheticTrace, ReplaysCleanlyAndEndsWithOnlyTheModelLive) {
  Trace t = synthetic_training_trace({});
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
