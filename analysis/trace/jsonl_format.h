// JSON lines traces, for people and tests. The first line (after blank lines
// and '#' comments) is the header:
//   {"hbmalloc_trace": 1, "recorder": "...", "capacity": 85899345920,
//    "history": true, "settings": {"key": "value", ...}}
// then one object per line, each with an "action":
//   {"action": "alloc", "device": 0, "id": 3, "size": 4096, "stream": 0, "addr": 1024, "t": 17}
//   {"action": "free_requested" | "free_completed" (or "free"), "device": 0, "id": 3, ...}
//   {"action": "segment_alloc" | "oom" | "marker" | ... (any Trace action name), "size": ...}
//   {"action": "device", "device": 0, "segment_picture": true}
//   {"action": "live_block", "device": 0, "id": 9, "addr": ..., "size": ..., "requested": ...,
//    "stream": ..., "state": "active_allocated" | "active_pending_free" | "inactive"}
//   {"action": "segment", "device": 0, "at": "start" | "end", "addr": ..., "size": ...,
//    "stream": ..., "pool": "small" | "large", "expandable": false, "blocks": [{...}, ...]}
// Omitted numbers are 0 and an omitted device is 0. Ids are any
// non-negative integers, unique among live blocks of a device; the reader
// maps them to dense ids. live_block lines come before the device's events.
// Addresses and streams may also be written as "0x..." strings.
// Stacks: {"action": "frame", "filename": ..., "name": ..., "line": n} and
// {"action": "stack", "frames": [frame numbers, innermost first]} are
// numbered in the order they come, each before a line naming it; an alloc or
// live_block line names its allocation's stack with "stack": n.
// Timeline: {"action": "annotation", "device": 0, "t": 12, "fields": [["stage", "START"], ["name", "step"]]}
// (PyTorch's external annotations), and {"action": "user_metadata", "device": 0,
// "text": "..."}: the device's events after it carry that user metadata ("": none).
#pragma once

#include <string>

#include "record/trace.h"

namespace hbmalloc::trace {

// read_jsonl is declared in read_trace.h. The writer puts the trace's own ids in
// the file and leaves out fields that are 0.
std::string write_jsonl(const Trace& trace);
void write_jsonl_file(const Trace& trace, const std::string& path);

// True when the first line that is not blank or a comment looks like the header.
bool looks_like_jsonl(std::string_view text);

}  // namespace hbmalloc::trace
