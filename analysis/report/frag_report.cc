// Building a FragReport from a replay result, or from a static snapshot.
#include "report/frag_report.h"

#include <algorithm>

#include "hbmalloc/error.hpp"
#include "report/advice.h"
#include "report/format.h"
#include "report/layout_figures.h"
#include "report/size_histogram.h"
#include "report/snapshot_layout.h"

namespace hbmalloc::report {

namespace {

const trace::DeviceTrace& device_of(const trace::Trace& trace, int device) {
  const trace::DeviceTrace* d = trace.device(device);
  if (d == nullptr)
    throw Error(ErrorCode::kInvalidArgument, trace.source + ": the trace has no device " + std::to_string(device));
  return *d;
}

RunFacts facts_of(const trace::Trace& trace, const trace::DeviceTrace& d) {
  RunFacts f;
  f.source = trace.source;
  f.format = trace.format;
  f.recorder = trace.recorder;
  f.device = d.device;
  f.settings = trace.settings;
  f.capacity = trace.capacity;
  const trace::TraceFigures figures = trace::figures_of(d);
  f.events = figures.events;
  f.allocs = figures.allocs;
  f.frees = figures.frees;
  f.first_time_us = figures.first_time_us;
  f.last_time_us = figures.last_time_us;
  return f;
}


MomentFigures moment_of_stats(const Stats& s, std::string moment) {
  MomentFigures m;
  m.moment = std::move(moment);
  m.requested = uint64_t(std::max<int64_t>(0, s.requested_bytes.all.current));
  m.allocated = uint64_t(std::max<int64_t>(0, s.allocated_bytes.all.current));
  m.reserved = uint64_t(std::max<int64_t>(0, s.reserved_bytes.all.current));
  m.cached_free = m.reserved > m.allocated ? m.reserved - m.allocated : 0;
  m.internal_fragmentation = m.allocated > m.requested ? m.allocated - m.requested : 0;
  m.inactive_split_bytes = uint64_t(std::max<int64_t>(0, s.inactive_split_bytes.all.current));
  m.largest_free_block = uint64_t(std::max<int64_t>(0, s.largest_free_block));
  m.external_fragmentation = s.external_fragmentation;
  m.segments = uint64_t(std::max<int64_t>(0, s.segment.all.current));
  return m;
}

// At most `points` samples; each keeps the maxima of the samples it stands for,
// so no peak is lost.
std::vector<replay::TimelinePoint> downsample(const std::vector<replay::TimelinePoint>& in, size_t points) {
  if (points == 0 || in.size() <= points) return in;
  std::vector<replay::TimelinePoint> out;
  size_t per = (in.size() + points - 1) / points;
  for (size_t i = 0; i < in.size(); i += per) {
    replay::TimelinePoint p = in[i];
    for (size_t j = i + 1; j < std::min(in.size(), i + per); ++j) {
      p.usage.requested = std::max(p.usage.requested, in[j].usage.requested);
      p.usage.allocated = std::max(p.usage.allocated, in[j].usage.allocated);
      p.usage.reserved = std::max(p.usage.reserved, in[j].usage.reserved);
    }
    out.push_back(p);
  }
  return out;
}

// Holes and the least utilized segments, read off one map.
void describe_map(Fragmentation& f, const Layout& layout, const ReportOptions& options) {
  f.worst_holes = worst_holes(layout, options.worst_holes);
  f.least_utilized = least_utilized(layout, options.segments_listed);
  f.segments_total = layout.size();
  for (const SegmentLayout& seg : layout)
    if (use_of(seg).allocated == 0) ++f.free_segments, f.free_segment_bytes += seg.size;
}

}  // namespace

FragReport build_report(const trace::Trace& trace, const replay::ReplayResult& result, const ReportOptions& options) {
  const trace::DeviceTrace& d = device_of(trace, result.device);
  FragReport r;
  r.run = facts_of(trace, d);
  r.run.policy = options.config.policy;
  Config ran = options.config;  // as the replay ran it: always on the sim backend
  ran.backend = "sim";
  ran.capacity = result.capacity;
  r.run.config = ran.to_string();
  r.run.capacity = result.capacity ? std::optional<uint64_t>(result.capacity) : std::nullopt;  // 0: unlimited
  r.run.events = result.events;
  r.run.allocs = result.allocs;
  r.run.frees = result.frees;
  r.run.replay_seconds = result.seconds;
  r.summary = summary_of(result.final_stats, true);

  Fragmentation& f = r.frag;
  f.peak_requested = result.peak_requested;
  f.peak_allocated = result.peak_allocated;
  f.peak_reserved = result.peak_reserved;
  f.efficiency = result.efficiency;
  f.peak_reserved_event = result.peak_reserved_event;
  if (!result.layout_at_peak.empty()) {
    f.moments.push_back(moment_of(result.layout_at_peak, "peak reserved"));
    r.maps.push_back({"peak reserved", result.peak_reserved_event, result.layout_at_peak});
  }
  f.moments.push_back(moment_of_stats(result.final_stats, "end"));

  NativeBaseline native;
  native.peak_requested = result.native.peak_requested;
  native.peak_reserved = result.native.native_peak_reserved;
  native.efficiency = result.native.native_efficiency().value_or(0.0);
  native.ooms = result.native.native_ooms;
  r.native = native;

  for (size_t i = 0; i < result.ooms.size(); ++i) {
    const replay::OomRecord& oom = result.ooms[i];
    r.ooms.push_back(explain_oom(oom, options.min_capacity));
    if (!oom.layout.empty()) r.maps.push_back({"OOM " + std::to_string(i + 1), oom.event, oom.layout});
  }
  r.failed_requests = result.failed_requests;
  r.marks = timeline_marks(trace, d);
  r.has_stacks = !trace.stacks.empty();
  if (r.has_stacks) {
    r.sites.push_back(sites_at(trace, d, result.peak_reserved_event + 1, "peak reserved"));
    if (!result.layout_at_peak.empty())
      r.pins.push_back(pins_at(trace, d, result.layout_at_peak, result.peak_block_ids, "peak reserved"));
    // What the replay held when each request failed: not the blocks it
    // failed before, nor, during its start, the start's blocks not reached.
    std::vector<char> failed(d.block_count, 0);
    for (size_t i = 0; i < result.ooms.size() && i < options.oom_details; ++i) {
      const replay::OomRecord& oom = result.ooms[i];
      const bool at_start = oom.block != trace::kNoBlock && oom.block < d.live_at_start.size();
      r.sites.push_back(sites_at(trace, d, at_start ? 0 : oom.event, "OOM " + std::to_string(i + 1),
                                 NotAllocated{&failed, at_start ? oom.block : trace::kNoBlock}));
      if (!oom.layout.empty())
        r.pins.push_back(pins_at(trace, d, oom.layout, oom.block_ids, "OOM " + std::to_string(i + 1)));
      if (oom.block != trace::kNoBlock && oom.block < failed.size()) failed[oom.block] = 1;
    }
  }
  // Holes from the peak map, or the first OOM's when the peak was not captured.
  if (!r.maps.empty()) describe_map(f, r.maps.front().layout, options);

  r.timeline = downsample(result.timeline, options.timeline_points);
  SizeHistogram sizes;
  for (const trace::Event& e : d.events)
    if (e.action == trace::Action::kAlloc) sizes.add(e.size);
  r.sizes = sizes.buckets();
  r.advice = what_to_do(r, options.min_capacity);
  return r;
}

FragReport report_of(const trace::Trace& t, int device, const Config& config) {
  ReportOptions ro;
  ro.config = config;
  if (!t.has_history) return build_static_report(t, device, ro);
  replay::ReplayOptions o;
  o.config = config;
  o.device = device;
  replay::as_recorded(t, o);  // cca: the recording's own settings and device
  return replay_and_report(t, o, ro);
}

FragReport replay_and_report(const trace::Trace& trace, replay::ReplayOptions options,
                             const ReportOptions& report_options) {
  ReportOptions ro = report_options;
  ro.config = options.config;
  options.timeline_points = ro.timeline_points;
  options.capture_layouts = true;
  options.oom_layouts = ro.oom_details;
  return build_report(trace, replay::replay(trace, options), ro);
}

FragReport build_static_report(const trace::Trace& trace, int device, const ReportOptions& options) {
  const trace::DeviceTrace& d = device_of(trace, device);
  if (!d.has_segment_picture)
    throw Error(ErrorCode::kInvalidArgument,
                trace.source + ": device " + std::to_string(device) + " has no segment picture to report on");
  Layout layout = layout_of_snapshot(trace.source, d);

  FragReport r;
  r.run = facts_of(trace, d);
  r.run.static_snapshot = true;

  // The statistics of this one moment, read off the picture.
  Stats s;
  auto set = [](StatArray& a, Pool pool, int64_t value) {
    StatCounter& c = a.of(pool);
    c.current = c.peak = c.allocated = c.current + value;
    StatCounter& all = a.all;
    all.current = all.peak = all.allocated = all.current + value;
  };
  for (const trace::SegmentInfo& seg : d.segments_at_end)
    for (const trace::BlockInfo& b : seg.blocks)
      if (uint64_t size = occupied_bytes(b); size > 0 && b.state == trace::BlockState::kActivePendingFree) {
        // Pending blocks are active but no longer allocated.
        Pool pool = seg.small_pool ? Pool::kSmall : Pool::kLarge;
        set(s.allocation, pool, -1);
        set(s.allocated_bytes, pool, -int64_t(size));
      }
  for (const SegmentLayout& seg : layout) {
    SegmentUse u = use_of(seg);
    set(s.segment, seg.pool, 1);
    set(s.reserved_bytes, seg.pool, int64_t(seg.size));
    set(s.allocation, seg.pool, int64_t(u.blocks - u.free_blocks));
    set(s.active, seg.pool, int64_t(u.blocks - u.free_blocks));
    set(s.allocated_bytes, seg.pool, int64_t(u.allocated));
    set(s.active_bytes, seg.pool, int64_t(u.allocated));
    set(s.requested_bytes, seg.pool, int64_t(u.requested));
    if (u.allocated == 0) continue;
    // What empty_cache would leave, as the "snapshot" moment counts it.
    for (const BlockLayout& b : seg.blocks)
      if (uint64_t kept = b.allocated ? 0 : unreleasable_bytes(seg, b); kept > 0) {
        set(s.inactive_split, seg.pool, 1);
        set(s.inactive_split_bytes, seg.pool, int64_t(kept));
      }
  }
  r.summary = summary_of(s, false);

  Fragmentation& f = r.frag;
  f.moments.push_back(moment_of(layout, "snapshot"));
  const MomentFigures& m = f.moments.front();
  f.peak_requested = m.requested;
  f.peak_allocated = m.allocated;
  f.peak_reserved = m.reserved;
  f.efficiency = m.reserved ? double(m.requested) / double(m.reserved) : 0.0;
  describe_map(f, layout, options);

  SizeHistogram sizes;
  for (const SegmentLayout& seg : layout)
    for (const BlockLayout& b : seg.blocks)
      if (b.allocated) sizes.add(b.requested ? b.requested : b.size);
  r.sizes = sizes.buckets();
  r.marks = timeline_marks(trace, d);
  r.has_stacks = !trace.stacks.empty();
  if (r.has_stacks) r.sites.push_back(sites_of_picture(trace, d, "snapshot"));
  r.maps.push_back({"snapshot", 0, std::move(layout)});
  r.advice = what_to_do(r, options.min_capacity);
  return r;
}

std::vector<FigureRow> moment_rows(const Fragmentation& f) {
  auto row = [&](std::string name, std::string meaning, auto value) {
    FigureRow r{std::move(name), std::move(meaning), {}};
    for (const MomentFigures& m : f.moments) r.values.push_back(value(m));
    return r;
  };
  return {
      row("requested", "", [](const MomentFigures& m) { return format_bytes(m.requested); }),
      row("allocated", "", [](const MomentFigures& m) { return format_bytes(m.allocated); }),
      row("reserved", "", [](const MomentFigures& m) { return format_bytes(m.reserved); }),
      row("internal fragmentation", "(allocated - requested)",
          [](const MomentFigures& m) { return format_bytes(m.internal_fragmentation); }),
      row("cached free", "(reserved - allocated)", [](const MomentFigures& m) { return format_bytes(m.cached_free); }),
      row("inactive split", "(free in segments in use)",
          [](const MomentFigures& m) { return format_bytes(m.inactive_split_bytes); }),
      row("largest free block", "", [](const MomentFigures& m) { return format_bytes(m.largest_free_block); }),
      row("external fragmentation", "(1 - largest free / cached free)",
          [](const MomentFigures& m) { return percent(m.external_fragmentation); }),
      row("segments", "", [](const MomentFigures& m) { return std::to_string(m.segments); }),
  };
}

std::vector<FigureRow> native_rows(const FragReport& r) {
  const NativeBaseline& n = *r.native;
  const Fragmentation& f = r.frag;
  return {
      {"peak requested", "", {format_bytes(f.peak_requested), format_bytes(n.peak_requested)}},
      {"peak reserved", "",
       {format_bytes(f.peak_reserved), n.peak_reserved ? format_bytes(*n.peak_reserved) : std::string("not in the trace")}},
      {"efficiency", "(peak requested / peak reserved)",
       {percent(f.efficiency), n.peak_reserved ? percent(n.efficiency) : std::string("-")}},
      {"OOMs", "", {std::to_string(r.ooms.size()), std::to_string(n.ooms)}},
  };
}

}  // namespace hbmalloc::report
