// End-to-end tests of `hbmalloc replay` / `hbmalloc info`: the figures of
// every shared snapshot to the byte, and a one-line error with exit code 2
// for every kind of bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "support/cli_run.h"
#include "support/scratch.h"

namespace {

namespace fs = std::filesystem;

using Result = hbmalloc::testing::CliResult;
using hbmalloc::testing::expect_bad_input;

Result run(const std::string& args) { return hbmalloc::testing::run_cli(args); }

fs::path shared() { return hbmalloc::testing::shared_traces(); }

fs::path scratch() {
  static const fs::path dir = hbmalloc::testing::scratch_dir("replay_cli");
  return dir;
}

fs::path temp_file(const std::string& name, const std::string& bytes) {
  fs::path p = scratch() / name;
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

struct Row {
  std::string file;
  uint64_t events, segment_events, peak_requested, native_peak_reserved;
};

// The rows of a shared traces README table: file, events, segment events,
// [OOMs,] peak requested, native peak reserved. `section` limits the rows to
// those under a "## " heading holding it (empty: the whole file).
std::vector<Row> readme_rows(const fs::path& readme, const std::string& section, bool ooms_column) {
  std::ifstream f(readme);
  std::string line;
  std::vector<Row> rows;
  std::regex row(ooms_column ? R"(^\| ([^ |]+\.(?:pickle|pkl)) \| (\d+) \| (\d+) \| \d+ \| (\d+) \| (\d+) \|)"
                             : R"(^\| ([^ |]+\.(?:pickle|pkl)) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|)");
  bool in_section = section.empty();
  while (std::getline(f, line)) {
    if (!section.empty() && line.rfind("## ", 0) == 0) in_section = line.find(section) != std::string::npos;
    std::smatch m;
    if (in_section && std::regex_search(line, m, row))
      rows.push_back({m[1], std::stoull(m[2]), std::stoull(m[3]), std::stoull(m[4]), std::stoull(m[5])});
  }
  return rows;
}

// A replay's JSON against its README row: the trace's own figures to the
// byte, no OOM, and reserved never below requested.
void expect_readme_figures(const nlohmann::json& j, const Row& row) {
  EXPECT_EQ(j["events"].get<uint64_t>(), row.events);
  EXPECT_EQ(j["native"]["segment_events"].get<uint64_t>(), row.segment_events);
  EXPECT_EQ(j["peak_requested"].get<uint64_t>(), row.peak_requested);
  EXPECT_EQ(j["native"]["peak_reserved"].get<uint64_t>(), row.native_peak_reserved);
  EXPECT_EQ(j["oom_count"].get<uint64_t>(), 0u);
  EXPECT_GE(j["peak_reserved"].get<uint64_t>(), row.peak_requested);
}

TEST(ReplayCli, ReproducesEverySharedSnapshotToTheByte) {
  ASSERT_TRUE(fs::exists(shared())) << "../shared/traces must be beside the repository: no " << shared();
  std::vector<Row> rows = readme_rows(shared() / "README.md", "snapshots/", false);
  ASSERT_GE(rows.size(), 30u) << "README table not found";
  for (const Row& row : rows) {
    SCOPED_TRACE(row.file);
    Result r = run("replay " + (shared() / "snapshots" / row.file).string() + " --json");
    ASSERT_EQ(r.code, 0) << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out);
    expect_readme_figures(j, row);
    for (const char* key : {"peak_allocated", "peak_reserved", "efficiency", "events_per_second"})
      EXPECT_TRUE(j.contains(key)) << key;
  }
}

// The newer real snapshots, folded in: every one with a history replays to
// the README's figures (state-only ones, 0 or 1 event, are refused as such).
TEST(ReplayCli, ReproducesEveryIncomingSnapshotToTheByte) {
  ASSERT_TRUE(fs::exists(shared())) << "../shared/traces must be beside the repository: no " << shared();
  std::vector<Row> rows = readme_rows(shared() / "incoming" / "README.md", "", true);
  ASSERT_GE(rows.size(), 30u) << "incoming README table not found";
  size_t replayed = 0;
  for (const Row& row : rows) {
    SCOPED_TRACE(row.file);
    Result r = run("replay " + (shared() / "incoming" / row.file).string() + " --json");
    if (row.events <= 1) {
      expect_bad_input(r, row.file);
      continue;
    }
    ASSERT_EQ(r.code, 0) << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out);
    expect_readme_figures(j, row);
    ++replayed;
  }
  EXPECT_GE(replayed, 30u);
}

