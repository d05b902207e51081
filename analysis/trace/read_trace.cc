// The format is told by the content: a file called .json may hold a pickle.
#include "trace/read_trace.h"

#include <algorithm>

#include "hbmalloc/error.hpp"
#include "trace/file_io.h"
#include "trace/gzip_input.h"
#include "record/hbt_format.h"
#include "trace/jsonl_format.h"
#include "record/safe_text.h"
#include "trace/trace_checks.h"

namespace hbmalloc::trace {
namespace {

constexpr std::string_view kRmmHeaderStart = "Thread,Time,Action,Pointer,Size,Stream";

std::string_view skip_blanks(std::string_view text) {
  if (text.substr(0, 3) == "\xef\xbb\xbf") text.remove_prefix(3);  // UTF-8 byte order mark
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t' || text.front() == '\r' ||
                           text.front() == '\n'))
    text.remove_prefix(1);
  return text;
}

// A JSON object with a "traceEvents" key. The key usually comes after
// "deviceProperties"; searching the text is cheap next to parsing it.
bool looks_like_profiler_trace(std::string_view text) {
  return !text.empty() && text.front() == '{' && text.find("\"traceEvents\"") != std::string_view::npos;
}

[[noreturn]] void unknown_format(const std::string& source) {
  throw Error(ErrorCode::kInvalidArgument,
              source + ": unknown trace format (expected a PyTorch snapshot pickle, a profiler trace, "
                       "an RMM log, .hbt or JSON lines)");
}

// Refuses, from its first bytes, a file that can start no readable format, so
// a stream of zeros or noise is not read to its end (or the input limit).
void check_start(std::string_view start, const std::string& source) {
  if (start.empty() || is_gzip(start) || static_cast<unsigned char>(start[0]) == 0x80 || is_hbt(start)) return;
  std::string_view text = skip_blanks(start);
  if (text.empty() || text.front() == '{' || text.front() == '#') return;  // JSON, JSON lines
  if (kRmmHeaderStart.substr(0, std::min(text.size(), kRmmHeaderStart.size())) ==
      text.substr(0, kRmmHeaderStart.size()))
    return;
  unknown_format(source);
}

std::string inflate(std::string_view bytes, const std::string& source, const InputLimits& limits) {
  std::string inflated = inflate_gzip(bytes, source, limits.inflate_cap(bytes.size()),
                                      [&](std::string_view start) { check_start(start, source); });
  if (is_gzip(inflated)) throw Error(ErrorCode::kInvalidArgument, source + ": gzip inside gzip is not a trace");
  return inflated;
}

Trace read_format(std::string_view bytes, const std::string& source, const InputLimits& limits);

}  // namespace

std::string read_input_file(const std::string& path, const InputLimits& limits) {
  const std::string name = safe_text(path);
  std::string bytes =
      read_whole_file(path, limits.max_bytes, [&](std::string_view start) { check_start(start, name); });
  if (is_gzip(bytes)) return inflate(bytes, name, limits);
  return bytes;  // moved: a conditional expression would copy it
}

Trace read_trace_bytes(std::string_view bytes, const std::string& source, const InputLimits& limits) {
  // Every string of the model is safe text, so no report, JSON dump, pickle or
  // terminal downstream meets invalid UTF-8 or control bytes from the file.
  const std::string name = safe_text(source);
  Trace t = read_format(bytes, name, limits);
  t.source = name;
  t.recorder = safe_text(t.recorder);
  for (auto& [key, value] : t.settings) {
    key = safe_text(key);
    value = safe_text(value);
  }
  check_trace(t);
  return t;
}

namespace {

Trace read_format(std::string_view bytes, const std::string& source, const InputLimits& limits) {
  if (bytes.empty()) throw Error(ErrorCode::kInvalidArgument, source + ": empty file");
  if (is_gzip(bytes)) return read_format(inflate(bytes, source, limits), source, limits);
  if (static_cast<unsigned char>(bytes[0]) == 0x80) return read_pytorch_snapshot(bytes, source);
  if (is_hbt(bytes)) return read_hbt(bytes, source);
  std::string_view text = skip_blanks(bytes);
  if (looks_like_jsonl(text)) return read_jsonl(bytes, source);
  if (looks_like_profiler_trace(text)) return read_kineto(bytes, source);
  if (text.substr(0, kRmmHeaderStart.size()) == kRmmHeaderStart) return read_rmm_csv(bytes, source);
  unknown_format(source);
}

}  // namespace

Trace read_trace_file(const std::string& path, const InputLimits& limits) {
  return read_trace_bytes(read_input_file(path, limits), path, limits);
}

}  // namespace hbmalloc::trace
