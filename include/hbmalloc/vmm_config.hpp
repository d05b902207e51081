// The hbm policy's virtual memory knobs (HBMALLOC_CONF keys vmm, granule_size,
// remap, pressure_threshold); part of Config.
#pragma once

#include <cstdint>
#include <optional>
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
  // In [0, 1], or kNoBudget ("off"). Unset (nullopt), it is kDefaultBudget
  // under hbm's default remapping and off once `remap` or
  // `pressure_threshold` is given: choosing how much to remap is choosing
  // what remapping may cost, and a budget nobody asked for would make a
  // higher threshold save less memory where it binds.
  static constexpr double kNoBudget = -1;
  static constexpr double kDefaultBudget = 0.01;
  std::optional<double> remap_budget;
  bool remap_chosen = false;  // `remap` or `pressure_threshold` was given
  // The budget in force: a share of time, or kNoBudget.
  double budget() const { return remap_budget ? *remap_budget : remap_chosen ? kNoBudget : kDefaultBudget; }
  // The budget is a bucket of remap_budget x remap_window seconds, full at
  // the start and refilled at remap_budget per second: over any span of T
  // seconds remapping takes at most remap_budget x (T + remap_window). A
  // job's one-time settling (its first steps) fits the bucket; remapping
  // that recurs every step is held to the share. In (0, 1 hour].
  int64_t remap_window_us = int64_t(60) * 1000 * 1000;
  // Remapping that recurs is bought out (RecurringRemaps): once remapping has
  // cost more than this share of the device time spent creating granules, a
  // request of one size at one point of the step, remapped at a requested
  // peak already reached as often as creating its granules would have cost
  // (3.7 times by the price table), gets new granules instead, kept in the
  // cache, which ends moves that repeat every step. In [0, 100], or
  // kNoBudget ("off"). Unset, it is kDefaultOverhead under hbm's default
  // remapping and off once `remap` or `pressure_threshold` is given (as the
  // budget). The 5% is issue 17's margin on device time against expandable
  // segments.
  static constexpr double kDefaultOverhead = 0.05;
  std::optional<double> remap_overhead;
  // The share in force, or kNoBudget.
  double overhead() const { return remap_overhead ? *remap_overhead : remap_chosen ? kNoBudget : kDefaultOverhead; }

  // Applies one key; false when the key is not one of these. Throws
  // Error(kConfig) naming the key for a bad value.
  bool parse_key(std::string_view key, std::string_view value);
  // These keys with their values as text, in a fixed order.
  std::vector<std::pair<std::string, std::string>> items() const;
  static constexpr const char* kKeys = "vmm, granule_size, remap, pressure_threshold, remap_budget, remap_window, remap_overhead";
};

}  // namespace hbmalloc
