#include "hbmalloc/vmm_config.hpp"

#include <charconv>
#include <cmath>
#include <string>

#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"

namespace hbmalloc {

namespace {

[[noreturn]] void bad(std::string_view key, std::string_view value, const std::string& why) {
  throw Error(ErrorCode::kConfig, std::string(key) + ": bad value '" + std::string(value) + "' (" + why + ")");
}

// A share in [0, max], or "off" (kNoBudget); `expected` names a good value.
double share_or_off(std::string_view key, std::string_view value, double max, const char* expected) {
  if (value == "off") return VmmConfig::kNoBudget;
  double d = 0;
  auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), d);
  if (ec != std::errc() || end != value.data() + value.size() || !std::isfinite(d))
    bad(key, value, std::string("expected ") + expected + ", or off");
  if (!(d >= 0.0 && d <= max)) bad(key, value, "must be in [0, " + format_number(max) + "], or off");
  return d;
}

constexpr std::pair<VmmConfig::Remap, std::string_view> kRemapNames[] = {
    {VmmConfig::Remap::kAlways, "always"}, {VmmConfig::Remap::kPressure, "pressure"}, {VmmConfig::Remap::kNever, "never"}};

}  // namespace

bool VmmConfig::parse_key(std::string_view key, std::string_view value) {
  if (key == "vmm") {
    if (value != "on" && value != "off") bad(key, value, "expected on or off");
    enabled = value == "on";
  } else if (key == "granule_size") {
    uint64_t bytes = 0;
    try {
      bytes = parse_bytes(value);
    } catch (const Error&) {
      bad(key, value, "expected bytes such as 2MiB");
    }
    // The device's own granularity (2 MiB on today's GPUs) is checked when the policy starts.
    if (bytes < 4096 || (bytes & (bytes - 1)) != 0 || bytes > (1ull << 30))
      bad(key, value, "must be a power of two between 4KiB and 1GiB");
    granule_size = bytes;
  } else if (key == "remap") {
    for (auto [mode, name] : kRemapNames)
      if (value == name) {
        remap = mode;
        remap_chosen = true;
        return true;
      }
    bad(key, value, "expected always, pressure or never");
  } else if (key == "pressure_threshold") {
    double d = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), d);
    if (ec != std::errc() || end != value.data() + value.size() || !std::isfinite(d)) bad(key, value, "not a number");
    if (!(d > 0.0 && d <= 1.0)) bad(key, value, "must be in (0, 1]");
    pressure_threshold = d;
    remap_chosen = true;
  } else if (key == "remap_budget") {
    remap_budget = share_or_off(key, value, 1, "a share of time such as 0.01");
  } else if (key == "remap_overhead") {
    remap_overhead = share_or_off(key, value, 100, "a share of creating time such as 0.05");
  } else if (key == "remap_window") {
    const std::optional<int64_t> us = parse_duration_us(value);
    if (!us) bad(key, value, "expected a duration such as 500ms, 10s or 60s");
    if (*us <= 0 || *us > kMaxDurationUs) bad(key, value, "must be more than 0 and at most an hour");
    remap_window_us = *us;
  } else {
    return false;
  }
  return true;
}

std::vector<std::pair<std::string, std::string>> VmmConfig::items() const {
  std::string remap_name;
  for (auto [mode, name] : kRemapNames)
    if (mode == remap) remap_name = name;
  return {{"vmm", enabled ? "on" : "off"},
          {"granule_size", std::to_string(granule_size)},
          {"remap", remap_name},
          {"pressure_threshold", format_number(pressure_threshold)},
          {"remap_budget", budget() < 0 ? std::string("off") : format_number(budget())},
          {"remap_window", format_duration_us(remap_window_us)},
          {"remap_overhead", overhead() < 0 ? std::string("off") : format_number(overhead())}};
}

}  // namespace hbmalloc
