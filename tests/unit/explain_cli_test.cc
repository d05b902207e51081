// End-to-end tests of `hbmalloc explain`: every shared snapshot with a
// recorded OOM gets its cause, the table of replayed settings and a verdict,
// its JSON checked key by key; a fragmentation OOM gets a line to use; a
// trace with no OOM is explained at its peak; bad input exits 2.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/cli_run.h"
#include "support/scratch.h"
#include "support/slurp.h"

namespace {

namespace fs = std::filesystem;
using hbmalloc::testing::CliResult;
using hbmalloc::testing::expect_bad_input;
using hbmalloc::testing::run_cli;
using nlohmann::json;

fs::path shared() { return hbmalloc::testing::shared_traces(); }

// (file, device) of every shared snapshot whose history records an OOM.
std::vector<std::pair<fs::path, int>> snapshots_with_ooms() {
  std::vector<std::pair<fs::path, int>> out;
  for (const char* dir : {"snapshots", "incoming"})
    for (const fs::directory_entry& e : fs::directory_iterator(shared() / dir)) {
      if (e.path().extension() != ".pickle" && e.path().extension() != ".pkl") continue;
      CliResult info = run_cli("info --json " + e.path().string());
      if (info.code != 0) continue;
      const json parsed = json::parse(info.out);
      for (const json& d : parsed["devices"])
        if (d["native_ooms"].get<uint64_t>() > 0) out.emplace_back(e.path(), d["device"].get<int>());
    }
  return out;
}

TEST(ExplainCli, EverySharedOomGetsItsCauseTheTableAndAVerdict) {
  ASSERT_TRUE(fs::exists(shared())) << "../shared/traces must be beside the repository";
  const auto found = snapshots_with_ooms();
  ASSERT_FALSE(found.empty()) << "no shared snapshot records an OOM";
  for (const auto& [file, device] : found) {
    SCOPED_TRACE(file.filename().string());
    CliResult r = run_cli("explain --json " + file.string());
    ASSERT_EQ(r.code, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j["trace"].get<std::string>(), file.string());
    EXPECT_EQ(j["format"].get<std::string>(), "pytorch-snapshot");
    EXPECT_EQ(j["device"].get<int>(), device) << "the first device with an OOM";
    const uint64_t capacity = j["capacity"].get<uint64_t>();
    EXPECT_NE(j["capacity_source"].get<std::string>().find("OOM"), std::string::npos);
    ASSERT_FALSE(j["ooms"].empty());
    for (const json& o : j["ooms"]) {
      EXPECT_FALSE(o["at_peak"].get<bool>());
      EXPECT_GT(o["request"].get<uint64_t>(), 0u);
      EXPECT_GT(o["live"].get<uint64_t>(), 0u);
      EXPECT_TRUE(o["reserved"].is_number_unsigned());
      EXPECT_TRUE(o["device_free"].is_number_unsigned());
      EXPECT_EQ(o["capacity"].get<uint64_t>(), capacity);
      const std::string cause = o["cause"].get<std::string>();
      EXPECT_TRUE(cause == "capacity" || cause == "fragmentation" || cause == "limit" || cause == "other tenants")
          << cause;
      EXPECT_FALSE(o["detail"].get<std::string>().empty());
      EXPECT_TRUE(o.contains("event") && o.contains("stream"));
      // The recorded device: reserved then plus device free is the capacity.
      EXPECT_EQ(o["reserved"].get<uint64_t>() + o["device_free"].get<uint64_t>(), capacity);
      if (cause == "capacity") {
        EXPECT_GT(o["live"].get<uint64_t>() + o["request"].get<uint64_t>(), capacity);
      }
    }
    const json& rows = j["settings"];
    ASSERT_GE(rows.size(), 3u);
    EXPECT_EQ(rows.front()["setting"].get<std::string>().rfind("recorded", 0), 0u);
    EXPECT_EQ(rows.back()["setting"].get<std::string>(), "hbm's defaults");
    EXPECT_EQ(rows.back()["line"].get<std::string>(), "HBMALLOC_CONF=policy:hbm");
    uint64_t smallest = UINT64_MAX;
    bool any_fits = false;
    for (const json& row : rows) {
      for (const char* key : {"setting", "policy", "line", "fits", "peak_reserved", "min_capacity", "device_seconds"})
        EXPECT_TRUE(row.contains(key)) << key;
      EXPECT_FALSE(row.contains("error")) << row.dump();
      EXPECT_GT(row["peak_reserved"].get<uint64_t>(), 0u);
      EXPECT_GT(row["device_seconds"].get<double>(), 0.0);
      smallest = std::min(smallest, row["min_capacity"].get<uint64_t>());
      any_fits = any_fits || row["fits"].get<bool>();
      for (const json& o : j["ooms"])  // every least capacity serves the failed request
        EXPECT_GE(row["min_capacity"].get<uint64_t>(), o["live"].get<uint64_t>() + o["request"].get<uint64_t>());
    }
    EXPECT_EQ(j["smallest_device"].get<uint64_t>(), smallest);
    if (any_fits) {
      EXPECT_TRUE(j["use"].is_string());
      EXPECT_EQ(j["verdict"].get<std::string>(), "use: " + j["use"].get<std::string>());
    } else {
      EXPECT_TRUE(j["use"].is_null());
      EXPECT_GT(j["bytes_to_free"].get<uint64_t>(), 0u);
      EXPECT_NE(j["verdict"].get<std::string>().find("nothing fits"), std::string::npos);
    }

    CliResult text = run_cli("explain " + file.string());
    ASSERT_EQ(text.code, 0) << text.err;
    EXPECT_NE(text.out.find("cause: "), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("min capacity"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find(j["verdict"].get<std::string>()), std::string::npos) << text.out;
  }
}

// The capacity OOM of codelocation device 1: no setting helps, the verdict says how much must go.
TEST(ExplainCli, ACapacityOomSaysNoAllocatorHelps) {
  const fs::path dir = hbmalloc::testing::scratch_dir("explain");
  const fs::path file = shared() / "snapshots" / "codelocation_memory_snapshot.pickle";
  const fs::path html = dir / "explain.html";
  CliResult r = run_cli("explain --json --html " + html.string() + " " + file.string());
  ASSERT_EQ(r.code, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j["ooms"][0]["cause"].get<std::string>(), "capacity");
  EXPECT_EQ(j["ooms"][0]["request"].get<uint64_t>(), 5308694528u);
  EXPECT_TRUE(j["use"].is_null());
  const uint64_t need = j["ooms"][0]["live"].get<uint64_t>() + j["ooms"][0]["request"].get<uint64_t>();
  EXPECT_EQ(j["bytes_to_free"].get<uint64_t>(), need - j["capacity"].get<uint64_t>());
  EXPECT_GE(j["smallest_device"].get<uint64_t>(), need);
  const std::string page = hbmalloc::testing::slurp(html);
  EXPECT_NE(page.find("What to do about this OOM"), std::string::npos);
  EXPECT_NE(page.find("nothing fits"), std::string::npos);

  // replay's page carries the same verdict in its "What to do".
  const fs::path replay_html = dir / "replay.html";
  CliResult replay = run_cli("replay --device 1 --html " + replay_html.string() + " " + file.string());
  ASSERT_EQ(replay.code, 0) << replay.err;
  const std::string replay_page = hbmalloc::testing::slurp(replay_html);
  EXPECT_NE(replay_page.find("hbmalloc explain"), std::string::npos);
  EXPECT_NE(replay_page.find(j["verdict"].get<std::string>()), std::string::npos);
}

// README shows explain's text on that snapshot: it must be what explain prints
// today (its hbm row had drifted from the output once, unnoticed).
TEST(ExplainCli, TheReadmeExampleIsWhatExplainPrints) {
  const std::string readme = hbmalloc::testing::slurp(fs::path(HBMALLOC_SOURCE_DIR) / "README.md");
  const std::string head = "hbmalloc explain: codelocation_memory_snapshot.pickle";
  const size_t start = readme.find(head);
  ASSERT_NE(start, std::string::npos) << "README's explain example is gone";
  const std::string shown = readme.substr(start, readme.find("```", start) - start);
  const fs::path file = shared() / "snapshots" / "codelocation_memory_snapshot.pickle";
  CliResult r = run_cli("explain " + file.string());
  ASSERT_EQ(r.code, 0) << r.err;
  std::string printed = r.out;
  const size_t path = printed.find(file.string());
  ASSERT_NE(path, std::string::npos);
  printed.replace(path, file.string().size(), file.filename().string());  // README names the file alone
  EXPECT_EQ(shown, printed);
}

TEST(ExplainCli, AFragmentationOomGetsALineAndNoOomIsExplainedAtThePeak) {
  const fs::path dir = hbmalloc::testing::scratch_dir("explain_frag");
  const fs::path trace = dir / "frag.jsonl";
  std::ofstream(trace) << R"({"hbmalloc_trace": 1, "capacity": 104857600, "history": true}
{"action": "alloc", "id": 1, "size": 8388608}
{"action": "alloc", "id": 2, "size": 8388608}
{"action": "alloc", "id": 3, "size": 8388608}
{"action": "alloc", "id": 4, "size": 8388608}
{"action": "alloc", "id": 5, "size": 8388608}
{"action": "free_completed", "id": 2}
{"action": "free_completed", "id": 4}
{"action": "oom", "size": 31457280}
{"action": "free_completed", "id": 1}
{"action": "free_completed", "id": 3}
{"action": "free_completed", "id": 5}
)";
  CliResult r = run_cli("explain --json " + trace.string());
  ASSERT_EQ(r.code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["capacity"].get<uint64_t>(), 104857600u);
  EXPECT_EQ(j["ooms"][0]["cause"].get<std::string>(), "fragmentation");
  EXPECT_EQ(j["ooms"][0]["live"].get<uint64_t>(), 24u << 20);
  ASSERT_TRUE(j["use"].is_string());
  EXPECT_EQ(j["use"].get<std::string>().rfind("PYTORCH_CUDA_ALLOC_CONF=", 0), 0u) << "staying on PyTorch's allocator first";

  CliResult peak = run_cli("explain " + (shared() / "snapshots" / "silmont_memory_forward_fp32_128.pickle").string());
  ASSERT_EQ(peak.code, 0) << peak.err;
  EXPECT_NE(peak.out.find("No OOM recorded: explained at the peak"), std::string::npos) << peak.out;
  CliResult peak_json = run_cli("explain --json " + (shared() / "snapshots" / "silmont_memory_forward_fp32_128.pickle").string());
  j = json::parse(peak_json.out);
  EXPECT_TRUE(j["ooms"][0]["at_peak"].get<bool>());
  EXPECT_EQ(j["ooms"][0]["cause"].get<std::string>(), "none");
}

// A job that catches each OOM and tries again records hundreds: explain and
// replay write the first kOomsListed (16) out and sum the rest in a line;
// --json keeps every one. With no device size told, the cause is unknown.
TEST(ExplainCli, AJobRetryingAfterEachOomIsSummedPastTheFirst) {
  const fs::path dir = hbmalloc::testing::scratch_dir("explain_retries");
  const fs::path trace = dir / "retries.jsonl";
  {
    std::ofstream f(trace);
    f << R"({"hbmalloc_trace": 1, "history": true})" << "\n";
    for (int i = 1; i <= 300; ++i)
      f << R"({"action": "alloc", "id": )" << i << R"(, "size": 4194304})" << "\n"
        << R"({"action": "oom", "size": )" << (uint64_t(1) << 40) + i << "}\n"
        << R"({"action": "free_completed", "id": )" << i << "}\n";
  }
  CliResult text = run_cli("explain " + trace.string());
  ASSERT_EQ(text.code, 0) << text.err;
  EXPECT_NE(text.out.find("OOM 16 at event"), std::string::npos);
  EXPECT_EQ(text.out.find("OOM 17 at event"), std::string::npos);
  EXPECT_NE(text.out.find("cause: unknown"), std::string::npos) << text.out.substr(0, 600);
  EXPECT_NE(text.out.find("... and 284 more, events 49 to 898: unknown 284; requests of 1.00 TiB (--json lists every one)"),
            std::string::npos)
      << text.out;
  CliResult j = run_cli("explain --json " + trace.string());
  ASSERT_EQ(j.code, 0) << j.err;
  EXPECT_EQ(json::parse(j.out)["ooms"].size(), 300u);

  CliResult replay = run_cli("replay " + trace.string());
  ASSERT_EQ(replay.code, 0) << replay.err;
  EXPECT_NE(replay.out.find("... and 284 more served here: see \"Requests the recording failed\" below"),
            std::string::npos);
  EXPECT_NE(replay.out.find("  ... and 284 more, events 49 to 898: served here 284; requests of 1.00 TiB"),
            std::string::npos);
  EXPECT_LT(std::count(replay.out.begin(), replay.out.end(), '\n'), 300);
  CliResult replay_json = run_cli("replay --json " + trace.string());
  ASSERT_EQ(replay_json.code, 0) << replay_json.err;
  EXPECT_EQ(json::parse(replay_json.out)["failed_requests"].size(), 300u);
}

TEST(ExplainCli, BadInputIsOneLineAndExitCodeTwo) {
  expect_bad_input(run_cli("explain /no/such/trace.pickle"), "/no/such/trace.pickle");
  const fs::path stat = shared() / "static" / "docubox_dump_snapshot.pickle";
  expect_bad_input(run_cli("explain " + stat.string()), stat.string());
  expect_bad_input(run_cli("explain x.pickle --capacity lots"), "--capacity");
  expect_bad_input(run_cli("explain"), "TRACE");
}

}  // namespace
