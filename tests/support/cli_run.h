// Running the built `hbmalloc` command line from a test: exit code, stdout and
// stderr apart, and the check every bad-input case shares.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "support/scratch.h"
#include "support/slurp.h"

namespace hbmalloc::testing {

struct CliResult {
  int code = -1;
  std::string out, err;
};

// Runs `hbmalloc <args>` with stdout and stderr captured in files.
inline CliResult run_cli(const std::string& args) {
  static int n = 0;
  static const std::filesystem::path dir = scratch_dir("cli");
  const std::filesystem::path out = dir / ("out" + std::to_string(n)), err = dir / ("err" + std::to_string(n++));
  const std::string cmd = std::string(HBMALLOC_CLI) + " " + args + " >" + out.string() + " 2>" + err.string();
  const int status = std::system(cmd.c_str());
  CliResult r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = slurp(out);
  r.err = slurp(err);
  return r;
}

// Bad input: exit code 2, nothing on stdout, one line on stderr naming `names`.
inline void expect_bad_input(const CliResult& r, const std::string& names) {
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  ASSERT_FALSE(r.err.empty());
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "want one line, got: " << r.err;
  EXPECT_NE(r.err.find(names), std::string::npos) << "error should name " << names << ": " << r.err;
}

// The real traces next to the project (tests that need them skip without).
inline std::filesystem::path shared_traces() {
  return std::filesystem::path(HBMALLOC_SOURCE_DIR) / ".." / "shared" / "traces";
}

}  // namespace hbmalloc::testing
