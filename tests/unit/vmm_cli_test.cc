// `hbmalloc replay --json` reports the VMM operations of the page-mapped large
// path, and the VMM knobs are --conf keys refused by name when bad.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "hbmalloc/stats.hpp"
#include "support/cli_run.h"
#include "support/scratch.h"

namespace {

namespace fs = std::filesystem;
using hbmalloc::testing::expect_bad_input;
using hbmalloc::testing::run_cli;

const std::string kExample = (fs::path(HBMALLOC_SOURCE_DIR) / "examples" / "gpt_train.hbt").string();

nlohmann::json replay_json(const std::string& extra) {
  hbmalloc::testing::CliResult r = run_cli("replay " + kExample + " --json " + extra);
  EXPECT_EQ(r.code, 0) << r.err;
  return nlohmann::json::parse(r.out);
}

TEST(VmmCli, ReplayJsonCountsVmmOperationsAndTheirModeledTime) {
  // Slabs of a granule each: every reserved byte is a granule.
  nlohmann::json j = replay_json("--conf remap:always,remap_budget:off,small_size:1MiB,slab_size:2MiB");
  const nlohmann::json& v = j["vmm"];
  const int64_t create = v["create"], map = v["map"], set_access = v["set_access"], unmap = v["unmap"],
                release = v["release"], peak_held = v["peak_held"];
  EXPECT_GT(create, 0);
  EXPECT_GT(unmap, 0) << "remap:always moves granules on this trace";
  EXPECT_EQ(map, create + unmap);  // every granule is mapped once per home
  EXPECT_EQ(set_access, map);
  EXPECT_EQ(peak_held * int64_t(2 << 20), j["peak_reserved"].get<int64_t>());
  hbmalloc::VmmCounts c{create, map, set_access, unmap, release, peak_held};
  EXPECT_NEAR(v["modeled_seconds"].get<double>(), c.modeled_seconds(), 1e-9);
  EXPECT_NEAR(v["overhead_seconds"].get<double>(), c.overhead_seconds(), 1e-9);
  EXPECT_GT(v["trace_seconds"].get<double>(), 0.0);
  EXPECT_NEAR(v["modeled_share"].get<double>(), c.modeled_seconds() / v["trace_seconds"].get<double>(), 1e-9);
  // Every granule came from VMM calls: no plain segment, device time is VMM time.
  EXPECT_EQ(v["segment_alloc_bytes"].get<int64_t>(), 0);
  EXPECT_NEAR(v["device_seconds"].get<double>(), c.modeled_seconds(), 1e-9);
  // Plain segments: no VMM operation at all; their device calls priced as granules.
  nlohmann::json off = replay_json("--conf vmm:off");
  EXPECT_EQ(off["vmm"]["create"].get<int64_t>(), 0);
  EXPECT_EQ(off["vmm"]["modeled_seconds"].get<double>(), 0.0);
  const int64_t taken = off["vmm"]["segment_alloc_bytes"], given = off["vmm"]["segment_free_bytes"];
  EXPECT_GE(taken, off["peak_reserved"].get<int64_t>());
  EXPECT_LE(given, taken);
  hbmalloc::Stats plain;
  plain.device_alloc_bytes = taken;
  plain.device_free_bytes = given;
  EXPECT_NEAR(off["vmm"]["device_seconds"].get<double>(), hbmalloc::modeled_device_seconds(plain), 1e-9);
  EXPECT_GT(off["vmm"]["device_seconds"].get<double>(), 0.0);
  EXPECT_LT(off["efficiency"].get<double>(), j["efficiency"].get<double>());
}

// The floor: what creating the requested peak once takes, which no policy
// that serves every request undercuts; remap:always pays it and more, plain
// segments more still.
TEST(VmmCli, ReplayJsonGivesTheDeviceTimeNoPolicyServingEveryRequestUndercuts) {
  for (const char* conf : {"", "--conf remap:always,remap_budget:off", "--conf vmm:off", "--policy cca",
                           "--policy cca --conf expandable_segments:True"}) {
    SCOPED_TRACE(conf);
    const nlohmann::json j = replay_json(conf);
    ASSERT_EQ(j["oom_count"].get<int64_t>(), 0);
    const double floor = j["vmm"]["floor_seconds"].get<double>();
    EXPECT_NEAR(floor, double(j["peak_requested"].get<int64_t>()) / double(2 << 20) * (200e-6 + 1.5e-6 + 36e-6), 1e-12);
    EXPECT_GT(floor, 0.0);
    EXPECT_LE(floor, j["vmm"]["device_seconds"].get<double>());
  }
}

// The remap budget in a replay: kept against the trace's clock, and told.
TEST(VmmCli, ReplayKeepsTheRemapBudgetAgainstTheTracesClock) {
  const nlohmann::json always = replay_json("--conf remap:always,remap_budget:0.01,remap_window:1ms")["vmm"];
  const double trace = always["trace_seconds"].get<double>();
  ASSERT_GT(trace, 0.0);
  EXPECT_LE(always["remap_seconds"].get<double>(), 0.01 * (trace + 0.001) + 1e-12);
  EXPECT_GT(always["remap_refused"].get<int64_t>(), 0) << "remap:always wants more than 1% of the trace's time";
  const nlohmann::json loose = replay_json("--conf remap:always,remap_budget:0.5,remap_window:1ms")["vmm"];
  EXPECT_GT(loose["remapped"].get<int64_t>(), always["remapped"].get<int64_t>());
  EXPECT_LE(loose["remap_seconds"].get<double>(), 0.5 * (trace + 0.001) + 1e-12);
  const nlohmann::json off = replay_json("--conf remap:always,remap_budget:off")["vmm"];
  EXPECT_EQ(off["remap_refused"].get<int64_t>(), 0);
  EXPECT_NEAR(off["remap_seconds"].get<double>(), double(off["remapped"].get<int64_t>()) * (26e-6 + 1.5e-6 + 36e-6), 1e-9);
  // The default: 1% with a minute's bucket, which this trace's settling
  // fits; none once the remapping is chosen, unless asked for.
  const nlohmann::json plain = replay_json("");
  EXPECT_NE(plain["config"].get<std::string>().find("remap_budget:0.01,remap_window:60s"), std::string::npos)
      << plain["config"];
  EXPECT_LE(plain["vmm"]["remap_seconds"].get<double>(), 0.01 * (trace + 60) + 1e-12);
  EXPECT_NE(replay_json("--conf remap:always")["config"].get<std::string>().find("remap_budget:off"), std::string::npos);
  EXPECT_NE(replay_json("--conf pressure_threshold:0.99")["config"].get<std::string>().find("remap_budget:off"),
            std::string::npos);
  const hbmalloc::testing::CliResult text =
      run_cli("replay " + kExample + " --conf remap:always,remap_budget:0.01,remap_window:1ms");
  EXPECT_NE(text.out.find("granules remapped"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("the remap budget (1% of elapsed time, a bucket of 1ms) had"), std::string::npos) << text.out;
  EXPECT_NE(run_cli("replay " + kExample + " --conf remap:always").out.find("; no remap budget"), std::string::npos);
}

// Remapping that recurs, bought out in a replay: two requests taking turns
// at a peak already reached, each where the other's pages are (as
// VmmAllocator.RemappingThatRecursIsBoughtOut), as a JSON lines trace.
TEST(VmmCli, ReplaySaysWhatRemappingThatRecurredHadCreated) {
  const fs::path trace = hbmalloc::testing::scratch_dir("vmm_cli_turns") / "turns.jsonl";
  {
    std::ofstream out(trace);
    out << R"({"hbmalloc_trace":1,"recorder":"hbmalloc","history":true})" << "\n";
    const uint64_t MiB = 1 << 20, base = uint64_t(1) << 40;
    int64_t t = 1'000'000, ids = 0;
    // A free names its block's id, as a recording does.
    auto event = [&](const char* action, uint64_t addr, uint64_t size, int64_t id) {
      out << R"({"action":")" << action << R"(","device":0,"id":)" << id << R"(,"size":)" << size
          << R"(,"addr":)" << addr << R"(,"t":)" << (t += 100) << "}\n";
    };
    auto alloc = [&](uint64_t addr, uint64_t size) {
      event("alloc", addr, size, ++ids);
      return ids;
    };
    auto free = [&](uint64_t addr, uint64_t size, int64_t id) { event("free_completed", addr, size, id); };
    alloc(base, 2 * MiB);
    const int64_t hole = alloc(base + 2 * MiB, 10 * MiB);
    alloc(base + 12 * MiB, 2 * MiB);
    free(base + 2 * MiB, 10 * MiB, hole);
    for (int step = 0; step < 20; ++step) {
      free(base + 14 * MiB, 12 * MiB, alloc(base + 14 * MiB, 12 * MiB));
      free(base + 2 * MiB, 10 * MiB, alloc(base + 2 * MiB, 10 * MiB));
    }
  }
  auto replay = [&](const std::string& conf) {
    hbmalloc::testing::CliResult r = run_cli("replay " + trace.string() + " --json" + (conf.empty() ? "" : " --conf " + conf));
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  };
  const nlohmann::json on = replay(""), off = replay("remap_overhead:off");
  EXPECT_EQ(on["vmm"]["remap_bought"].get<int64_t>(), 5);
  EXPECT_EQ(on["vmm"]["remapped"].get<int64_t>(), 45);
  EXPECT_EQ(off["vmm"]["remap_bought"].get<int64_t>(), 0);
  EXPECT_EQ(off["vmm"]["remapped"].get<int64_t>(), 200);
  EXPECT_LT(on["vmm"]["device_seconds"].get<double>(), off["vmm"]["device_seconds"].get<double>());
  EXPECT_NE(on["config"].get<std::string>().find("remap_overhead:0.05"), std::string::npos) << on["config"];
  const std::string text = run_cli("replay " + trace.string()).out;
  EXPECT_NE(text.find("; remapping that recurred (past 5% of the time creating granules took) had 5 created instead"),
            std::string::npos)
      << text;
  EXPECT_NE(run_cli("replay " + trace.string() + " --conf remap:always").out.find("remapping that recurs is not bought out"),
            std::string::npos);
}

// sim_lag: a GPU that runs behind its host. A pipeline's next stream can
// take the last one's free blocks only once the work queued before their
// free ran, and unmapping waits for it: the replay says what the instant sim
// assumed away.
TEST(VmmCli, AWorkLagShowsTheSharingAndSyncsALiveGpuWouldSee) {
  const std::string pipeline = (hbmalloc::testing::scratch_dir("vmm_cli_lag") / "pipeline.hbt").string();
  const hbmalloc::testing::CliResult made = run_cli("synth --workload pipeline --seed 1 --steps 1 --out " + pipeline);
  ASSERT_EQ(made.code, 0) << made.err;
  auto replay = [&](const std::string& extra) {
    hbmalloc::testing::CliResult r = run_cli("replay " + pipeline + " --json " + extra);
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  };
  const nlohmann::json instant = replay("");
  const nlohmann::json lagging = replay("--conf sim_lag:1ms");
  EXPECT_EQ(instant["vmm"]["device_syncs"].get<int64_t>(), 0);
  EXPECT_GT(lagging["vmm"]["device_syncs"].get<int64_t>(), 0);
  EXPECT_GT(lagging["vmm"]["remapped"].get<int64_t>(), instant["vmm"]["remapped"].get<int64_t>());
  EXPECT_LT(lagging["efficiency"].get<double>(), instant["efficiency"].get<double>() - 0.02);
  EXPECT_GT(replay_json("--conf sim_lag:1ms")["vmm"]["device_syncs"].get<int64_t>(), 0) << "the example's two streams";
  const hbmalloc::testing::CliResult text = run_cli("replay " + kExample + " --conf sim_lag:1ms");
  EXPECT_NE(text.out.find("device syncs"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("sim_lag:1000us"), std::string::npos) << "the report's settings name it";
  expect_bad_input(run_cli("replay " + kExample + " --conf sim_lag:5"), "sim_lag");
}

TEST(VmmCli, BadVmmKeysAreRefusedByName) {
  expect_bad_input(run_cli("replay " + kExample + " --conf remap:maybe"), "remap");
  expect_bad_input(run_cli("replay " + kExample + " --conf granule_size:3MiB"), "granule_size");
  expect_bad_input(run_cli("replay " + kExample + " --conf pressure_threshold:2"), "pressure_threshold");
}

}  // namespace
