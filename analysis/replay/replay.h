// Replaying one device of a Trace against an Allocator on the sim backend:
// the answer to "would it have fit, and with what?".
//
// Under every policy a request the recording failed (an OOM event) is made
// again at its place: it fails (an OOM of this replay) or it is served and
// freed at once, since the recorded program never held it.
//
// A policy that reproduces the recording allocator (PolicyDescription::
// reproduces_recording) goes further: it starts from the trace's own segments
// with the blocks live then at their offsets and puts new segments at the
// recording's addresses (best fit breaks ties by address).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "hbmalloc/config.hpp"
#include "hbmalloc/layout.hpp"
#include "hbmalloc/stats.hpp"
#include "replay/fidelity.h"
#include "record/trace.h"

namespace hbmalloc::replay {

// Where a replay put things, for a trace that does not say (see
// replay/assign_addresses.h).
struct AddressLog {
  std::vector<uint64_t> block_addr;  // by block id: where the replay put it (0: never served)
  // Segment events, each with the index of the trace event during which it
  // happened (UINT64_MAX: while the blocks live at start were allocated).
  std::vector<std::pair<uint64_t, SegmentEvent>> segment_events;
};

struct ReplayOptions {
  Config config;  // policy and its knobs; backend is forced to sim
  std::optional<uint64_t> capacity;  // unlimited when absent
  int device = 0;
  // Extras that cost time; off for min-capacity searches and benchmarks.
  size_t timeline_points = 0;   // keep at most this many timeline samples
  bool capture_layouts = false;  // segment map at the peak and at each OOM
  // Of the OOMs, the first this many get a segment map (each walks every
  // block; a device far too small fails thousands): the report bounds it.
  size_t oom_layouts = SIZE_MAX;
  bool stop_at_first_oom = false;  // a yes/no answer is enough (min-capacity search)
  // PyTorch snapshots record empty_cache() only as a run of segment frees;
  // replay each such run as an empty_cache() call. Ignored when the trace
  // records empty_cache itself.
  bool infer_empty_cache = true;
  // Log the policy's segment events and compare them with the trace's
  // (ReplayResult::fidelity): how faithfully cca reproduces the recording.
  bool fidelity = false;
  // Filled with where the replay put each block and segment (not with fidelity).
  AddressLog* addresses = nullptr;
  // Run the allocator's invariant checker after every event (Error
  // kInvariant on a violation): for fuzzing and tests, it walks everything.
  bool check_invariants = false;
  // Called every 65536 events with (events done, events in all).
  std::function<void(uint64_t, uint64_t)> progress;
};

struct TimelinePoint {
  uint64_t event = 0;  // index into the device's events
  int64_t time_us = 0;
  Usage usage;         // the maximum over the events this point stands for
};

// A request the replay could not serve, and the picture at that moment.
struct OomRecord {
  uint64_t event = 0;
  uint32_t block = trace::kNoBlock;
  uint64_t size = 0;
  uint64_t stream = 0;
  int64_t time_us = 0;
  Usage usage;                // before the request
  uint64_t cached_free = 0;   // reserved - allocated
  uint64_t largest_free_block = 0;
  uint64_t capacity = 0;
  bool recorded_failure = false;  // the recording failed this request too (its OOM event)
  Layout layout;              // filled when capture_layouts
  // With it, the trace's block id of each block live then, by address.
  std::vector<std::pair<uint64_t, uint32_t>> block_ids;
};

// A request the recording failed, as this replay made it again.
struct FailedRequest {
  uint64_t event = 0;  // index of the trace's OOM event
  uint64_t size = 0;
  uint64_t stream = 0;
  int64_t time_us = 0;
  bool served = false;  // this replay served it (and freed it at once); else it is among the OOMs
};

struct ReplayResult {
  int device = 0;
  uint64_t events = 0;
  uint64_t allocs = 0, frees = 0;
  uint64_t empty_cache_calls = 0;  // recorded or inferred (see ReplayOptions)
  uint64_t peak_requested = 0, peak_allocated = 0, peak_reserved = 0;
  double efficiency = 0;  // peak_requested / peak_reserved (0 when nothing reserved)
  uint64_t capacity = 0;  // what the simulated device had
  std::vector<OomRecord> ooms;
  std::vector<FailedRequest> failed_requests;  // the recording's OOMs, in order
  double seconds = 0;           // replay loop only, not reading
  double events_per_second = 0;
  trace::TraceFigures native;   // what the recording says (peak requested, PyTorch's reserved)
  Stats final_stats;
  std::vector<TimelinePoint> timeline;
  uint64_t peak_reserved_event = 0;  // first event at which peak_reserved was reached
  Layout layout_at_peak;             // when capture_layouts
  // With it, the trace's block id of each block live at the peak, by the
  // block's address in layout_at_peak (address order).
  std::vector<std::pair<uint64_t, uint32_t>> peak_block_ids;
  // A policy that reproduces the recording starts from the trace's own
  // segments, with the blocks live then at their recorded offsets; otherwise
  // those blocks are allocated anew.
  bool started_from_picture = false;
  std::string start_note;  // why the picture could not be used, when it could not
  // When options.fidelity and the trace records segment events: with none
  // there is nothing to compare, and no fidelity (not 0).
  std::optional<Fidelity> fidelity;
};

// Throws Error(kInvalidArgument) for a device the trace does not have or a
// trace that frees a block it never allocated; an OOM is a result, not an error.
ReplayResult replay(const trace::Trace& trace, const ReplayOptions& options);

// For a policy that reproduces the recording allocator, the conditions the
// recording ran under, so a replay runs as it did unless told otherwise: the
// allocator settings the trace recorded (a PyTorch snapshot's
// allocator_settings) under those options.config names, and, when no
// capacity is set, the device capacity the recording had (recorded_capacity)
// if known. Other policies are left alone. Throws Error(kConfig) when the settings do not go together, and
// Error(kInvalidArgument) for a device the trace does not have.
void as_recorded(const trace::Trace& trace, ReplayOptions& options);

// The device capacity the recording ran on: the trace's own, else what its
// first OOM implies (reserved then plus the device's free bytes); nullopt
// when neither is known.
std::optional<uint64_t> recorded_capacity(const trace::Trace& trace, const trace::DeviceTrace& d);

// The smallest capacity, a multiple of 2 MiB, at which the replay has no OOM:
// every recorded request is served, the recording's failed ones included.
// nullopt when no device up to the largest hbmalloc models (1 PiB) can serve
// them all.
std::optional<uint64_t> min_capacity(const trace::Trace& trace, const ReplayOptions& options);

}  // namespace hbmalloc::replay
