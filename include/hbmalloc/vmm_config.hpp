// The hbm policy's virtual memory knobs (HBMALLOC_CONF keys vmm, granule_size,
// remap, pressure_threshold); part of Config.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hbmalloc {

struct VmmConfig {
  // When cached free granules are unmapped and mapped again where a request
  // lands, instead of creating new ones.
  enum class Remap : uint8_t {
    kAlways,    // before creating any granule (most efficient, most VMM operations)
    kPressure,  // only under pressure (see pressure_threshold)
    kNever,     // never: cached granules are only released (empty_cache, out-of-memory retry)
  };

  bool enabled = true;                  // vmm: large blocks on page-mapped ranges where the backend can
  uint64_t granule_size = 2ull << 20;   // granule_size: physical page of the mapping
  Remap remap = Remap::kPressure;       // remap
  // Under remap:pressure, granules are remapped rather than created once
  // reserved would pass this share of the memory limit, or would exceed the
  // allocated high-water mark divided by it (the cache may keep 1 - this of
  // reserved at the peak). In (0, 1].
  double pressure_threshold = 0.95;
  // The share of elapsed time remapping may take (its modeled device time,
  // device_prices.hpp), against the steady clock in a live process and the
  // trace's clock in a replay: past it, granules are created instead, where
  // the memory limit leaves room (an allocation never fails for the budget).
  // In [0, 1]; kNoBudget ("off", the default) removes it. Off by default: on
  // the shared snapshots a 1% budget cost memory on 10 of 66 and saved no
  // modeled device time (a refused remap becomes a dearer new granule); it is
  // for jobs whose remaps stall on stream synchronization.
  static constexpr double kNoBudget = -1;
  double remap_budget = kNoBudget;

  // Applies one key; false when the key is not one of these. Throws
  // Error(kConfig) naming the key for a bad value.
  bool parse_key(std::string_view key, std::string_view value);
  // These keys with their values as text, in a fixed order.
  std::vector<std::pair<std::string, std::string>> items() const;
  static constexpr const char* kKeys = "vmm, granule_size, remap, pressure_threshold, remap_budget";
};

}  // namespace hbmalloc
