// End-to-end tests of `hbmalloc diff`: two shared snapshots of one job at two
// context lengths, key by key against each one's own report; one trace under
// two policies; the page; bad usage.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "support/cli_run.h"
#include "support/scratch.h"
#include "support/slurp.h"

namespace {

namespace fs = std::filesystem;
using hbmalloc::testing::run_cli;
using nlohmann::json;

std::string snapshot(const std::string& name) { return (hbmalloc::testing::shared_traces() / "snapshots" / name).string(); }

json run_json(const std::string& args) {
  const auto r = run_cli(args);
  EXPECT_EQ(r.code, 0) << args << ": " << r.err;
  return json::parse(r.out);
}

// A report's JSON without what a second run times differently.
json timeless(json report) {
  report["run"].erase("replay_seconds");
  return report;
}

void expect_side(const json& diff, const char* side, const json& report) {
  const std::string s = side;
  const json& frag = report["fragmentation"];
  EXPECT_EQ(diff["peaks"]["peak requested"][s], frag["peak_requested"]) << side;
  EXPECT_EQ(diff["peaks"]["peak allocated"][s], frag["peak_allocated"]) << side;
  EXPECT_EQ(diff["peaks"]["peak reserved"][s], frag["peak_reserved"]) << side;
  EXPECT_EQ(diff["peaks"]["efficiency"][s], frag["efficiency"]) << side;
  EXPECT_EQ(diff["peaks"]["OOMs"][s], report["ooms"].size()) << side;
  EXPECT_EQ(diff["peaks"]["segments at peak"][s], frag["moments"][0]["segments"]) << side;
  EXPECT_EQ(diff["peaks"]["cached free at peak"][s], frag["moments"][0]["cached_free"]) << side;
  EXPECT_EQ(timeless(diff["report_" + s]), timeless(report)) << side;
  // Every site of the peak, so they add up to its live bytes.
  uint64_t sum = 0;
  for (const json& site : diff["sites"]) sum += site[s].get<uint64_t>();
  EXPECT_EQ(sum, report["sites"][0]["live_bytes"].get<uint64_t>()) << side;
}

TEST(DiffCli, TwoSnapshotsOfOneJobKeyByKey) {
  const std::string a = snapshot("kkaitlyn_memory_files_memory_ctx128_forward.pickle");
  const std::string b = snapshot("kkaitlyn_memory_files_memory_ctx256_forward_.pickle");
  const json d = run_json("diff " + a + " " + b + " --json");
  EXPECT_EQ(d["format"], "hbmalloc-diff");
  EXPECT_NE(d["a"].get<std::string>().find("ctx128_forward"), std::string::npos);
  EXPECT_NE(d["b"].get<std::string>().find("ctx256_forward_"), std::string::npos);
  EXPECT_TRUE(d["has_stacks"].get<bool>());
  expect_side(d, "a", run_json("report " + a + " --json"));
  expect_side(d, "b", run_json("report " + b + " --json"));
  ASSERT_GT(d["sites"].size(), 5u);
  int64_t previous = INT64_MAX;
  for (const json& site : d["sites"]) {
    const int64_t change = site["change"].get<int64_t>();
    EXPECT_EQ(change, int64_t(site["b"].get<uint64_t>()) - int64_t(site["a"].get<uint64_t>()));
    EXPECT_LE(change, previous) << "the sites that grew most come first";
    previous = change;
  }
  EXPECT_EQ(d["sites"][0]["where"], "transformer.py:22 forward") << "a longer context grows the attention the most";
  const auto text = run_cli("diff " + a + " " + b);
  ASSERT_EQ(text.code, 0) << text.err;
  for (const char* part : {"Peaks\n-----", "Live bytes by site at each peak reserved", "Segment picture at each peak",
                           "transformer.py:22 forward"})
    EXPECT_NE(text.out.find(part), std::string::npos) << part;
}

TEST(DiffCli, OneTraceUnderTwoPoliciesAndThePage) {
  const std::string a = snapshot("bcrafton_memory_snapshot.pickle");
  const fs::path page = hbmalloc::testing::scratch_dir("diff_cli") / "diff.html";
  const json d = run_json("diff " + a + " --b-policy cca --json --html " + page.string());
  EXPECT_EQ(d["report_a"]["run"]["policy"], "hbm");
  EXPECT_EQ(d["report_b"]["run"]["policy"], "cca");
  expect_side(d, "a", run_json("report " + a + " --json"));
  expect_side(d, "b", run_json("report " + a + " --policy cca --json"));
  const std::string html = hbmalloc::testing::slurp(page);
  EXPECT_NE(html.find("<h1>hbmalloc diff</h1>"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
}

TEST(DiffCli, BadUsageIsExitCodeTwo) {
  const std::string a = snapshot("bcrafton_memory_snapshot.pickle");
  EXPECT_EQ(run_cli("diff " + a).code, 2) << "one trace and nothing to compare it under";
  EXPECT_EQ(run_cli("diff").code, 2);
  hbmalloc::testing::expect_bad_input(run_cli("diff " + a + " /nonexistent/b.pickle"), "/nonexistent/b.pickle");
  EXPECT_EQ(run_cli("diff " + a + " --b-conf nonsense_key:1").code, 2);
}

}  // namespace
