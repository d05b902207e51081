// What every trace must satisfy, whatever its format, before anything
// downstream trusts its figures: sizes a device can have, segments that do
// not overlap and hold their blocks, and segment events that free only what
// was held. A reader's own checks catch what its format alone can get wrong;
// these catch the rest, so no report says "native reserved 16384 PiB".
#pragma once

#include "record/trace.h"

namespace hbmalloc::trace {

// Throws Error(kInvalidArgument) "<source>: device D ...", naming the segment
// or the event, on the first violation.
void check_trace(const Trace& trace);

}  // namespace hbmalloc::trace
