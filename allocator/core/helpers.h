// The few helpers every layer wants, written once: rounding up, an address
// as hex text, and the invariant checker's failure.
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

// An invariant does not hold: Error(kInvariant) naming it.
[[noreturn]] inline void violated(const std::string& what) { throw Error(ErrorCode::kInvariant, what); }

}  // namespace hbmalloc
