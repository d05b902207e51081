// Writing a Trace in the format a file name's extension names.
#pragma once

#include <optional>
#include <string>

#include "record/trace.h"

namespace hbmalloc::trace {

// "pytorch-snapshot" for .pickle / .pkl, "hbt" for .hbt, "jsonl" for .jsonl
// (case-insensitive); nullopt for anything else.
std::optional<std::string> output_format_of(const std::string& path);

// Writes `trace` to `path` in output_format_of(path); Error(kInvalidArgument)
// naming the path when the extension names no format.
void write_trace_file(const Trace& trace, const std::string& path);

}  // namespace hbmalloc::trace
