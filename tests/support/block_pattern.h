// The bytes an integrity test writes into a live block: word i of block `id`,
// distinct across blocks and offsets, so a block overwritten by another (or
// moved without its contents) shows as a mismatch. Shared by the host and the
// GPU integrity tests.
#pragma once

#include <cstdint>

namespace hbmalloc::testing {

inline uint64_t pattern_word(uint64_t id, uint64_t i) {
  uint64_t x = id + 0x9E3779B97F4A7C15ull;  // splitmix64 of the id
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return (x ^ (x >> 31)) ^ (i * 0xD6E8FEB86659FD93ull);
}

}  // namespace hbmalloc::testing
