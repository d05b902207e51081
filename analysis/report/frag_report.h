// The fragmentation report as data: what a replay (or a static snapshot)
// says about where memory went. JSON, text and HTML render this one struct.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/memory_summary.h"
#include "hbmalloc/config.hpp"
#include "hbmalloc/layout.hpp"
#include "hbmalloc/stats.hpp"
#include "record/trace.h"
#include "report/alloc_sites.h"
#include "report/unlisted.h"
#include "report/timeline_marks.h"
#include "replay/replay.h"

namespace hbmalloc::report {

struct ReportOptions {
  Config config;                         // the policy and knobs the replay ran with
  std::optional<uint64_t> min_capacity;  // replay::min_capacity, when the caller computed it
  size_t timeline_points = 600;          // the timeline is downsampled to at most this many
  size_t worst_holes = 10;
  size_t segments_listed = 10;           // least utilized segments kept in the list
  // The first OOMs get a segment map and who held memory then: a device far
  // too small fails thousands of requests, and each picture walks every block.
  size_t oom_details = kOomsListed;
};

struct RunFacts {
  std::string source, format, recorder;
  int device = 0;
  bool static_snapshot = false;       // a picture of one moment, no history
  std::string policy, config;         // empty for a static snapshot
  std::vector<std::pair<std::string, std::string>> settings;  // the trace's allocator settings
  // The replayed device's (absent: unlimited), or the trace's for a snapshot (absent: unknown).
  std::optional<uint64_t> capacity;
  uint64_t events = 0, allocs = 0, frees = 0;
  int64_t first_time_us = 0, last_time_us = 0;  // 0 when the trace has no times
  double replay_seconds = 0;
};

// One row of a figures table for both renderers: a short name, what it
// means ("(allocated - requested)"; HTML shows it, text does not), a value per column.
struct FigureRow {
  std::string name, meaning;
  std::vector<std::string> values;
};


// The figures of one moment, from a layout or from the statistics.
struct MomentFigures {
  std::string moment;  // "peak reserved", "end", "snapshot"
  uint64_t requested = 0, allocated = 0, reserved = 0;
  uint64_t cached_free = 0;             // reserved - allocated
  uint64_t internal_fragmentation = 0;  // allocated - requested
  uint64_t inactive_split_bytes = 0;    // free bytes in segments that also hold live blocks
  uint64_t largest_free_block = 0;
  double external_fragmentation = 0;    // 1 - largest_free_block / cached_free (0 when nothing cached)
  uint64_t segments = 0;
};

// A free block inside a segment that also holds live blocks.
struct Hole {
  uint64_t addr = 0, size = 0;
  uint64_t segment_addr = 0, segment_size = 0;
  double segment_utilization = 0;
};

struct SegmentUse {
  uint64_t addr = 0, size = 0;
  Pool pool = Pool::kLarge;
  uint64_t allocated = 0, requested = 0;
  uint64_t blocks = 0, free_blocks = 0;
  double utilization = 0;  // allocated / size
};

struct Fragmentation {
  uint64_t peak_requested = 0, peak_allocated = 0, peak_reserved = 0;
  double efficiency = 0;  // peak requested / peak reserved
  uint64_t peak_reserved_event = 0;
  std::vector<MomentFigures> moments;   // at peak reserved (when its map was captured), at end
  std::vector<Hole> worst_holes;        // largest first, from the busiest map
  std::vector<SegmentUse> least_utilized;  // of segments holding live blocks, lowest utilization first
  uint64_t segments_total = 0;          // in that map
  uint64_t free_segments = 0, free_segment_bytes = 0;  // wholly free segments in that map
};

// What the recording allocator (PyTorch's, for a snapshot) did on the same trace.
struct NativeBaseline {
  uint64_t peak_requested = 0;
  std::optional<uint64_t> peak_reserved;
  double efficiency = 0;  // peak requested / native peak reserved (0 when unknown)
  uint64_t ooms = 0;
};

struct OomReport {
  uint64_t event = 0;
  int64_t time_us = 0;
  uint64_t size = 0, stream = 0;
  Usage usage;  // before the request
  uint64_t cached_free = 0, largest_free_block = 0, capacity = 0;
  std::string cause;  // "fragmentation", "capacity", "stream"
  bool recorded_failure = false;  // the request is one the recording failed too (its OOM event)
  std::vector<std::string> advice;
};

// Requests of [2^log2, 2^(log2+1)) bytes.
struct SizeBucket {
  int log2 = 0;
  uint64_t count = 0, bytes = 0;
};

struct SegmentMap {
  std::string title;  // "peak reserved", "OOM 1", "snapshot"
  uint64_t event = 0;
  Layout layout;
};

struct FragReport {
  RunFacts run;
  MemorySummary summary;
  Fragmentation frag;
  std::optional<NativeBaseline> native;
  std::vector<OomReport> ooms;
  // The requests the recording failed, as this replay made them again
  // (those it could not serve are also among `ooms`).
  std::vector<replay::FailedRequest> failed_requests;
  std::vector<replay::TimelinePoint> timeline;
  std::vector<SizeBucket> sizes;  // contiguous from the smallest bucket used to the largest
  std::vector<SegmentMap> maps;
  std::vector<std::string> advice;  // what to do, most important first
  // Who holds the memory: the live blocks by allocation site at peak
  // reserved and at each OOM (at the snapshot, for a static one); empty
  // when the trace records no stacks (has_stacks false).
  bool has_stacks = false;
  std::vector<SitesAt> sites;
  std::vector<PinsAt> pins;  // at peak reserved and at each OOM, where their pictures were captured
  // The recording's annotations and user metadata changes, in event order.
  std::vector<TimelineMark> marks;
};

// From a replay of `trace` (result.device names the device replayed).
// Throws Error(kInvalidArgument) when the trace lacks that device.
// Fragmentation figures, one column per moment (peak, end, snapshot).
std::vector<FigureRow> moment_rows(const Fragmentation& f);
// This replay against the recording allocator (report.native must be set).
std::vector<FigureRow> native_rows(const FragReport& report);

// Replays `options.device` of `trace` once more with the timeline and the
// segment maps the report needs, then builds the report; options.config is
// what the report says ran (report_options.config is ignored).
FragReport replay_and_report(const trace::Trace& trace, replay::ReplayOptions options,
                             const ReportOptions& report_options);

FragReport build_report(const trace::Trace& trace, const replay::ReplayResult& result,
                        const ReportOptions& options);

// The report of one device of a trace, as `hbmalloc report` and `diff` make
// it: a static snapshot's picture as it is, else a replay under `config` (a
// policy that reproduces the recording runs with the recording's settings).
FragReport report_of(const trace::Trace& trace, int device, const Config& config);

// From the segment picture of one device of a snapshot (segments_at_end),
// no replay. Throws Error(kInvalidArgument) naming trace.source when the
// device is missing, has no segment picture, or its blocks overlap or
// leave their segment.
FragReport build_static_report(const trace::Trace& trace, int device, const ReportOptions& options = {});

}  // namespace hbmalloc::report
