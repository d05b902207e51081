// How report figures are written, the same in text and HTML.
#pragma once

#include <cstdint>
#include <string>

#include "core/helpers.h"  // hex(), shared with every layer

namespace hbmalloc::report {

std::string percent(double fraction);       // 0.9082 -> "90.8%"
// "1.234 s", "12.5 ms". Takes a double so a difference of two times from a
// hostile report cannot overflow.
std::string duration_us(double us);
std::string bucket_label(int log2);         // 10 -> "1 KiB", 9 -> "512 B"
// A statistics counter: bytes in binary units, or a plain count.
std::string stat_figure(int64_t value, bool bytes);
// The memory_summary label of a summary row name ("reserved_bytes" -> "GPU reserved memory").
std::string summary_label(const std::string& name);

}  // namespace hbmalloc::report
