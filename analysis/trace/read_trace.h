// Reading a trace file of any supported format into the Trace model. The
// format is detected from the content, never from the file name.
#pragma once

#include <string>
#include <string_view>

#include "trace/input_limits.h"
#include "record/trace.h"

namespace hbmalloc::trace {

// Throws Error(kInvalidArgument) with a one-line message that names `source`
// and the problem (truncated, not a memory snapshot, refused opcode, input
// past its limit, ...).
Trace read_trace_file(const std::string& path, const InputLimits& limits = {});
Trace read_trace_bytes(std::string_view bytes, const std::string& source, const InputLimits& limits = {});

// A file's bytes, gzip inflated, within `limits`; refused early when its
// first bytes start no known format. For inputs that may be a trace or
// something else (a saved report).
std::string read_input_file(const std::string& path, const InputLimits& limits = {});

// One reader per format; `bytes` is the whole file (already decompressed).
Trace read_pytorch_snapshot(std::string_view bytes, const std::string& source);
Trace read_kineto(std::string_view json, const std::string& source);
Trace read_rmm_csv(std::string_view text, const std::string& source);
Trace read_hbt(std::string_view bytes, const std::string& source);
Trace read_jsonl(std::string_view text, const std::string& source);

}  // namespace hbmalloc::trace
