// What `hbmalloc replay` says about one replay: the timed run's own figures
// (ReplayRun: speed, device calls and their modeled time, least capacity,
// fidelity, the recording's failed requests) beside the fragmentation report
// of the same trace and settings. One model, rendered as text
// (render_text), JSON (nlohmann to_json / from_json) and HTML (the report's
// page); the report says the peaks and the run's facts, the run says the rest.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hbmalloc/config.hpp"
#include "hbmalloc/stats.hpp"
#include "record/trace.h"
#include "replay/fidelity.h"
#include "replay/replay.h"
#include "report/frag_report.h"

namespace hbmalloc::report {

struct ReplayRun {
  std::string trace, format;
  int device = 0;
  std::string policy, config;
  // The policy's settings as PyTorch's line, for a policy that reads them.
  std::optional<std::string> pytorch_alloc_conf;
  uint64_t capacity = 0;  // 0: unlimited
  uint64_t events = 0, allocs = 0, frees = 0, empty_cache_calls = 0;
  uint64_t peak_requested = 0, peak_allocated = 0, peak_reserved = 0;
  double efficiency = 0;
  uint64_t oom_count = 0;
  std::vector<replay::FailedRequest> failed_requests;
  double seconds = 0, events_per_second = 0;
  trace::TraceFigures native;  // what the recording did
  // Device calls, priced by one model (hbmalloc/stats.hpp): granule
  // operations, and plain segments taken and given back.
  VmmCounts vmm;
  int64_t segment_alloc_bytes = 0, segment_free_bytes = 0;
  int64_t segment_allocs = 0, segment_frees = 0;  // the calls (cudaMalloc / cudaFree) behind those bytes
  // Device-wide synchronizations the policy made (waiting for streams' queued
  // work: on the sim, only with sim_lag or at the out-of-memory retry).
  int64_t device_syncs = 0;
  bool min_capacity_searched = false;
  std::optional<uint64_t> min_capacity;  // searched and none found: unset
  // The policy reproduces the recording allocator: it starts from the
  // trace's own picture when it can and its segment events are compared.
  bool reproduces_recording = false;
  bool started_from_picture = false;
  std::string start_note;  // why it did not (not kept in JSON)
  std::optional<replay::Fidelity> fidelity;  // unset: nothing to compare with
};

struct ReplayOutput {
  ReplayRun run;
  FragReport report;
};

// The timed replay `r` of `t` under `config`; `report` from the same trace and settings.
ReplayOutput replay_output(const trace::Trace& t, const replay::ReplayResult& r, const Config& config,
                           std::optional<uint64_t> min_capacity, bool min_capacity_searched, FragReport report);

// The run's lines, then the report.
std::string render_text(const ReplayOutput& output);

// The run's figures at the top level and the report as "report".
void to_json(nlohmann::json& j, const ReplayOutput& output);
// Throws json_io::FieldError (report/json_fields.h) at the first bad field.
void from_json(const nlohmann::json& j, ReplayOutput& output);

// Whether `j` is a saved `hbmalloc replay --json` (a report as its "report").
bool is_replay_output_json(const nlohmann::json& j);
// Throws Error(kInvalidArgument) naming `source` and the first bad field.
ReplayOutput replay_output_from_json(const nlohmann::json& j, const std::string& source);

}  // namespace hbmalloc::report
