// What live allocators hold, as a trace with a final segment picture and no
// history: the form the PyTorch snapshot writer and the static report read.
#pragma once

#include <utility>
#include <vector>

#include "hbmalloc/layout.hpp"
#include "record/trace.h"

namespace hbmalloc::trace {

// An allocator's layout as a snapshot's segment picture.
std::vector<SegmentInfo> picture_of(const Layout& layout);

// One device per (device number, layout), sorted by device number.
Trace live_trace(std::vector<std::pair<int, Layout>> devices);

}  // namespace hbmalloc::trace
