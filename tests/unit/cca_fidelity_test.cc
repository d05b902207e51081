// The cca policy against what PyTorch itself did: every shared snapshot
// (snapshots/ and incoming/) that records segment events is replayed with --policy cca under its own
// allocator settings, from its own start picture, on the device it implies;
// the replay's segment events must match the recorded ones (LCS >= 0.99)
// and its peak reserved must be PyTorch's (../shared/traces/README.md).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "hbmalloc/error.hpp"
#include "replay/replay.h"
#include "support/cli_run.h"
#include "trace/read_trace.h"

namespace hbmalloc {
namespace {

namespace fs = std::filesystem;

TEST(CcaFidelity, EverySharedSnapshotWithSegmentEvents) {
  std::vector<fs::path> files;
  for (const char* folder : {"snapshots", "incoming"}) {
    const fs::path dir = testing::shared_traces() / folder;
    ASSERT_TRUE(fs::is_directory(dir)) << dir << " is missing: CI always has ../shared/traces";
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.path().extension() == ".pickle") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  int checked = 0, addressed = 0;
  for (const fs::path& file : files) {
    trace::Trace t;
    try {
      t = trace::read_trace_file(file.string());
    } catch (const Error& e) {
      continue;  // a state-only snapshot (no history): nothing to replay
    }
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
      replay::AddressLog log;
      o.addresses = &log;
      const replay::ReplayResult r = replay::replay(t, o);
      ASSERT_TRUE(r.fidelity.has_value());
      EXPECT_TRUE(r.started_from_picture) << r.start_note;
      EXPECT_EQ(r.fidelity->recorded, figures.segment_events);
      EXPECT_GE(r.fidelity->matched_fraction, 0.99)
          << r.fidelity->matched << " of " << r.fidelity->recorded << " recorded, " << r.fidelity->replayed
          << " replayed, first difference at " << r.fidelity->first_difference;
      EXPECT_EQ(r.peak_reserved, figures.native_peak_reserved.value_or(0)) << "PyTorch's own peak reserved";
      EXPECT_EQ(r.ooms.size(), figures.native_ooms);
      // From PyTorch's own start picture every block lands where PyTorch put
      // it (expandable segments are reserved where the sim has room: their
      // addresses differ, their events do not).
      bool expandable = false;
      for (const auto* segs : {&d.segments_at_start, &d.segments_at_end})
        for (const trace::SegmentInfo& seg : *segs) expandable |= seg.expandable;
      if (r.started_from_picture && !expandable) {
        size_t elsewhere = 0, first = SIZE_MAX;
        for (size_t i = 0; i < d.events.size(); ++i)
          if (d.events[i].action == trace::Action::kAlloc && log.block_addr[d.events[i].id] != d.events[i].addr) {
            ++elsewhere;
            first = std::min(first, i);
          }
        EXPECT_EQ(elsewhere, 0u) << "allocs at another address than PyTorch's, the first at event " << first;
        ++addressed;
      }
      ++checked;
    }
  }
  EXPECT_GE(checked, 30) << "the shared snapshots with segment events";
  EXPECT_GE(addressed, 25) << "snapshot devices checked block by block";
  std::printf("%d snapshot devices replayed under cca, %d of them block by block\n", checked, addressed);
}

}  // namespace
}  // namespace hbmalloc
