// End-to-end tests of the `hbmalloc` command line: run the built binary and
// read what it prints and its exit code.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace {

struct Result {
  int code;
  std::string out;
};

Result RunCli(const std::string& args) {
  std::string cmd = std::string(HBMALLOC_CLI) + " " + args + " 2>&1";
  FILE* f = popen(cmd.c_str(), "r");
  Result r{-1, ""};
  if (f == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) r.out.append(buf, n);
  int status = pclose(f);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(Cli, HelpListsTheCommands) {
  Result r = RunCli("--help");
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("demo"), std::string::npos) << r.out;
}

TEST(Cli, NoArgumentsIsUsageError) {
  Result r = RunCli("");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("usage"), std::string::npos);
}

TEST(Cli, UnknownCommandIsNamed) {
  Result r = RunCli("frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown command 'frobnicate'"), std::string::npos) << r.out;
}

TEST(Cli, DemoPrintsStatsAndChecksInvariants) {
  Result r = RunCli("demo --steps 3");
  EXPECT_EQ(r.code, 0) << r.out;
  for (const char* s : {"reserved_bytes", "allocated_bytes", "efficiency", "invariants: ok"})
    EXPECT_NE(r.out.find(s), std::string::npos) << s << " in " << r.out;
}

TEST(Cli, DemoJsonHasPytorchKeys) {
  Result r = RunCli("demo --steps 2 --json");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_EQ(r.out.front(), '{');
  EXPECT_NE(r.out.find("\"reserved_bytes.all.peak\":"), std::string::npos) << r.out;
}

TEST(Cli, DemoOutOfMemoryExitsOne) {
  Result r = RunCli("demo --steps 2 --conf capacity:1GiB");
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.out.find("out of memory"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("invariants: ok"), std::string::npos) << r.out;
}

TEST(Cli, DemoBadConfNamesTheKey) {
  Result r = RunCli("demo --conf capacity:lots");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("capacity: bad value 'lots'"), std::string::npos) << r.out;
  r = RunCli("demo --steps zero");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("--steps"), std::string::npos) << r.out;
}

}  // namespace
