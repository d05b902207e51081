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

TEST(Cli, DemoBadConfNamesTheKey) {
  expect_bad_input(run_cli("demo --conf capacity:lots"), "capacity: bad value 'lots'");
  expect_bad_input(run_cli("demo --steps zero"), "--steps");
}

}  // namespace
}  // namespace hbmalloc::testing
