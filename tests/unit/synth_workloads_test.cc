// The synthetic workloads (hbmalloc synth --workload): each deterministic per
// seed, a consistent trace every policy replays without an OOM on an
// unlimited device, and showing what its family is for.
#include "synth/workloads.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "replay/replay.h"
#include "support/cli_run.h"
#include "support/scratch.h"
#include "trace/read_trace.h"

namespace hbmalloc::synth {
namespace {

using trace::Action;

trace::Trace make(std::string_view name, uint64_t seed = 1) {
  const Workload* w = find_workload(name);
  EXPECT_NE(w, nullptr) << name;
  return w->make(WorkloadOptions{seed, 0});
}

// Requested sizes of the alloc events, in order.
std::vector<uint64_t> alloc_sizes(const trace::Trace& t) {
  std::vector<uint64_t> out;
  for (const trace::Event& e : t.devices.at(0).events)
    if (e.action == Action::kAlloc) out.push_back(e.size);
  return out;
}

TEST(SynthWorkloads, EachIsDeterministicPerSeedAndReplaysUnderEveryPolicy) {
  ASSERT_EQ(workloads().size(), 8u);
  for (const Workload& w : workloads()) {
    SCOPED_TRACE(std::string(w.name));
    const trace::Trace a = make(w.name), b = make(w.name), other = make(w.name, 2);
    EXPECT_EQ(alloc_sizes(a), alloc_sizes(b));
    EXPECT_NE(alloc_sizes(a), alloc_sizes(other));
    EXPECT_EQ(a.settings.front(), (std::pair<std::string, std::string>{"workload", std::string(w.name)}));
    const trace::TraceFigures f = trace::figures_of(a.devices.at(0));
    EXPECT_GT(f.allocs, 1000u);
    EXPECT_GT(f.peak_requested, uint64_t(4) << 30) << "large enough to fragment a real GPU";
    EXPECT_GT(f.last_time_us, f.first_time_us) << "a clock that advances";
    for (const char* conf : {"policy:hbm", "policy:hbm,vmm:off", "policy:cca", "policy:cca,expandable_segments:True"}) {
      replay::ReplayOptions o;
      o.config = Config::parse(std::string(conf) + ",backend:sim");
      const replay::ReplayResult r = replay::replay(a, o);
      EXPECT_TRUE(r.ooms.empty()) << conf;
      EXPECT_EQ(r.peak_requested, f.peak_requested) << conf;
    }
  }
}

TEST(SynthWorkloads, EachShowsWhatItsFamilyIsFor) {
  // The CNN: multi-GB activations whose sizes change from step to step.
  std::set<uint64_t> big;
  for (uint64_t s : alloc_sizes(make("cnn-resolution")))
    if (s >= (uint64_t(1) << 30)) big.insert(s);
  EXPECT_GE(big.size(), 3u);
  // The pipeline: 8 or more streams, and frees completed well after the request (record_stream).
  std::set<uint64_t> streams;
  size_t late = 0;
  const trace::Trace p = make("pipeline");
  const auto& ev = p.devices.at(0).events;
  for (size_t i = 0; i < ev.size(); ++i) {
    if (ev[i].action == Action::kAlloc) streams.insert(ev[i].stream);
    if (ev[i].action == Action::kFreeRequested && i + 1 < ev.size() &&
        !(ev[i + 1].action == Action::kFree && ev[i + 1].id == ev[i].id))
      ++late;
  }
  EXPECT_GE(streams.size(), 8u);
  EXPECT_GT(late, 50u);
  // Serving: caches grow (a larger block of a request's cache replaces a smaller one).
  const std::vector<uint64_t> kv = alloc_sizes(make("kv-serving"));
  EXPECT_GT(std::set<uint64_t>(kv.begin(), kv.end()).size(), 50u);
  // Mixture of experts: the experts' buffers rarely repeat a size.
  const std::vector<uint64_t> moe = alloc_sizes(make("moe"));
  EXPECT_GT(std::set<uint64_t>(moe.begin(), moe.end()).size(), 100u);
}

// Each micro-batch of the pipeline runs on a stream of its own, and the
// streams take turns: PyTorch's allocator (per-stream caches) reserves each
// stream's peak, while hbm's streams take each other's settled free blocks.
TEST(SynthWorkloads, ThePipelinesStreamsShareFreeMemoryUnderHbm) {
  const trace::Trace p = make("pipeline");
  auto efficiency = [&](const char* conf) {
    replay::ReplayOptions o;
    o.config = Config::parse(std::string(conf) + ",backend:sim");
    return replay::replay(p, o).efficiency;
  };
  EXPECT_GT(efficiency("policy:hbm"), 0.99);  // 0.950 when each stream kept its own arena, by remapping
  EXPECT_GT(efficiency("policy:hbm,remap:never"), 0.99);
  EXPECT_GT(efficiency("policy:hbm,vmm:off"), 0.70);  // 0.385 with per-stream segments
  EXPECT_LT(efficiency("policy:cca,expandable_segments:True"), 0.6);
}

TEST(SynthWorkloads, TheCommandWritesEachAndRefusesWhatItCannotDo) {
  const auto dir = hbmalloc::testing::scratch_dir("synth_cli");
  const std::string out = (dir / "moe.hbt").string();
  const hbmalloc::testing::CliResult ok = hbmalloc::testing::run_cli("synth --workload moe --seed 3 --steps 2 --out " + out);
  ASSERT_EQ(ok.code, 0) << ok.err;
  EXPECT_NE(ok.out.find("moe"), std::string::npos) << ok.out;
  const trace::Trace written = trace::read_trace_file(out);
  EXPECT_EQ(alloc_sizes(written), alloc_sizes(mixture_of_experts(WorkloadOptions{3, 2})));
  const hbmalloc::testing::CliResult unknown = hbmalloc::testing::run_cli("synth --workload bert --out " + out);
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("unknown --workload 'bert' (one of gpt, checkpointing"), std::string::npos) << unknown.err;
  const hbmalloc::testing::CliResult shaped = hbmalloc::testing::run_cli("synth --workload moe --layers 4 --out " + out);
  EXPECT_EQ(shaped.code, 2);
  EXPECT_NE(shaped.err.find("--layers and --batch shape the gpt workload only"), std::string::npos) << shaped.err;
}

}  // namespace
}  // namespace hbmalloc::synth