// A trace that records no segment events has nothing to compare a cca replay
// with: its fidelity is null and "not measurable", never 0.
TEST(ReplayCli, FidelityWithoutRecordedSegmentEventsIsNotMeasurable) {
  const std::string example = std::string(HBMALLOC_SOURCE_DIR) + "/examples/gpt_train.hbt";
  Result r = run("replay " + example + " --json --policy cca");
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_TRUE(j.contains("fidelity"));
  EXPECT_TRUE(j["fidelity"].is_null()) << j["fidelity"];
  Result text = run("replay " + example + " --policy cca");
  EXPECT_NE(text.out.find("not measurable"), std::string::npos) << text.out;
  // One with segment events still has its figure.
  const std::string snapshot = (shared() / "snapshots" / "wedsonlin_medium_512_training.pickle").string();
  nlohmann::json k = nlohmann::json::parse(run("replay " + snapshot + " --json --policy cca").out);
  EXPECT_DOUBLE_EQ(k["fidelity"]["matched_fraction"].get<double>(), 1.0);
}

TEST(ReplayCli, MinCapacityFitsAndAnOomIsAResult) {
  ASSERT_TRUE(fs::exists(shared())) << "../shared/traces must be beside the repository: no " << shared();
  std::string file = (shared() / "snapshots" / "silmont_memory_forward_fp32_128.pickle").string();
  Result r = run("replay " + file + " --json --min-capacity");
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  uint64_t min_cap = j["min_capacity"].get<uint64_t>();
  EXPECT_EQ(min_cap % (2u << 20), 0u);
  EXPECT_GE(min_cap, j["peak_requested"].get<uint64_t>());
  EXPECT_LE(min_cap, j["peak_reserved"].get<uint64_t>() + (2u << 20));

  Result fits = run("replay " + file + " --json --capacity " + std::to_string(min_cap));
  EXPECT_EQ(nlohmann::json::parse(fits.out)["oom_count"].get<uint64_t>(), 0u);
  Result short_run = run("replay " + file + " --capacity " + std::to_string(min_cap - (2u << 20)));
  EXPECT_EQ(short_run.code, 0) << "an OOM is a result, not a failure";
  EXPECT_NE(short_run.out.find("OOM"), std::string::npos) << short_run.out;
}

TEST(ReplayCli, OtherDevicesAndNativeOoms) {
  ASSERT_TRUE(fs::exists(shared())) << "../shared/traces must be beside the repository: no " << shared();
  std::string file = (shared() / "snapshots" / "codelocation_memory_snapshot.pickle").string();
  Result r = run("replay " + file + " --json --device 1");
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["device"].get<int>(), 1);
  EXPECT_EQ(j["native"]["ooms"].get<uint64_t>(), 1u);
  expect_bad_input(run("replay " + file + " --device 9"), "no device 9");
}

