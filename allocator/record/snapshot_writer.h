// A Trace as a PyTorch memory snapshot pickle (the schema of
// torch.cuda.memory._dump_snapshot), which PyTorch's memory_viz opens and
// read_pytorch_snapshot reads back to the same events and figures.
#pragma once

#include <string>

#include "record/trace.h"

namespace hbmalloc::trace {

// 'segments' (each device's final picture), 'device_traces' (one list per
// device number 0..max) and 'allocator_settings'. A device without a segment
// picture gets its final picture from a forward walk: segments_at_start plus
// the segment events, and a segment of its own for each block live at the
// end that no segment holds. Throws Error when the trace contradicts itself.
std::string write_pytorch_snapshot(const Trace& trace);

}  // namespace hbmalloc::trace
