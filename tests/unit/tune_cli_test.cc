// End-to-end tests of `hbmalloc replay --policy cca` (fidelity, the trace's
// own settings and device) and `hbmalloc tune` (ranked table, a ready line
// only for a setting that was replayed and fit, --json, bad input).
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "support/cli_run.h"

namespace {

namespace fs = std::filesystem;
using hbmalloc::testing::expect_bad_input;
using hbmalloc::testing::run_cli;
using nlohmann::json;

std::string snapshot(const std::string& name) {
  const fs::path p = hbmalloc::testing::shared_traces() / "snapshots" / name;
  EXPECT_TRUE(fs::exists(p)) << p << " is missing: CI always has ../shared/traces";
  return p.string();
}

json json_of(const std::string& args) {
  auto r = run_cli(args);
  EXPECT_EQ(r.code, 0) << args << ": " << r.err;
  return json::parse(r.out, nullptr, false);
}

TEST(ReplayCcaCli, JsonCarriesFidelityAndReproducesPyTorch) {
  json j = json_of("replay " + snapshot("sqattn_cuda_memory_snapshot.pickle") + " --policy cca --json");
  ASSERT_TRUE(j.contains("fidelity")) << j.dump();
  EXPECT_EQ(j["fidelity"]["recorded"].get<uint64_t>(), 840u);
  EXPECT_EQ(j["fidelity"]["replayed"].get<uint64_t>(), 840u);
  EXPECT_GE(j["fidelity"]["matched_fraction"].get<double>(), 0.99);
  EXPECT_TRUE(j["started_from_picture"].get<bool>());
  EXPECT_EQ(j["peak_reserved"].get<uint64_t>(), j["native"]["peak_reserved"].get<uint64_t>());
  EXPECT_EQ(j["policy"], "cca");
  // hbm replays have no fidelity figure.
  json h = json_of("replay " + snapshot("sqattn_cuda_memory_snapshot.pickle") + " --json");
  EXPECT_FALSE(h.contains("fidelity"));
}

TEST(ReplayCcaCli, RunsOnTheRecordingsSettingsAndDeviceUnlessTold) {
  const std::string file = snapshot("codelocation_memory_snapshot.pickle");
  json j = json_of("replay " + file + " --policy cca --device 1 --json");
  EXPECT_EQ(j["pytorch_alloc_conf"], "expandable_segments:True") << "the snapshot's allocator_settings";
  EXPECT_EQ(j["capacity"].get<uint64_t>(), 84298432512u) << "reserved at the OOM + device free";
  EXPECT_EQ(j["oom_count"].get<uint64_t>(), 1u) << "PyTorch's own OOM, reproduced";
  EXPECT_DOUBLE_EQ(j["fidelity"]["matched_fraction"].get<double>(), 1.0);
  json off = json_of("replay " + file + " --policy cca --device 1 --conf expandable_segments:False --capacity 100GiB --json");
  EXPECT_EQ(off["pytorch_alloc_conf"], "expandable_segments:False") << "--conf overrides what the snapshot recorded";
  EXPECT_EQ(off["capacity"].get<uint64_t>(), 100ull << 30);
  EXPECT_LT(off["fidelity"]["matched_fraction"].get<double>(), 1.0) << "other settings, other segments";
  auto text = run_cli("replay " + file + " --policy cca --device 2");
  EXPECT_NE(text.out.find("fidelity"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("started from the trace's own segments"), std::string::npos) << text.out;
}

TEST(ReplayCcaCli, BadPyTorchSettingsAreOneLineErrors) {
  const std::string file = snapshot("eornn_snapshot.pickle");
  expect_bad_input(run_cli("replay " + file + " --policy cca --conf max_split_size_mb:3"), "max_split_size_mb");
  expect_bad_input(run_cli("replay " + file + " --conf max_split_size_mb:300"), "read by the cca policy only");
  expect_bad_input(run_cli("replay " + file + " --policy cca --conf roundup_power2_divisions:[256:3]"),
                   "roundup_power2_divisions");
}

TEST(TuneCli, FindsALineThatReservesLessThanTheRecordedSettings) {
  const std::string file = snapshot("kkaitlyn_memory_files_memory_ctx512_fullstep_.pickle");
  json j = json_of("tune " + file + " --grid 'expandable_segments:False|True' --json --jobs 2");
  ASSERT_EQ(j["points"].size(), 2u) << j.dump();
  EXPECT_EQ(j["capacity"].get<uint64_t>(), 62830673920u) << "the recording's peak reserved: no device size known";
  const json& best = j["best"]["cca"];
  EXPECT_EQ(best["line"], "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True");
  EXPECT_EQ(j["recommendation"], best["line"]);
  json baseline;
  for (const json& p : j["points"])
    if (p["baseline"].get<bool>()) baseline = p;
  ASSERT_FALSE(baseline.is_null());
  EXPECT_EQ(baseline["peak_reserved"].get<uint64_t>(), 62830673920u) << "the recorded settings replay as recorded";
  EXPECT_LT(best["peak_reserved"].get<uint64_t>(), baseline["peak_reserved"].get<uint64_t>());
  EXPECT_TRUE(best["fits"].get<bool>());
  EXPECT_TRUE(best.contains("min_capacity"));

  // The line, replayed on its own, gives the figure tune ranked it by.
  json again = json_of("replay " + file + " --policy cca --conf expandable_segments:True --capacity " +
                       std::to_string(j["capacity"].get<uint64_t>()) + " --json");
  EXPECT_EQ(again["peak_reserved"], best["peak_reserved"]);
  EXPECT_EQ(again["oom_count"].get<uint64_t>(), 0u);

  auto text = run_cli("tune " + file + " --grid 'expandable_segments:False|True'");
  EXPECT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("\nPYTORCH_CUDA_ALLOC_CONF=expandable_segments:True\n"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("[as recorded]"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("less than the recorded settings"), std::string::npos) << text.out;
}

TEST(TuneCli, NoLineWhenNothingFits) {
  const std::string file = snapshot("charan6924_memory_snapshot.pickle");
  json j = json_of("tune " + file + " --grid 'max_split_size_mb:unset|64' --capacity 64MiB --json");
  EXPECT_TRUE(j["recommendation"].is_null());
  EXPECT_TRUE(j["best"].empty());
  for (const json& p : j["points"]) EXPECT_FALSE(p["fits"].get<bool>());
  auto text = run_cli("tune " + file + " --grid 'max_split_size_mb:unset|64' --capacity 64MiB");
  EXPECT_EQ(text.code, 0);
  EXPECT_EQ(text.out.find("PYTORCH_CUDA_ALLOC_CONF="), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("nothing to recommend"), std::string::npos) << text.out;
}

TEST(TuneCli, BothPoliciesAndTheHbmLine) {
  const std::string file = snapshot("charan6924_memory_snapshot.pickle");
  json j = json_of("tune " + file + " --policy both --grid 'expandable_segments:False|True,segment_round:unset|1MiB' --capacity 2GiB --json");
  size_t cca = 0, hbm = 0;
  for (const json& p : j["points"]) (p["policy"] == "cca" ? cca : hbm) += 1;
  EXPECT_EQ(cca, 2u);
  EXPECT_EQ(hbm, 2u);
  ASSERT_TRUE(j["best"].contains("hbm")) << j.dump();
  EXPECT_EQ(j["best"]["hbm"]["line"].get<std::string>().rfind("HBMALLOC_CONF=policy:hbm", 0), 0u);
  EXPECT_EQ(j["best"]["cca"]["line"].get<std::string>().rfind("PYTORCH_CUDA_ALLOC_CONF=", 0), 0u);
}

TEST(TuneCli, BadInputIsOneLineAndExitCodeTwo) {
  const std::string file = snapshot("eornn_snapshot.pickle");
  expect_bad_input(run_cli("tune"), "exactly one TRACE");
  expect_bad_input(run_cli("tune " + file + " --policy xyz"), "--policy");
  expect_bad_input(run_cli("tune " + file + " --grid max_split_size_mb:5"), "max_split_size_mb");
  expect_bad_input(run_cli("tune " + file + " --grid small_size:1MiB"), "not a knob of policy cca");
  expect_bad_input(run_cli("tune " + file + " --device 7"), "no device 7");
  expect_bad_input(run_cli("tune " + file + " --jobs 0"), "--jobs");
  expect_bad_input(run_cli("tune /nonexistent.pickle"), "/nonexistent.pickle");
  const fs::path stat = hbmalloc::testing::shared_traces() / "static" / "verl_mem.pickle";
  expect_bad_input(run_cli("tune " + stat.string()), "static snapshot");
}

}  // namespace