// The job died asking for 4.94 GiB with 78.29 GiB live on a 78.51 GiB device:
// no policy serves that, and none may say the trace fits.
TEST(ReplayCli, ARecordedOomThatNoAllocatorAvoidsFailsUnderEveryPolicy) {
  ASSERT_TRUE(fs::exists(shared())) << "../shared/traces must be beside the repository: no " << shared();
  const std::string file = (shared() / "snapshots" / "codelocation_memory_snapshot.pickle").string();
  const uint64_t at_least = uint64_t(83.2 * double(1ull << 30));
  for (const char* policy : {"hbm", "cca"}) {
    SCOPED_TRACE(policy);
    Result r = run("replay " + file + " --device 1 --capacity 84299579392 --min-capacity --json --policy " + policy);
    ASSERT_EQ(r.code, 0) << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out);
    EXPECT_GE(j["oom_count"].get<uint64_t>(), 1u);
    ASSERT_EQ(j["failed_requests"].size(), 1u);
    EXPECT_FALSE(j["failed_requests"][0]["served"].get<bool>());
    EXPECT_EQ(j["failed_requests"][0]["size"].get<uint64_t>(), j["report"]["failed_requests"][0]["size"].get<uint64_t>());
    EXPECT_GE(j["min_capacity"].get<uint64_t>(), at_least);

    Result text = run("replay " + file + " --device 1 --capacity 84299579392 --policy " + policy);
    EXPECT_EQ(text.out.find("no OOM"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("failed here too"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("which the recording failed too"), std::string::npos) << text.out;
  }

  // Unlimited, the request is served, said so, and let go at once.
  Result unlimited = run("replay " + file + " --device 1");
  ASSERT_EQ(unlimited.code, 0) << unlimited.err;
  EXPECT_NE(unlimited.out.find("served here; the recording failed it"), std::string::npos) << unlimited.out;

  Result tune = run("tune " + file + " --device 1 --policy hbm --json");
  ASSERT_EQ(tune.code, 0) << tune.err;
  nlohmann::json t = nlohmann::json::parse(tune.out);
  ASSERT_FALSE(t["points"].empty());
  for (const nlohmann::json& point : t["points"]) {
    SCOPED_TRACE(point["settings"].get<std::string>());
    EXPECT_FALSE(point["fits"].get<bool>());
    EXPECT_GE(point["min_capacity"].get<uint64_t>(), at_least);
  }
  EXPECT_TRUE(t["recommendation"].is_null());
}

TEST(ReplayCli, BadInputIsOneLineAndExitCodeTwo) {
  ASSERT_TRUE(fs::exists(shared())) << "../shared/traces must be beside the repository: no " << shared();
  std::string whole = hbmalloc::testing::slurp(shared() / "snapshots" / "eornn_snapshot.pickle");
  fs::path truncated = temp_file("truncated.pickle", whole.substr(0, whole.size() / 2));
  expect_bad_input(run("replay " + truncated.string()), truncated.string());

  const std::string noise = hbmalloc::testing::noise_bytes(4096);
  fs::path random = temp_file("random.bin", noise);
  expect_bad_input(run("replay " + random.string()), random.string());

  // pickle.dumps of os.system's reduce: GLOBAL 'os system', then REDUCE.
  static const char kHostile[] = "\x80\x02" "cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.";
  fs::path hostile = temp_file("hostile.pickle", std::string(kHostile, sizeof kHostile - 1));
  Result h = run("replay " + hostile.string());
  expect_bad_input(h, hostile.string());
  EXPECT_NE(h.err.find("GLOBAL"), std::string::npos) << h.err;

  fs::path not_snapshot = shared() / "static" / "not_a_snapshot_mygpt_memory.pickle";
  expect_bad_input(run("replay " + not_snapshot.string()), "not a PyTorch memory snapshot");
  expect_bad_input(run("replay " + (shared() / "static" / "empty_hitsbe_my_snapshot.pickle").string()), "nothing to replay");
  expect_bad_input(run("replay " + (shared() / "static" / "verl_mem.pickle").string()), "static snapshot");

  fs::path unknown = temp_file("unknown.txt", "hello, this is not a trace\n");
  expect_bad_input(run("replay " + unknown.string()), "unknown trace format");
  fs::path empty = temp_file("empty.hbt", "");
  expect_bad_input(run("replay " + empty.string()), empty.string());
  expect_bad_input(run("replay /nonexistent/trace.pickle"), "/nonexistent/trace.pickle");
  expect_bad_input(run("info " + random.string()), random.string());
}

TEST(ReplayCli, UsageErrors) {
  expect_bad_input(run("replay"), "exactly one TRACE");
  expect_bad_input(run("replay a b"), "exactly one TRACE");
  expect_bad_input(run("replay x --capacity lots"), "--capacity");
  expect_bad_input(run("replay x --device -1"), "--device");
  expect_bad_input(run("replay x --frobnicate"), "--frobnicate");
}

TEST(InfoCli, DescribesASnapshot) {
  ASSERT_TRUE(fs::exists(shared())) << "../shared/traces must be beside the repository: no " << shared();
  Result r = run("info " + (shared() / "snapshots" / "codelocation_memory_snapshot.pickle").string() + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "pytorch-snapshot");
  EXPECT_GE(j["devices"].size(), 3u);
  EXPECT_EQ(j["devices"][0]["events"].get<uint64_t>(), 6445u);
  EXPECT_EQ(j["devices"][0]["peak_requested"].get<uint64_t>(), 8456473388u);
  bool has_conf = false;
  for (const auto& kv : j["settings"]) has_conf |= kv[0] == "PYTORCH_CUDA_ALLOC_CONF";
  EXPECT_TRUE(has_conf);
  Result text = run("info " + (shared() / "snapshots" / "codelocation_memory_snapshot.pickle").string());
  EXPECT_NE(text.out.find("segment_map"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("request sizes"), std::string::npos) << text.out;
}

}  // namespace

namespace {

TEST(ReportCli, ReplayHtmlAndSavedJsonRenderTheSameReport) {
  fs::path example = fs::path(HBMALLOC_SOURCE_DIR) / "examples" / "gpt_train.hbt";
  fs::path html = scratch() / "report.html";
  Result r = run("replay " + example.string() + " --capacity 13GiB --min-capacity --html " + html.string());
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("Out of memory"), std::string::npos);
  EXPECT_NE(r.out.find("What to do"), std::string::npos);
  std::string page = hbmalloc::testing::slurp(html);
  EXPECT_NE(page.find("<svg"), std::string::npos);
  EXPECT_EQ(page.find("src=\"http"), std::string::npos);

  Result j = run("replay " + example.string() + " --capacity 13GiB --json");
  ASSERT_EQ(j.code, 0) << j.err;
  fs::path saved = temp_file("saved_replay.json", j.out);
  Result again = run("report " + saved.string());
  ASSERT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("Out of memory (2)"), std::string::npos) << again.out;
  // A saved replay reads as the replay printed it, timings apart.
  Result text = run("replay " + example.string() + " --capacity 13GiB");
  ASSERT_EQ(text.code, 0) << text.err;
  const std::regex timing("(in [0-9.]+ ms: [0-9.]+ M events/s|replay time +[0-9.]+ [mu]?s)");
  EXPECT_EQ(std::regex_replace(again.out, timing, "T"), std::regex_replace(text.out, timing, "T"));
  Result direct = run("report " + example.string());
  ASSERT_EQ(direct.code, 0) << direct.err;
  EXPECT_NE(direct.out.find("fragmentation report"), std::string::npos);
}

