// `hbmalloc explain`: what to do about an OOM. For each request the recording
// failed (or, with none, at the peak) the cause with the figures behind it;
// then the trace replayed at the recorded device under the settings a user
// would try, and the line to use (or how much must go).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "record/trace.h"

namespace hbmalloc::report {

// Why one request failed (or how the peak stood).
struct OomCause {
  uint64_t event = 0;   // the trace's OOM event, or the event of the peak
  bool at_peak = false;  // the trace records no OOM: explained at its peak of live bytes
  uint64_t request = 0, stream = 0;
  uint64_t live = 0;                     // requested bytes live just before
  std::optional<uint64_t> reserved;      // what the recording allocator held then
  std::optional<uint64_t> device_free;   // the device's free bytes, as the recording saw them
  std::optional<uint64_t> capacity;      // the device judged against
  // "capacity" (no allocator helps), "limit" (a memory fraction below the
  // device), "other tenants" (another process held device memory),
  // "fragmentation" (the bytes were there, not in one piece), "none" (the peak fits),
  // "unknown" (the trace tells no device size and none was given).
  std::string cause;
  std::string detail;  // the figures behind the cause, one sentence
};

// One setting replayed at the device.
struct SettingRow {
  std::string name;    // "recorded settings", "expandable_segments:True", "best tune finds", "hbm's defaults"
  std::string policy;  // a name of the policy catalog
  std::string line;    // the ready PYTORCH_CUDA_ALLOC_CONF= / HBMALLOC_CONF= line
  bool fits = false;
  uint64_t peak_reserved = 0;
  std::optional<uint64_t> min_capacity;
  double device_seconds = 0;  // modeled time of its segment and VMM calls
  std::string error;          // the replay could not run
};

struct Explanation {
  std::string source, format;
  int device = 0;
  std::optional<uint64_t> capacity;
  std::string capacity_source;
  std::vector<OomCause> ooms;
  std::vector<SettingRow> rows;
  std::optional<std::string> use;           // the line to use, when some setting fits
  uint64_t bytes_to_free = 0;               // when none fits: what must go at the worst request
  std::optional<uint64_t> smallest_device;  // the least min capacity of the rows
  std::string verdict;                      // one sentence
};

struct ExplainOptions {
  int device = 0;
  std::optional<uint64_t> capacity;  // else the recorded device (tune::capacity_for)
  unsigned threads = 0;              // 0: every core
  std::function<void(uint64_t, uint64_t)> progress;
};

// Throws Error(kInvalidArgument) for a device the trace lacks or a static snapshot.
Explanation explain(const trace::Trace& trace, const ExplainOptions& options);

nlohmann::json to_json(const Explanation& e);
std::string render_text(const Explanation& e);
std::string render_html(const Explanation& e);

}  // namespace hbmalloc::report
