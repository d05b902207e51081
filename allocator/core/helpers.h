// The few helpers every layer wants, written once: rounding up, an address
// as hex text, a percentage, and the invariant checker's failure.
#pragma once

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <string>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

// n rounded up to a multiple of `to` (not 0).
constexpr uint64_t round_up(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

// "0x7f3a00000000".
inline std::string hex(uint64_t value) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%" PRIx64, value);
  return buf;
}
inline std::string hex(const void* p) { return hex(uint64_t(reinterpret_cast<uintptr_t>(p))); }

// A fraction as a percentage with one decimal: 0.9082 -> "90.8%".
inline std::string percent(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", fraction * 100.0);
  return buf;
}

// An invariant does not hold: Error(kInvariant) naming it.
[[noreturn]] inline void violated(const std::string& what) { throw Error(ErrorCode::kInvariant, what); }

}  // namespace hbmalloc
