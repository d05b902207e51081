// A snapshot's segment picture (DeviceTrace::segments_at_end) as a Layout,
// checked: segments apart, blocks inside their segment and apart, gaps
// between known blocks shown as free blocks.
#pragma once

#include <cstdint>
#include <string>

#include "hbmalloc/layout.hpp"
#include "record/trace.h"

namespace hbmalloc::report {

// Bytes a snapshot block occupies: its size, or its request in formats
// that do not give block sizes.
inline uint64_t occupied_bytes(const trace::BlockInfo& b) { return b.size ? b.size : b.requested; }

// Throws Error(kInvalidArgument) naming `source` and the first bad segment or block.
Layout layout_of_snapshot(const std::string& source, const trace::DeviceTrace& device);

}  // namespace hbmalloc::report
