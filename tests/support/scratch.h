// Scratch material for tests: a fresh directory per process and name, removed
// when the process that made it exits, and deterministic noise bytes
// (xorshift64) for bad-input cases.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

namespace hbmalloc::testing {

// The directories this process made; a forked child that exits normally
// must not remove what its parent still uses, hence the pid check.
class ScratchRegistry {
 public:
  ~ScratchRegistry() {
    if (getpid() != owner_) return;
    std::error_code ec;
    for (const std::filesystem::path& p : made_) std::filesystem::remove_all(p, ec);
  }
  void add(const std::filesystem::path& p) {
    std::lock_guard<std::mutex> lock(mu_);
    made_.push_back(p);
  }

 private:
  const pid_t owner_ = getpid();
  std::mutex mu_;
  std::vector<std::filesystem::path> made_;
};

inline std::filesystem::path scratch_dir(const std::string& name) {
  static ScratchRegistry registry;
  const std::filesystem::path p =
      std::filesystem::temp_directory_path() / ("hbm_test_" + std::to_string(getpid()) + "_" + name);
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  registry.add(p);
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
