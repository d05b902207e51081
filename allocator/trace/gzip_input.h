// Inflating a gzip-compressed trace (profiler traces ship as .json.gz) with a
// cap on the inflated size, so a decompression bomb fails instead of eating memory.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace hbmalloc::trace {

// Large enough for the biggest snapshots seen (hundreds of MB), small enough to refuse a bomb.
constexpr uint64_t kMaxInflatedBytes = uint64_t{4} << 30;

bool is_gzip(std::string_view bytes);

// Inflates every gzip member in `bytes`. Throws Error(kInvalidArgument)
// naming `source` when the stream is corrupt, truncated, or would inflate
// past `max_bytes`.
std::string inflate_gzip(std::string_view bytes, const std::string& source,
                         uint64_t max_bytes = kMaxInflatedBytes);

}  // namespace hbmalloc::trace
