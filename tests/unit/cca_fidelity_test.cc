// The cca policy against what PyTorch itself did: every shared snapshot that
// records segment events is replayed with --policy cca under its own
// allocator settings, from its own start picture, on the device it implies;
// the replay's segment events must match the recorded ones (LCS >= 0.99)
// and its peak reserved must be PyTorch's (../shared/traces/README.md).
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "replay/replay.h"
#include "support/cli_run.h"
#include "trace/read_trace.h"

namespace hbmalloc {
namespace {

namespace fs = std::filesystem;

TEST(CcaFidelity, EverySharedSnapshotWithSegmentEvents) {
  const fs::path dir = testing::shared_traces() / "snapshots";
  ASSERT_TRUE(fs::is_directory(dir)) << dir << " is missing: CI always has ../shared/traces";
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  int checked = 0;
  for (const fs::path& file : files) {
    const trace::Trace t = trace::read_trace_file(file.string());
    for (const trace::DeviceTrace& d : t.devices) {
      const trace::TraceFigures figures = trace::figures_of(d);
      if (figures.segment_events == 0) continue;
      SCOPED_TRACE(file.filename().string() + " device " + std::to_string(d.device));
      replay::ReplayOptions o;
      o.config.policy = "cca";
      o.device = d.device;
      replay::as_recorded(t, o);
      EXPECT_EQ(o.capacity, replay::recorded_capacity(t, d));
      o.fidelity = true;
      const replay::ReplayResult r = replay::replay(t, o);
      ASSERT_TRUE(r.fidelity.has_value());
      EXPECT_TRUE(r.started_from_picture) << r.start_note;
      EXPECT_EQ(r.fidelity->recorded, figures.segment_events);
      EXPECT_GE(r.fidelity->matched_fraction, 0.99)
          << r.fidelity->matched << " of " << r.fidelity->recorded << " recorded, " << r.fidelity->replayed
          << " replayed, first difference at " << r.fidelity->first_difference;
      EXPECT_EQ(r.peak_reserved, figures.native_peak_reserved.value_or(0)) << "PyTorch's own peak reserved";
      EXPECT_EQ(r.ooms.size(), figures.native_ooms);
      ++checked;
    }
  }
  EXPECT_GE(checked, 20) << "the shared snapshots with segment events";
}

}  // namespace
}  // namespace hbmalloc
