// PyTorch's allocator settings (PYTORCH_CUDA_ALLOC_CONF), as the cca policy
// reads them: the keys spelled as PyTorch spells them, validated with
// PyTorch's own rules and messages (newest PyTorch: c10/core/AllocatorConfig
// and c10/cuda/CUDAAllocatorConfig). Config keeps them as key/value text
// (Config::pytorch_settings); this file turns that text into numbers.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hbmalloc::cca {

using Settings = std::vector<std::pair<std::string, std::string>>;

constexpr uint64_t kMiB = uint64_t(1) << 20;
// roundup_power2_divisions has one entry per power-of-two interval from
// 1 MiB ([1 MiB, 2 MiB) is entry 0) to 64 GiB; smaller and larger sizes use
// the first and last entry.
constexpr size_t kDivisionIntervals = 16;

struct CcaConfig {
  uint64_t large_segment_size = 20 * kMiB;                    // large_segment_size_mb
  uint64_t max_split_size = std::numeric_limits<uint64_t>::max();  // max_split_size_mb (unlimited)
  uint64_t max_non_split_rounding_size = 20 * kMiB;           // max_non_split_rounding_mb
  std::array<uint64_t, kDivisionIntervals> roundup_power2_divisions{};  // 0: no power-of-two rounding
  double garbage_collection_threshold = 0;                    // 0: no garbage collection
  bool expandable_segments = false;
  double per_process_memory_fraction = 1.0;                   // < 1 sets an allowed maximum

  // The divisions that apply to a request of `size` bytes.
  uint64_t divisions_for(uint64_t size) const;
  bool max_split_size_set() const { return max_split_size != std::numeric_limits<uint64_t>::max(); }
};

// Whether `key` is one of PyTorch's allocator keys (device or host side).
bool is_pytorch_key(std::string_view key);

// The settings as the cca policy uses them; keys PyTorch accepts but a
// simulation has nothing to do with (backend:native, release_lock_on_cudamalloc,
// pinned_*, graph_capture_record_stream_reuse) are validated and ignored.
// Throws Error(kConfig) naming the key, the value and PyTorch's reason.
CcaConfig parse_settings(const Settings& settings);

// Sets `key` to `value` in `settings` (replacing an earlier value of the key).
void set_setting(Settings& settings, std::string_view key, std::string_view value);

// `base` with every key of `over` set to its value there.
Settings overlay(Settings base, const Settings& over);

// "key:value,key:value": a ready PYTORCH_CUDA_ALLOC_CONF value.
std::string alloc_conf_text(const Settings& settings);

// Splits "k:v,k:[a:b,c:d],..." into key/value pairs (commas inside brackets
// belong to the value). Throws Error(kConfig) for an item that is not key:value.
Settings split_settings(std::string_view text);

// The settings a trace's recorded allocator settings describe (a PyTorch
// snapshot's `allocator_settings`, or the config of a trace hbmalloc
// recorded): what its allocator ran with, as PyTorch keys, defaults left out.
// Unknown or unreadable entries are skipped: they describe, they do not configure.
Settings settings_of_trace(const std::vector<std::pair<std::string, std::string>>& allocator_settings);

}  // namespace hbmalloc::cca
