// Marks on a report's timeline: the annotations a recording made (PyTorch's
// external_annotations: optimizer steps, record_function ranges, compile
// phases) and where the user's metadata changes, placed at the trace's events.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "record/trace.h"

namespace hbmalloc::report {

struct TimelineMark {
  uint64_t event = 0;   // the first event of the device at or after the mark
  int64_t time_us = 0;  // the trace's clock; 0 when it has no times
  std::string kind;     // "start" / "end" (an annotation's stage), "annotation" (none), "metadata"
  std::string text;     // the annotation's name (else its fields), or the metadata ("" : cleared)
};

// The marks of device `d` of `t`, in event order (annotations of other
// devices left out). An annotation is placed by its time, so a trace
// without times places none.
std::vector<TimelineMark> timeline_marks(const trace::Trace& t, const trace::DeviceTrace& d);

// The annotated ranges open at `event` (started before or at it, not ended
// before it), outermost first, and the user metadata then ("" : none).
struct OpenAt {
  std::vector<std::string> ranges;
  std::string metadata;
};
OpenAt open_at(const std::vector<TimelineMark>& marks, uint64_t event);
// "peak reserved (event 8) falls within: A > B; metadata "m"", as reports print it.
std::string falls_within(const std::vector<TimelineMark>& marks, const std::string& moment, uint64_t event);

// "START name", "END   name", "metadata "text"", as a list shows one mark.
std::string mark_label(const TimelineMark& m);

// Each annotated range (START to END, counted by its starts) or other mark
// once, most frequent first, with its first occurrence.
struct MarkTally {
  std::string label;  // "range NAME", or mark_label's
  size_t times = 0;
  const TimelineMark* first = nullptr;
};
std::vector<MarkTally> tally_marks(const std::vector<TimelineMark>& marks);

}  // namespace hbmalloc::report
