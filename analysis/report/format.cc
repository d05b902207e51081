#include "report/format.h"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <utility>

#include "hbmalloc/config.hpp"

namespace hbmalloc::report {

std::string duration_us(double us) {
  char buf[64];
  double a = std::fabs(us);
  if (!std::isfinite(us)) std::snprintf(buf, sizeof buf, "?");
  else if (a >= 1e6) std::snprintf(buf, sizeof buf, "%.3f s", us / 1e6);
  else if (a >= 1e3) std::snprintf(buf, sizeof buf, "%.1f ms", us / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f us", us);
  return buf;
}

std::string time_since(int64_t time_us, int64_t start_us) {
  if (time_us <= 0 || start_us <= 0) return "";
  const double since = double(time_us) - double(start_us);
  return (since < 0 ? "" : "+") + duration_us(since);
}

std::string bucket_label(int log2) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (log2 < 0 || log2 > 63) return "?";
  return std::to_string(uint64_t(1) << (log2 % 10)) + " " + kUnits[log2 / 10];
}

std::string signed_bytes(int64_t bytes) {
  if (bytes == 0) return "0";
  return (bytes > 0 ? "+" : "-") + format_bytes(bytes > 0 ? uint64_t(bytes) : uint64_t(0) - uint64_t(bytes));
}

}  // namespace hbmalloc::report
