// Inflating a gzip-compressed trace (profiler traces ship as .json.gz) with a
// cap on the inflated size, so a decompression bomb fails instead of eating memory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "trace/input_limits.h"

namespace hbmalloc::trace {

bool is_gzip(std::string_view bytes);

// Inflates every gzip member in `bytes`. Throws Error(kInvalidArgument)
// naming `source` when the stream is corrupt, truncated, or would inflate
// past `max_bytes` (the message names kMaxInputFlag). `accept_start`, when
// given, sees the first inflated bytes and may throw to refuse the rest.
std::string inflate_gzip(std::string_view bytes, const std::string& source, uint64_t max_bytes = kDefaultMaxInput,
                         const std::function<void(std::string_view)>& accept_start = nullptr);

}  // namespace hbmalloc::trace
