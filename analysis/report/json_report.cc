#include "report/json_report.h"

#include <utility>

#include "hbmalloc/error.hpp"
#include "report/json_fields.h"
#include "trace/json_input.h"

// Each struct's JSON is described once, below, in its own namespace (where
// nlohmann's argument-dependent lookup finds it); compact forms (arrays for
// what a long report repeats thousands of times) are written out by hand.

namespace hbmalloc {

using nlohmann::json;
using report::json_io::elements;
using report::json_io::fail;
using report::json_io::field;

void to_json(json& j, Pool p) { j = p == Pool::kSmall ? "small" : "large"; }
void from_json(const json& j, Pool& p) {
  if (j == "small") {
    p = Pool::kSmall;
  } else if (j == "large") {
    p = Pool::kLarge;
  } else {
    fail("expected \"small\" or \"large\"");
  }
}

// [current, peak, allocated, freed]
void to_json(json& j, const StatCounter& c) { j = json::array({c.current, c.peak, c.allocated, c.freed}); }
void from_json(const json& j, StatCounter& c) {
  elements(j, "[current, peak, allocated, freed]", c.current, c.peak, c.allocated, c.freed);
}

// A row's counters sit beside its name: {name, bytes, all, small_pool, large_pool}.
void to_json(json& j, const SummaryRow& r) {
  j = {{"name", r.name}, {"bytes", r.bytes}, {"all", r.stat.all}, {"small_pool", r.stat.small_pool},
       {"large_pool", r.stat.large_pool}};
}
void from_json(const json& j, SummaryRow& r) {
  field(j, "name", r.name);
  field(j, "bytes", r.bytes);
  field(j, "all", r.stat.all);
  field(j, "small_pool", r.stat.small_pool);
  field(j, "large_pool", r.stat.large_pool);
}

HBM_JSON_FIELDS(MemorySummary, has_history, rows, num_alloc_retries, num_ooms, num_device_alloc, num_device_free)

// [addr, size, requested, allocated]
void to_json(json& j, const BlockLayout& b) { j = json::array({b.addr, b.size, b.requested, b.allocated}); }
void from_json(const json& j, BlockLayout& b) {
  elements(j, "[addr, size, requested, allocated]", b.addr, b.size, b.requested, b.allocated);
}

// Renderers rely on a map tiling its segments, so a report that says
// otherwise is refused here rather than drawn wrong.
void to_json(json& j, const SegmentLayout& s) {
  j = {{"addr", s.addr}, {"size", s.size}, {"pool", s.pool}, {"stream", s.stream}, {"blocks", s.blocks}};
}
void from_json(const json& j, SegmentLayout& s) {
  field(j, "addr", s.addr);
  field(j, "size", s.size);
  field(j, "pool", s.pool);
  field(j, "stream", s.stream);
  if (s.size == 0 || s.addr > UINT64_MAX - s.size) fail("segment size is 0 or runs past the address space");
  field(j, "blocks", s.blocks);
  uint64_t cursor = s.addr;
  for (size_t i = 0; i < s.blocks.size(); ++i) {
    const BlockLayout& b = s.blocks[i];
    if (b.addr != cursor || b.size == 0 || b.size > s.addr + s.size - cursor)
      throw report::json_io::FieldError{".blocks[" + std::to_string(i) + "]", "blocks do not tile the segment"};
    cursor += b.size;
  }
  if (cursor != s.addr + s.size) fail("blocks do not cover the segment");
}

namespace replay {

HBM_JSON_FIELDS(FailedRequest, event, time_us, size, stream, served)

// [event, time_us, requested, allocated, reserved]: compact for long runs
void to_json(json& j, const TimelinePoint& p) {
  j = json::array({p.event, p.time_us, p.usage.requested, p.usage.allocated, p.usage.reserved});
}
void from_json(const json& j, TimelinePoint& p) {
  elements(j, "[event, time_us, requested, allocated, reserved]", p.event, p.time_us, p.usage.requested,
           p.usage.allocated, p.usage.reserved);
}

}  // namespace replay

namespace report {

namespace {

constexpr const char* kFormat = "hbmalloc-report";
constexpr int kVersion = 1;

}  // namespace

HBM_JSON_FIELDS(RunFacts, source, format, recorder, device, static_snapshot, policy, config, settings, capacity, events,
                allocs, frees, first_time_us, last_time_us, replay_seconds)
HBM_JSON_FIELDS(MomentFigures, moment, requested, allocated, reserved, cached_free, internal_fragmentation,
                inactive_split_bytes, largest_free_block, external_fragmentation, segments)
HBM_JSON_FIELDS(Hole, addr, size, segment_addr, segment_size, segment_utilization)
HBM_JSON_FIELDS(SegmentUse, addr, size, pool, allocated, requested, blocks, free_blocks, utilization)
HBM_JSON_FIELDS(Fragmentation, peak_requested, peak_allocated, peak_reserved, efficiency, peak_reserved_event, moments,
                worst_holes, least_utilized, segments_total, free_segments, free_segment_bytes)
HBM_JSON_FIELDS(NativeBaseline, peak_requested, peak_reserved, efficiency, ooms)

// The usage before the request sits beside the other figures.
void to_json(json& j, const OomReport& o) {
  j = {{"event", o.event},
       {"time_us", o.time_us},
       {"size", o.size},
       {"stream", o.stream},
       {"requested", o.usage.requested},
       {"allocated", o.usage.allocated},
       {"reserved", o.usage.reserved},
       {"cached_free", o.cached_free},
       {"largest_free_block", o.largest_free_block},
       {"capacity", o.capacity},
       {"cause", o.cause},
       {"recorded_failure", o.recorded_failure},
       {"advice", o.advice}};
}
void from_json(const json& j, OomReport& o) {
  field(j, "event", o.event);
  field(j, "time_us", o.time_us);
  field(j, "size", o.size);
  field(j, "stream", o.stream);
  field(j, "requested", o.usage.requested);
  field(j, "allocated", o.usage.allocated);
  field(j, "reserved", o.usage.reserved);
  field(j, "cached_free", o.cached_free);
  field(j, "largest_free_block", o.largest_free_block);
  field(j, "capacity", o.capacity);
  field(j, "cause", o.cause);
  // Reports saved before failed requests were replayed under every policy lack it.
  json_io::optional_field(j, "recorded_failure", o.recorded_failure);
  field(j, "advice", o.advice);
}

HBM_JSON_FIELDS(Site, where, bytes, blocks, stack)
HBM_JSON_FIELDS(SitesAt, moment, event, live_bytes, live_blocks, sites)
HBM_JSON_FIELDS(Pin, where, pinned, blocks, live, segments)
HBM_JSON_FIELDS(PinsAt, moment, pinned, sites)
HBM_JSON_FIELDS(TimelineMark, event, time_us, kind, text)

void to_json(json& j, const SizeBucket& b) { j = {{"log2", b.log2}, {"count", b.count}, {"bytes", b.bytes}}; }
void from_json(const json& j, SizeBucket& b) {
  field(j, "log2", b.log2);
  if (b.log2 < 0 || b.log2 > 63) throw json_io::FieldError{".log2", "expected 0..63"};
  field(j, "count", b.count);
  field(j, "bytes", b.bytes);
}

void to_json(json& j, const SegmentMap& m) { j = {{"title", m.title}, {"event", m.event}, {"segments", m.layout}}; }
void from_json(const json& j, SegmentMap& m) {
  field(j, "title", m.title);
  field(j, "event", m.event);
  field(j, "segments", m.layout);
}

void to_json(json& j, const FragReport& r) {
  j = {{"format", kFormat},
       {"version", kVersion},
       {"run", r.run},
       {"summary", r.summary},
       {"fragmentation", r.frag},
       {"ooms", r.ooms},
       {"failed_requests", r.failed_requests},
       {"timeline", r.timeline},
       {"sizes", r.sizes},
       {"maps", r.maps},
       {"advice", r.advice},
       {"has_stacks", r.has_stacks},
       {"sites", r.sites},
       {"pins", r.pins},
       {"marks", r.marks}};
  json_io::write(j["native"], r.native);
}
void from_json(const json& j, FragReport& r) {
  int version = 0;
  field(j, "version", version);
  if (version != kVersion)
    throw json_io::FieldError{".version", "this hbmalloc reads version " + std::to_string(kVersion)};
  field(j, "run", r.run);
  if (r.run.device < 0 || r.run.device > 1 << 20) throw json_io::FieldError{".run.device", "out of range"};
  field(j, "summary", r.summary);
  field(j, "fragmentation", r.frag);
  field(j, "native", r.native);
  field(j, "ooms", r.ooms);
  json_io::optional_field(j, "failed_requests", r.failed_requests);  // reports saved before it was kept
  field(j, "timeline", r.timeline);
  field(j, "sizes", r.sizes);
  field(j, "maps", r.maps);
  field(j, "advice", r.advice);
  // Reports saved before stacks were kept lack these.
  json_io::optional_field(j, "has_stacks", r.has_stacks);
  json_io::optional_field(j, "sites", r.sites);
  json_io::optional_field(j, "pins", r.pins);
  json_io::optional_field(j, "marks", r.marks);  // reports saved before annotations were read lack them
}

bool is_report_json(const json& j) {
  if (!j.is_object()) return false;
  auto it = j.find("format");
  return it != j.end() && it->is_string() && it->get<std::string>() == kFormat;
}

FragReport report_from_json(const json& j, const std::string& source) {
  const auto bad = [&](const std::string& path, const std::string& what) {
    return Error(ErrorCode::kInvalidArgument, source + ": report field " + path + ": " + what);
  };
  if (!is_report_json(j)) throw bad("format", std::string("expected \"") + kFormat + "\" (not an hbmalloc report)");
  FragReport r;
  try {
    from_json(j, r);
  } catch (const json_io::FieldError& e) {
    throw bad(e.where(), e.what);
  }
  return r;
}

FragReport report_from_json_text(std::string_view text, const std::string& source) {
  if (trace::json_nests_deeper_than(text))
    throw Error(ErrorCode::kInvalidArgument, source + ": JSON nested too deep (refused)");
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(ErrorCode::kInvalidArgument, source + ": not valid JSON");
  return report_from_json(j, source);
}

}  // namespace report
}  // namespace hbmalloc
