// The format is told by the content: a file called .json may hold a pickle.
#include "trace/read_trace.h"

#include "hbmalloc/error.hpp"
#include "trace/file_io.h"
#include "trace/gzip_input.h"
#include "trace/hbt_format.h"
#include "trace/jsonl_format.h"

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

}  // namespace

Trace read_trace_bytes(std::string_view bytes, const std::string& source) {
  if (bytes.empty()) throw Error(ErrorCode::kInvalidArgument, source + ": empty file");
  if (is_gzip(bytes)) {
    std::string inflated = inflate_gzip(bytes, source);
    if (is_gzip(inflated))
      throw Error(ErrorCode::kInvalidArgument, source + ": gzip inside gzip is not a trace");
    return read_trace_bytes(inflated, source);
  }
  if (static_cast<unsigned char>(bytes[0]) == 0x80) return read_pytorch_snapshot(bytes, source);
  if (is_hbt(bytes)) return read_hbt(bytes, source);
  std::string_view text = skip_blanks(bytes);
  if (looks_like_jsonl(text)) return read_jsonl(bytes, source);
  if (looks_like_profiler_trace(text)) return read_kineto(bytes, source);
  if (text.substr(0, kRmmHeaderStart.size()) == kRmmHeaderStart) return read_rmm_csv(bytes, source);
  throw Error(ErrorCode::kInvalidArgument,
              source + ": unknown trace format (expected a PyTorch snapshot pickle, a profiler trace, "
                       "an RMM log, .hbt or JSON lines)");
}

Trace read_trace_file(const std::string& path) { return read_trace_bytes(read_whole_file(path), path); }

}  // namespace hbmalloc::trace
