// How much a trace file may cost to read. A reader's memory must follow the
// size of what it reads; these caps bound what it reads in the first place:
// a stream with no end (/dev/zero) or a gzip bomb is refused with a message
// that names the cap and the flag that raises it.
#pragma once

#include <cstdint>

namespace hbmalloc::trace {

// Bytes of input after decompression. Real snapshots run to hundreds of MB.
constexpr uint64_t kDefaultMaxInput = uint64_t{2} << 30;
// Unless the user chose the cap, a gzip may inflate to at most this many times
// its own size (JSON traces compress 10 to 30 times; a bomb 1000 times), and
// at least kInflateFloor.
constexpr uint64_t kMaxInflateRatio = 100;
constexpr uint64_t kInflateFloor = uint64_t{64} << 20;

struct InputLimits {
  uint64_t max_bytes = kDefaultMaxInput;
  bool chosen = false;  // set by the user (--max-input): the ratio rule is off

  // The cap on what `compressed` bytes of gzip may inflate to.
  uint64_t inflate_cap(uint64_t compressed) const {
    if (chosen) return max_bytes;
    const uint64_t by_ratio = compressed > kInflateFloor / kMaxInflateRatio ? compressed * kMaxInflateRatio : kInflateFloor;
    return by_ratio < max_bytes ? by_ratio : max_bytes;
  }
};

// The flag that raises the cap, for messages.
inline constexpr const char* kMaxInputFlag = "--max-input";

}  // namespace hbmalloc::trace
