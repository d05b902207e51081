// RAPIDS RMM logging_resource_adaptor CSV. The adaptor writes the header
// "Thread,Time,Action,Pointer,Size,Stream", then one row per call:
//   140573312345856,14:05:09.123456,allocate,0x7f8a40000000,1024,0x5581e2a0
// Time is spdlog's "%H:%M:%S.%f" (wall clock, microseconds). Actions are
// "allocate", "free" and, when the upstream throws, "allocate failure" with a
// null pointer. Pointers and streams are hex: "0x..." (fmt, %p), bare hex
// (%llx builds), "(nil)" or "0" for null. RMM logs one device, so every row
// goes to device 0.
#include <charconv>
#include <optional>

#include "hbmalloc/error.hpp"
#include "trace/read_trace.h"
#include "trace/text_lines.h"
#include "trace/trace_assembler.h"

namespace hbmalloc::trace {
namespace {

constexpr std::string_view kRmmHeader = "Thread,Time,Action,Pointer,Size,Stream";
constexpr int64_t kDayUs = int64_t{86400} * 1000000;
constexpr int64_t kMaxSeconds = int64_t{1} << 43;  // times in us stay well inside int64
constexpr int64_t kMaxDays = 1 << 20;               // midnights a log may pass

template <typename Int>
bool parse_whole(std::string_view s, Int& value, int base = 10) {
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
  return ec == std::errc() && end == s.data() + s.size();
}

// "0x7f..", "7f..", "(nil)" -> value.
std::optional<uint64_t> parse_hex(std::string_view s) {
  if (s == "(nil)" || s == "nullptr") return 0;
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s.remove_prefix(2);
  uint64_t v = 0;
  if (!parse_whole(s, v, 16)) return std::nullopt;
  return v;
}

// Microseconds from "HH:MM:SS.ffffff" (time of day) or "SSSS.ffffff" (seconds).
std::optional<int64_t> parse_time_us(std::string_view s) {
  std::string_view whole = s;
  std::string_view fraction;
  if (size_t dot = s.find('.'); dot != std::string_view::npos) {
    whole = s.substr(0, dot);
    fraction = s.substr(dot + 1);
  }
  int64_t seconds = 0;
  size_t fields = 0;
  while (true) {
    size_t colon = whole.find(':');
    int64_t part = 0;
    if (!parse_whole(whole.substr(0, colon), part) || part < 0 || part > kMaxSeconds) return std::nullopt;
    seconds = seconds * 60 + part;
    if (++fields > 3 || seconds > kMaxSeconds) return std::nullopt;
    if (colon == std::string_view::npos) break;
    whole.remove_prefix(colon + 1);
  }
  int64_t micros = 0;
  int digits = 0;
  for (char c : fraction) {
    if (c < '0' || c > '9') return std::nullopt;
    if (digits++ < 6) micros = micros * 10 + (c - '0');
  }
  for (; digits < 6; ++digits) micros *= 10;
  return seconds * 1000000 + micros;
}

class RmmReader {
 public:
  explicit RmmReader(const std::string& source) : source_(source) {}

  Trace read(std::string_view text) {
    TextLines lines(text);
    std::string_view line;
    bool seen_header = false;
    while (lines.next(line)) {
      if (line.empty()) continue;
      where_ = source_ + ":" + std::to_string(lines.number());
      if (!seen_header) {
        if (line != kRmmHeader)
          fail("not an RMM log: the header must be \"" + std::string(kRmmHeader) + "\"");
        seen_header = true;
        continue;
      }
      row(line);
    }
    if (!seen_header) throw Error(ErrorCode::kInvalidArgument, source_ + ": not an RMM log (no header)");
    Trace trace;
    trace.source = source_;
    trace.format = "rmm-csv";
    trace.recorder = "rmm logging_resource_adaptor";
    trace.has_history = true;
    assembler_.device(0, source_);  // a log with no rows still has its device
    trace.devices = assembler_.finish();
    return trace;
  }

 private:
  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(ErrorCode::kInvalidArgument, where_ + ": " + problem);
  }

  void row(std::string_view line) {
    std::string_view fields[6];
    size_t n = 0;
    while (true) {
      size_t comma = line.find(',');
      if (n == 6) fail("more than 6 fields");
      fields[n++] = trim_blanks(line.substr(0, comma));
      if (comma == std::string_view::npos) break;
      line.remove_prefix(comma + 1);
    }
    if (n != 6) fail("expected 6 fields (Thread,Time,Action,Pointer,Size,Stream), found " + std::to_string(n));
    const auto [thread, time, action, pointer_text, size_text, stream_text] =
        std::tie(fields[0], fields[1], fields[2], fields[3], fields[4], fields[5]);
    (void)thread;

    Event e;
    e.time_us = time_of(time);
    std::optional<uint64_t> pointer = parse_hex(pointer_text);
    if (!pointer) fail("bad pointer \"" + std::string(pointer_text.substr(0, 40)) + "\"");
    if (!parse_whole(size_text, e.size)) fail("bad size \"" + std::string(size_text.substr(0, 40)) + "\"");
    std::optional<uint64_t> stream = parse_hex(stream_text);
    if (!stream) fail("bad stream \"" + std::string(stream_text.substr(0, 40)) + "\"");
    e.stream = *stream;

    DeviceTrace& d = assembler_.device(0, where_);
    using KeyState = TraceAssembler::KeyState;
    if (action == "allocate") {
      if (assembler_.key_state(0, *pointer) == KeyState::kLive)
        fail("allocates " + hex(*pointer) + " that is already live (its free is missing)");
      e.action = Action::kAlloc;
      e.addr = *pointer;
      e.id = assembler_.allocate(0, *pointer, where_);
    } else if (action == "free" || action == "deallocate") {
      if (assembler_.key_state(0, *pointer) != KeyState::kLive)
        fail("frees " + hex(*pointer) + " that is not live");
      e.action = Action::kFree;
      e.addr = *pointer;
      e.id = assembler_.release(0, *pointer);
    } else if (action.size() > 8 && action.substr(action.size() - 8) == " failure") {
      e.action = Action::kOom;  // addr would be the device's free bytes: unknown
    } else {
      fail("unknown action \"" + std::string(action.substr(0, 40)) + "\"");
    }
    d.events.push_back(e);
  }

  // Relative to the first row; a time of day that goes back by more than
  // half a day is taken to have passed midnight.
  int64_t time_of(std::string_view text) {
    std::optional<int64_t> t = parse_time_us(text);
    if (!t) fail("bad time \"" + std::string(text.substr(0, 40)) + "\"");
    if (!first_us_) first_us_ = *t;
    int64_t now = *t + days_us_;
    if (now < last_us_ - kDayUs / 2 && text.find(':') != std::string_view::npos) {
      if (days_us_ / kDayUs >= kMaxDays) fail("time goes back past midnight too often");
      days_us_ += kDayUs;
      now += kDayUs;
    }
    last_us_ = now;
    return now - *first_us_;
  }

  static std::string hex(uint64_t v) {
    char buf[19] = "0x";
    auto [end, ec] = std::to_chars(buf + 2, buf + sizeof buf, v, 16);
    return std::string(buf, end);
  }

  const std::string& source_;
  std::string where_;
  TraceAssembler assembler_;
  std::optional<int64_t> first_us_;
  int64_t last_us_ = 0;
  int64_t days_us_ = 0;
};

}  // namespace

Trace read_rmm_csv(std::string_view text, const std::string& source) {
  return RmmReader(source).read(text);
}

}  // namespace hbmalloc::trace
