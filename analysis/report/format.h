// How report figures are written, the same in text and HTML.
#pragma once

#include <cstdint>
#include <string>

#include "core/helpers.h"  // hex() and percent(), shared with every layer

namespace hbmalloc::report {

// "1.234 s", "12.5 ms". Takes a double so a difference of two times from a
// hostile report cannot overflow.
std::string duration_us(double us);
// "+1.250 s" / "-25.0 ms": `time_us` after (before) `start_us`; "" when either is unknown (0).
std::string time_since(int64_t time_us, int64_t start_us);
std::string bucket_label(int log2);         // 10 -> "1 KiB", 9 -> "512 B"
std::string signed_bytes(int64_t bytes);    // "+1.25 GiB", "-3.00 MiB", "0"

}  // namespace hbmalloc::report
