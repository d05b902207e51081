// What the fuzz targets past the readers (replay_fuzz, report_fuzz) share:
// bytes read as every command reads them, and the one rule for the errors a
// read trace may still meet downstream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "hbmalloc/error.hpp"
#include "record/trace.h"
#include "trace/read_trace.h"

namespace hbmalloc::fuzz {

// The trace a command would read from these bytes (the reader, then
// check_trace), or nullopt: the reader targets hold readers to their rule.
inline std::optional<trace::Trace> read_any(const uint8_t* data, size_t size) {
  try {
    return trace::read_trace_bytes(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
  } catch (const Error&) {
    return std::nullopt;
  }
}

// f(trace, device) for each device with events of the trace read from these bytes.
template <typename F>
void for_each_device(const uint8_t* data, size_t size, F&& f) {
  const std::optional<trace::Trace> t = read_any(data, size);
  if (!t || !t->has_history) return;
  for (const trace::DeviceTrace& d : t->devices)
    if (!d.events.empty()) f(*t, d.device);
}

// An error downstream of a read trace names it ("fuzz"), or, for a bad
// setting the trace recorded, that setting's key; an invariant violation is
// a finding whatever it says.
inline void require_named(const Error& e) {
  if (e.code() == ErrorCode::kInvariant) __builtin_trap();
  if (e.code() != ErrorCode::kConfig && std::string_view(e.what()).find("fuzz") == std::string_view::npos)
    __builtin_trap();
}

}  // namespace hbmalloc::fuzz
