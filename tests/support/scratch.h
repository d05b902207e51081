// Scratch material for tests: a fresh directory per process and name, and
// deterministic noise bytes (xorshift64) for bad-input cases.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>

namespace hbmalloc::testing {

inline std::filesystem::path scratch_dir(const std::string& name) {
  const std::filesystem::path p =
      std::filesystem::temp_directory_path() / ("hbm_test_" + std::to_string(getpid()) + "_" + name);
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

inline std::string noise_bytes(size_t n, uint64_t seed = 88172645463325252ull) {
  std::string out(n, '\0');
  for (char& c : out) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    c = char(seed);
  }
  return out;
}

}  // namespace hbmalloc::testing
