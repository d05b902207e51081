#include "report/format.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <utility>

#include "hbmalloc/config.hpp"

namespace hbmalloc::report {

std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", fraction * 100.0);
  return buf;
}

std::string duration_us(double us) {
  char buf[64];
  double a = std::fabs(us);
  if (!std::isfinite(us)) std::snprintf(buf, sizeof buf, "?");
  else if (a >= 1e6) std::snprintf(buf, sizeof buf, "%.3f s", us / 1e6);
  else if (a >= 1e3) std::snprintf(buf, sizeof buf, "%.1f ms", us / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f us", us);
  return buf;
}

std::string bucket_label(int log2) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (log2 < 0 || log2 > 63) return "?";
  return std::to_string(uint64_t(1) << (log2 % 10)) + " " + kUnits[log2 / 10];
}

std::string stat_figure(int64_t value, bool bytes) {
  if (!bytes) return std::to_string(value);
  // -(value + 1) + 1 keeps INT64_MIN from overflowing.
  if (value >= 0) return format_bytes(uint64_t(value));
  std::string s = format_bytes(uint64_t(-(value + 1)) + 1);
  s.insert(s.begin(), '-');
  return s;
}

std::string summary_label(const std::string& name) {
  static constexpr std::pair<const char*, const char*> kLabels[] = {
      {"allocated_bytes", "Allocated memory"},    {"active_bytes", "Active memory"},
      {"requested_bytes", "Requested memory"},    {"reserved_bytes", "GPU reserved memory"},
      {"inactive_split_bytes", "Non-releasable memory"}, {"allocation", "Allocations"},
      {"active", "Active allocs"},                {"segment", "GPU reserved segments"},
      {"inactive_split", "Non-releasable allocs"}};
  for (const auto& [key, label] : kLabels)
    if (name == key) return label;
  return name;
}

}  // namespace hbmalloc::report
