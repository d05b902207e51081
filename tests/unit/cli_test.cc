// End-to-end tests of the `hbmalloc` command line: run the built binary and
// read what it prints and its exit code.
#include <gtest/gtest.h>

#include <string>

#include "support/cli_run.h"

namespace hbmalloc::testing {
namespace {

TEST(Cli, HelpListsTheCommands) {
  CliResult r = run_cli("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("demo"), std::string::npos) << r.out;
}

// Each command's --help (anywhere among its arguments) and `help COMMAND`
// print that command's part of the usage to stdout and run nothing.
TEST(Cli, CommandHelpPrintsThatCommandOnly) {
  for (const char* line : {"replay --help", "replay no_such_trace.pickle -h", "help replay"}) {
    CliResult r = run_cli(line);
    EXPECT_EQ(r.code, 0) << line << ": " << r.err;
    EXPECT_TRUE(r.err.empty()) << line << ": " << r.err;
    EXPECT_NE(r.out.find("replay TRACE [--policy hbm|cca]"), std::string::npos) << line << ": " << r.out;
    EXPECT_EQ(r.out.find("tune TRACE"), std::string::npos) << line << ": " << r.out;
  }
  CliResult tune = run_cli("tune --help");
  EXPECT_EQ(tune.code, 0);
  EXPECT_NE(tune.out.find("tune TRACE"), std::string::npos) << tune.out;
}

TEST(Cli, HelpOfAnUnknownCommandIsNamed) {
  CliResult r = run_cli("help frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err.rfind("hbmalloc help: unknown command 'frobnicate'", 0), 0u) << r.err;
}

TEST(Cli, NoArgumentsIsUsageError) {
  CliResult r = run_cli("");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("usage"), std::string::npos) << r.err;
}

// An unknown command is named, then the usage follows.
TEST(Cli, UnknownCommandIsNamed) {
  CliResult r = run_cli("frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_EQ(r.err.rfind("hbmalloc: unknown command 'frobnicate'", 0), 0u) << r.err;
}

TEST(Cli, DemoPrintsStatsAndChecksInvariants) {
  CliResult r = run_cli("demo --steps 3");
  EXPECT_EQ(r.code, 0) << r.err;
  for (const char* s : {"reserved_bytes", "allocated_bytes", "efficiency", "invariants: ok"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " in " << r.out;
}

TEST(Cli, DemoJsonHasPytorchKeys) {
  CliResult r = run_cli("demo --steps 2 --json");
  EXPECT_EQ(r.code, 0) << r.err;
  ASSERT_FALSE(r.out.empty());
  EXPECT_EQ(r.out.front(), '{');
  EXPECT_NE(r.out.find("\"reserved_bytes.all.peak\":"), std::string::npos) << r.out;
}

TEST(Cli, DemoOutOfMemoryExitsOne) {
  CliResult r = run_cli("demo --steps 2 --conf capacity:1GiB");
  const std::string all = r.out + r.err;
  EXPECT_EQ(r.code, 1) << all;
  EXPECT_NE(all.find("out of memory"), std::string::npos) << all;
  EXPECT_NE(all.find("invariants: ok"), std::string::npos) << all;
}

// The commands read settings from their options, never from HBMALLOC_CONF: an
// error names the option that gave the bad key or value.
TEST(Cli, BadSettingsNameTheOptionThatGaveThem) {
  const std::string trace = std::string(HBMALLOC_SOURCE_DIR) + "/examples/gpt_train.hbt";
  const std::pair<std::string, std::string> cases[] = {
      {"replay " + trace + " --conf foo:1", "option '--conf': unknown key 'foo'"},
      {"replay " + trace + " --conf pressure_threshold:0", "option '--conf': pressure_threshold: bad value '0'"},
      {"replay " + trace + " --policy cca --conf max_split_size_mb:1", "option '--conf': max_split_size_mb"},
      {"report " + trace + " --conf foo:1", "option '--conf': unknown key 'foo'"},
      {"diff " + trace + " --b-conf foo:1", "option '--b-conf': unknown key 'foo'"},
      {"demo --conf capacity:lots", "option '--conf': capacity: bad value 'lots'"},
      {"tune " + trace + " --grid foo:1", "option '--grid': foo: not a knob"},
      {"tune " + trace + " --policy hbm --grid remap:sometimes", "option '--grid': remap: bad value 'sometimes'"},
  };
  for (const auto& [line, names] : cases) {
    SCOPED_TRACE(line);
    CliResult r = run_cli(line);
    expect_bad_input(r, names);
    EXPECT_EQ(r.err.find("HBMALLOC_CONF"), std::string::npos) << r.err;
  }
}

TEST(Cli, ACapacityOfNothingIsRefused) {
  const std::string trace = std::string(HBMALLOC_SOURCE_DIR) + "/examples/gpt_train.hbt";
  for (const char* command : {"replay", "tune", "explain"})
    expect_bad_input(run_cli(std::string(command) + " " + trace + " --capacity 0"),
                     "option '--capacity' wants a size above 0 (leave it out for an unlimited device)");
  expect_bad_input(run_cli("replay " + trace + " --capacity 0GiB"), "above 0");
}

TEST(Cli, DemoBadConfNamesTheKey) {
  expect_bad_input(run_cli("demo --conf capacity:lots"), "capacity: bad value 'lots'");
  expect_bad_input(run_cli("demo --steps zero"), "--steps");
}

}  // namespace
}  // namespace hbmalloc::testing
