// Every real snapshot with a recorded OOM, under every policy: the replay at
// the recorded device makes the failed request again at its place, and the
// least capacity serves it.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "policy/policy_catalog.h"
#include "replay/replay.h"
#include "support/cli_run.h"
#include "trace/read_trace.h"

namespace hbmalloc::replay {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> shared_snapshots() {
  std::vector<fs::path> out;
  for (const char* dir : {"snapshots", "incoming"}) {
    const fs::path folder = testing::shared_traces() / dir;
    if (!fs::exists(folder)) continue;
    for (const fs::directory_entry& e : fs::directory_iterator(folder))
      if (e.path().extension() == ".pickle" || e.path().extension() == ".pkl") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Live requested bytes just before each OOM event, plus its request.
std::vector<uint64_t> demand_at_each_oom(const trace::DeviceTrace& d) {
  std::vector<uint64_t> live(d.block_count, 0), out;
  uint64_t requested = 0;
  for (const trace::BlockInfo& b : d.live_at_start) {
    live[b.id] = b.requested;
    requested += b.requested;
  }
  for (const trace::Event& e : d.events) {
    if (e.action == trace::Action::kAlloc) {
      live[e.id] = e.size;
      requested += e.size;
    } else if (e.action == trace::Action::kFree) {
      requested -= live[e.id];
      live[e.id] = 0;
    } else if (e.action == trace::Action::kOom) {
      out.push_back(requested + e.size);
    }
  }
  return out;
}

TEST(RecordedOom, EveryPolicyMakesTheFailedRequestAgainAndItsLeastCapacityServesIt) {
  ASSERT_TRUE(fs::exists(testing::shared_traces())) << "../shared/traces must be beside the repository";
  size_t checked = 0;
  for (const fs::path& file : shared_snapshots()) {
    const trace::Trace t = trace::read_trace_file(file.string());
    for (const trace::DeviceTrace& d : t.devices) {
      std::vector<uint64_t> oom_events;
      for (uint64_t i = 0; i < d.events.size(); ++i)
        if (d.events[i].action == trace::Action::kOom) oom_events.push_back(i);
      if (oom_events.empty()) continue;
      const std::vector<uint64_t> demand = demand_at_each_oom(d);
      for (const PolicyDescription& p : policy_catalog()) {
        SCOPED_TRACE(file.filename().string() + " device " + std::to_string(d.device) + " policy " +
                     std::string(p.name));
        ReplayOptions o;
        o.config.policy = std::string(p.name);
        o.device = d.device;
        o.capacity = recorded_capacity(t, d);
        ASSERT_TRUE(o.capacity.has_value()) << "a recorded OOM tells the device's capacity";
        as_recorded(t, o);
        const ReplayResult r = replay(t, o);
        ASSERT_EQ(r.failed_requests.size(), oom_events.size());
        for (size_t k = 0; k < oom_events.size(); ++k) {
          const FailedRequest& f = r.failed_requests[k];
          EXPECT_EQ(f.event, oom_events[k]);
          EXPECT_EQ(f.size, d.events[oom_events[k]].size);
          if (f.served) continue;
          bool reported = false;
          for (const OomRecord& oom : r.ooms) reported = reported || (oom.event == f.event && oom.recorded_failure);
          EXPECT_TRUE(reported) << "a failed request not served is an OOM of the replay, at its event";
        }
        const uint64_t least = min_capacity(t, o).value();
        for (uint64_t need : demand) EXPECT_GE(least, need);
        EXPECT_GE(least, trace::figures_of(d).peak_demand);
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, policy_catalog().size()) << "no shared snapshot with a recorded OOM was checked";
}

}  // namespace
}  // namespace hbmalloc::replay