TEST(ReportCli, StaticSnapshotsAndBadInput) {
  ASSERT_TRUE(fs::exists(shared())) << "../shared/traces must be beside the repository: no " << shared();
  Result r = run("report " + (shared() / "static" / "verl_mem.pickle").string() + " --json");
  ASSERT_EQ(r.code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j.is_object());
  // The picture of one moment: reserved is what info counts in the segments.
  Result info = run("info " + (shared() / "static" / "verl_mem.pickle").string() + " --json");
  ASSERT_EQ(info.code, 0) << info.err;
  nlohmann::json device = nlohmann::json::parse(info.out)["devices"][0];
  EXPECT_TRUE(j["run"]["static_snapshot"].get<bool>());
  EXPECT_EQ(j["fragmentation"]["peak_reserved"], device["segments_at_end_bytes"]);
  EXPECT_EQ(j["fragmentation"]["segments_total"], device["segments_at_end"]);
  expect_bad_input(run("report " + (shared() / "static" / "not_a_snapshot_mygpt_memory.pickle").string()),
                   "not a PyTorch memory snapshot");
  fs::path broken = temp_file("broken_report.json", "{\"hbmalloc_report\": 1, \"maps\": [");
  expect_bad_input(run("report " + broken.string()), broken.string());

  // A saved replay whose report has a field of the wrong type.
  Result saved = run("replay " + (fs::path(HBMALLOC_SOURCE_DIR) / "examples" / "gpt_train.hbt").string() + " --json");
  ASSERT_EQ(saved.code, 0) << saved.err;
  nlohmann::json bad = nlohmann::json::parse(saved.out);
  bad["report"]["fragmentation"]["peak_reserved"] = "lots";
  fs::path bad_field = temp_file("bad_field.json", bad.dump());
  Result refused = run("report " + bad_field.string());
  expect_bad_input(refused, bad_field.string());
  EXPECT_NE(refused.err.find("report.fragmentation.peak_reserved"), std::string::npos) << refused.err;
  bad = nlohmann::json::parse(saved.out);
  bad["vmm"]["create"] = -1;
  fs::path bad_count = temp_file("bad_count.json", bad.dump());
  refused = run("report " + bad_count.string());
  expect_bad_input(refused, bad_count.string());
  EXPECT_NE(refused.err.find("replay field vmm.create: expected a non-negative integer"), std::string::npos)
      << refused.err;
}

TEST(SynthCli, WritesTheExampleAndRefusesUnknownExtensions) {
  fs::path out = scratch() / "synth.jsonl";
  Result r = run("synth --steps 2 --out " + out.string());
  ASSERT_EQ(r.code, 0) << r.err;
  Result replayed = run("replay " + out.string() + " --json");
  ASSERT_EQ(replayed.code, 0) << replayed.err;
  EXPECT_GT(nlohmann::json::parse(replayed.out)["peak_requested"].get<uint64_t>(), 0u);
  expect_bad_input(run("synth --out x.csv"), "x.csv");
  expect_bad_input(run("synth --steps 0 --out x.hbt"), "--steps");
}

}  // namespace
