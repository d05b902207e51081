// Addresses for a trace that has none (hbmalloc's synthetic traces, old
// profiler traces): a PyTorch snapshot needs every block at a distinct
// address inside a segment, or neither memory_viz nor a reader can use it.
#pragma once

#include "record/trace.h"

namespace hbmalloc::replay {

// Whether some block of `d` has no address (0), so a snapshot of it would put
// blocks on top of each other.
bool lacks_addresses(const trace::DeviceTrace& d);

// `trace` with each device that lacks addresses replayed under the cca policy
// (PyTorch's allocator) on an unlimited sim device: its blocks get the
// addresses the replay gave them, and its segments (picture and events) are
// the replay's, each segment event placed before the trace event during which
// it happened. Other devices are kept as they are.
trace::Trace with_replayed_addresses(const trace::Trace& trace);

}  // namespace hbmalloc::replay
