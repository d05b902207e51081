// HBMALLOC_CONF: "key:value,key:value", PyTorch's syntax.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hbmalloc/vmm_config.hpp"

namespace hbmalloc {

// The largest device, and so the largest request, hbmalloc models: 1 PiB,
// thousands of times any GPU. A capacity past it is refused, never wrapped.
constexpr uint64_t kMaxDeviceBytes = uint64_t(1) << 50;

struct Config {
  std::string policy = "hbm";
  std::string backend = kDefaultBackend;   // "cuda", "sim" or "host" (host memory, for tests)
  uint64_t capacity = 0;                   // sim, host: device bytes, up to kMaxDeviceBytes; 0 = unlimited
  double memory_fraction = 1.0;            // reserved <= fraction * capacity
  uint64_t small_size = 64ull << 10;       // requests up to this use size-class slabs
  uint64_t slab_size = 128ull << 10;       // slab chunk (one small-pool segment)
  // hbm: requests above small_size up to this have arenas (or segments) of
  // their own, apart from larger blocks, as PyTorch keeps blocks up to 1 MiB
  // apart; 0 puts them with the larger ones.
  uint64_t mid_size = 1ull << 20;
  uint64_t segment_round = 2ull << 20;     // large segments are rounded up to this
  int sim_devices = 8;                     // devices the sim backend pretends to have
  // sim: the GPU runs this far behind the host (microseconds; 0: work done at
  // once), so another stream waits for a free block's work and remapping
  // recently freed memory synchronizes, as on a GPU that is kept busy.
  int64_t sim_lag_us = 0;
  // cuda: page-mapped memory is created exportable (POSIX file descriptors),
  // so another process can open a block (Allocator::share); ipc:off turns it off.
  bool ipc = true;
  VmmConfig vmm;                           // hbm: page-mapped large blocks (vmm_config.hpp)
  // PyTorch's own allocator keys (max_split_size_mb, roundup_power2_divisions,
  // expandable_segments, ...) as given, for the cca policy, which reads them
  // as PyTorch does (allocator/policy/cca/cca_config.h).
  std::vector<std::pair<std::string, std::string>> pytorch_settings;

#ifdef HBMALLOC_HAVE_CUDA
  static constexpr const char* kDefaultBackend = "cuda";
#else
  static constexpr const char* kDefaultBackend = "sim";
#endif

  // Parses text on top of the defaults. Throws Error(kConfig) naming the bad
  // key or value; whitespace around keys and values is ignored.
  static Config parse(std::string_view text);
  // HBMALLOC_CONF from the environment (defaults when unset).
  static Config from_env();
  // Every key with its value as text, in a fixed order.
  std::vector<std::pair<std::string, std::string>> items() const;
  // Back to "key:value,..." form; parse(to_string()) gives the same Config.
  std::string to_string() const;
};

// "80GiB", "512MB", "4096", "1.5GiB" -> bytes. Throws Error(kConfig) on junk.
uint64_t parse_bytes(std::string_view text);
// "0", "500us", "2ms", "1.5s" -> whole microseconds; nullopt on junk.
std::optional<int64_t> parse_duration_us(std::string_view text);
// 60000000 -> "60s", 1500000 -> "1500ms": the largest whole unit, which
// parse_duration_us reads back to the same.
std::string format_duration_us(int64_t us);
// The longest duration a key takes (sim_lag, remap_window): an hour.
constexpr int64_t kMaxDurationUs = int64_t(3600) * 1000 * 1000;
// 3221225472 -> "3.00 GiB".
std::string format_bytes(uint64_t bytes);
// The shortest text that reads back as x: 0.95 -> "0.95" (not "0.94999999999999996").
std::string format_number(double x);

}  // namespace hbmalloc
