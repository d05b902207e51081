// A whole file's bytes, for tests that feed files to readers.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace hbmalloc::testing {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace hbmalloc::testing
