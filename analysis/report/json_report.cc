#include "report/json_report.h"

#include "trace/json_input.h"

#include <utility>

#include "hbmalloc/error.hpp"

namespace hbmalloc::report {

using nlohmann::json;

namespace {

constexpr const char* kFormat = "hbmalloc-report";
constexpr int kVersion = 1;

const char* pool_name(Pool p) { return p == Pool::kSmall ? "small" : "large"; }

json counter_json(const StatCounter& c) { return json::array({c.current, c.peak, c.allocated, c.freed}); }

json moment_json(const MomentFigures& m) {
  return {{"moment", m.moment},
          {"requested", m.requested},
          {"allocated", m.allocated},
          {"reserved", m.reserved},
          {"cached_free", m.cached_free},
          {"internal_fragmentation", m.internal_fragmentation},
          {"inactive_split_bytes", m.inactive_split_bytes},
          {"largest_free_block", m.largest_free_block},
          {"external_fragmentation", m.external_fragmentation},
          {"segments", m.segments}};
}

json layout_json(const Layout& layout) {
  json segments = json::array();
  for (const SegmentLayout& s : layout) {
    json blocks = json::array();
    for (const BlockLayout& b : s.blocks) blocks.push_back(json::array({b.addr, b.size, b.requested, b.allocated}));
    segments.push_back(
        {{"addr", s.addr}, {"size", s.size}, {"pool", pool_name(s.pool)}, {"stream", s.stream}, {"blocks", blocks}});
  }
  return segments;
}

template <typename T>
json optional_json(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

// Reads fields with a path for the error message: "run.capacity: expected ...".
class Reader {
 public:
  explicit Reader(const std::string& source) : source_(source) {}

  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw Error(ErrorCode::kInvalidArgument, source_ + ": report field " + path + ": " + what);
  }
  const json& field(const json& obj, const std::string& path, const char* key) const {
    if (!obj.is_object()) fail(path, "expected an object");
    auto it = obj.find(key);
    if (it == obj.end()) fail(join(path, key), "missing");
    return *it;
  }
  const json& object(const json& obj, const std::string& path, const char* key) const {
    const json& v = field(obj, path, key);
    if (!v.is_object()) fail(join(path, key), "expected an object");
    return v;
  }
  const json& array(const json& obj, const std::string& path, const char* key) const {
    return array(field(obj, path, key), join(path, key));
  }
  const json& array(const json& v, const std::string& path) const {
    if (!v.is_array()) fail(path, "expected an array");
    return v;
  }
  uint64_t u64(const json& v, const std::string& path) const {
    // Built in code, a small positive number may be stored signed.
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer() && v.get<int64_t>() >= 0) return uint64_t(v.get<int64_t>());
    fail(path, "expected a non-negative integer");
  }
  int64_t i64(const json& v, const std::string& path) const {
    if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)))
      fail(path, "expected an integer");
    return v.get<int64_t>();
  }
  double number(const json& v, const std::string& path) const {
    if (!v.is_number()) fail(path, "expected a number");
    return v.get<double>();
  }
  bool boolean(const json& v, const std::string& path) const {
    if (!v.is_boolean()) fail(path, "expected true or false");
    return v.get<bool>();
  }
  std::string string(const json& v, const std::string& path) const {
    if (!v.is_string()) fail(path, "expected a string");
    return v.get<std::string>();
  }
  uint64_t u64(const json& obj, const std::string& path, const char* key) const {
    return u64(field(obj, path, key), join(path, key));
  }
  int64_t i64(const json& obj, const std::string& path, const char* key) const {
    return i64(field(obj, path, key), join(path, key));
  }
  double number(const json& obj, const std::string& path, const char* key) const {
    return number(field(obj, path, key), join(path, key));
  }
  bool boolean(const json& obj, const std::string& path, const char* key) const {
    return boolean(field(obj, path, key), join(path, key));
  }
  std::string string(const json& obj, const std::string& path, const char* key) const {
    return string(field(obj, path, key), join(path, key));
  }
  std::optional<uint64_t> optional_u64(const json& obj, const std::string& path, const char* key) const {
    const json& v = field(obj, path, key);
    if (v.is_null()) return std::nullopt;
    return u64(v, join(path, key));
  }
  Pool pool(const json& obj, const std::string& path, const char* key) const {
    std::string p = string(obj, path, key);
    if (p == "small") return Pool::kSmall;
    if (p == "large") return Pool::kLarge;
    fail(join(path, key), "expected \"small\" or \"large\"");
  }
  std::vector<std::string> strings(const json& obj, const std::string& path, const char* key) const {
    std::vector<std::string> out;
    const json& a = array(obj, path, key);
    for (size_t i = 0; i < a.size(); ++i) out.push_back(string(a[i], index(join(path, key), i)));
    return out;
  }

  static std::string join(const std::string& path, const char* key) { return path.empty() ? key : path + "." + key; }
  static std::string index(const std::string& path, size_t i) { return path + "[" + std::to_string(i) + "]"; }

 private:
  const std::string& source_;
};

StatCounter read_counter(const Reader& in, const json& v, const std::string& path) {
  const json& a = in.array(v, path);
  if (a.size() != 4) in.fail(path, "expected [current, peak, allocated, freed]");
  return {in.i64(a[0], path), in.i64(a[1], path), in.i64(a[2], path), in.i64(a[3], path)};
}

MomentFigures read_moment(const Reader& in, const json& v, const std::string& p) {
  MomentFigures m;
  m.moment = in.string(v, p, "moment");
  m.requested = in.u64(v, p, "requested");
  m.allocated = in.u64(v, p, "allocated");
  m.reserved = in.u64(v, p, "reserved");
  m.cached_free = in.u64(v, p, "cached_free");
  m.internal_fragmentation = in.u64(v, p, "internal_fragmentation");
  m.inactive_split_bytes = in.u64(v, p, "inactive_split_bytes");
  m.largest_free_block = in.u64(v, p, "largest_free_block");
  m.external_fragmentation = in.number(v, p, "external_fragmentation");
  m.segments = in.u64(v, p, "segments");
  return m;
}

// Renderers rely on a map tiling its segments, so a report that says
// otherwise is refused here rather than drawn wrong.
Layout read_layout(const Reader& in, const json& v, const std::string& path) {
  Layout layout;
  const json& segments = in.array(v, path);
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string p = Reader::index(path, i);
    SegmentLayout s;
    s.addr = in.u64(segments[i], p, "addr");
    s.size = in.u64(segments[i], p, "size");
    s.pool = in.pool(segments[i], p, "pool");
    s.stream = in.u64(segments[i], p, "stream");
    if (s.size == 0 || s.addr > UINT64_MAX - s.size) in.fail(p, "segment size is 0 or runs past the address space");
    uint64_t cursor = s.addr;
    const json& blocks = in.array(segments[i], p, "blocks");
    for (size_t j = 0; j < blocks.size(); ++j) {
      const std::string bp = Reader::index(p + ".blocks", j);
      const json& b = in.array(blocks[j], bp);
      if (b.size() != 4) in.fail(bp, "expected [addr, size, requested, allocated]");
      BlockLayout block{in.u64(b[0], bp), in.u64(b[1], bp), in.u64(b[2], bp), in.boolean(b[3], bp)};
      if (block.addr != cursor || block.size == 0 || block.size > s.addr + s.size - cursor)
        in.fail(bp, "blocks do not tile the segment");
      cursor += block.size;
      s.blocks.push_back(block);
    }
    if (cursor != s.addr + s.size) in.fail(p, "blocks do not cover the segment");
    layout.push_back(std::move(s));
  }
  return layout;
}

}  // namespace

json to_json(const FragReport& r) {
  json j;
  j["format"] = kFormat;
  j["version"] = kVersion;

  const RunFacts& run = r.run;
  json settings = json::array();
  for (const auto& [k, v] : run.settings) settings.push_back(json::array({k, v}));
  j["run"] = {{"source", run.source},
              {"format", run.format},
              {"recorder", run.recorder},
              {"device", run.device},
              {"static_snapshot", run.static_snapshot},
              {"policy", run.policy},
              {"config", run.config},
              {"settings", settings},
              {"capacity", optional_json(run.capacity)},
              {"events", run.events},
              {"allocs", run.allocs},
              {"frees", run.frees},
              {"first_time_us", run.first_time_us},
              {"last_time_us", run.last_time_us},
              {"replay_seconds", run.replay_seconds}};

  json rows = json::array();
  for (const SummaryRow& row : r.summary.rows)
    rows.push_back({{"name", row.name},
                    {"bytes", row.bytes},
                    {"all", counter_json(row.stat.all)},
                    {"small_pool", counter_json(row.stat.small_pool)},
                    {"large_pool", counter_json(row.stat.large_pool)}});
  j["summary"] = {{"has_history", r.summary.has_history},
                  {"rows", rows},
                  {"num_alloc_retries", r.summary.num_alloc_retries},
                  {"num_ooms", r.summary.num_ooms},
                  {"num_device_alloc", r.summary.num_device_alloc},
                  {"num_device_free", r.summary.num_device_free}};

  const Fragmentation& f = r.frag;
  json moments = json::array(), holes = json::array(), uses = json::array();
  for (const MomentFigures& m : f.moments) moments.push_back(moment_json(m));
  for (const Hole& h : f.worst_holes)
    holes.push_back({{"addr", h.addr},
                     {"size", h.size},
                     {"segment_addr", h.segment_addr},
                     {"segment_size", h.segment_size},
                     {"segment_utilization", h.segment_utilization}});
  for (const SegmentUse& u : f.least_utilized)
    uses.push_back({{"addr", u.addr},
                    {"size", u.size},
                    {"pool", pool_name(u.pool)},
                    {"allocated", u.allocated},
                    {"requested", u.requested},
                    {"blocks", u.blocks},
                    {"free_blocks", u.free_blocks},
                    {"utilization", u.utilization}});
  j["fragmentation"] = {{"peak_requested", f.peak_requested},
                        {"peak_allocated", f.peak_allocated},
                        {"peak_reserved", f.peak_reserved},
                        {"efficiency", f.efficiency},
                        {"peak_reserved_event", f.peak_reserved_event},
                        {"moments", moments},
                        {"worst_holes", holes},
                        {"least_utilized", uses},
                        {"segments_total", f.segments_total},
                        {"free_segments", f.free_segments},
                        {"free_segment_bytes", f.free_segment_bytes}};

  if (r.native) {
    const NativeBaseline& n = *r.native;
    j["native"] = {{"peak_requested", n.peak_requested},
                   {"peak_reserved", optional_json(n.peak_reserved)},
                   {"efficiency", n.efficiency},
                   {"ooms", n.ooms}};
  } else {
    j["native"] = nullptr;
  }

  json ooms = json::array();
  for (const OomReport& o : r.ooms)
    ooms.push_back({{"event", o.event},
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
                    {"advice", o.advice}});
  j["ooms"] = ooms;

  j["failed_requests"] = failed_requests_json(r.failed_requests);

  json timeline = json::array();  // [event, time_us, requested, allocated, reserved]: compact for long runs
  for (const replay::TimelinePoint& p : r.timeline)
    timeline.push_back(json::array({p.event, p.time_us, p.usage.requested, p.usage.allocated, p.usage.reserved}));
  j["timeline"] = timeline;

  json sizes = json::array();
  for (const SizeBucket& b : r.sizes) sizes.push_back({{"log2", b.log2}, {"count", b.count}, {"bytes", b.bytes}});
  j["sizes"] = sizes;

  json maps = json::array();
  for (const SegmentMap& m : r.maps)
    maps.push_back({{"title", m.title}, {"event", m.event}, {"segments", layout_json(m.layout)}});
  j["maps"] = maps;
  j["advice"] = r.advice;
  return j;
}

bool is_report_json(const json& j) {
  if (!j.is_object()) return false;
  auto it = j.find("format");
  return it != j.end() && it->is_string() && it->get<std::string>() == kFormat;
}

FragReport report_from_json(const json& j, const std::string& source) {
  Reader in(source);
  if (!is_report_json(j)) in.fail("format", std::string("expected \"") + kFormat + "\" (not an hbmalloc report)");
  if (in.i64(j, "", "version") != kVersion)
    in.fail("version", "this hbmalloc reads version " + std::to_string(kVersion));
  FragReport r;

  const json& run = in.object(j, "", "run");
  RunFacts& f = r.run;
  f.source = in.string(run, "run", "source");
  f.format = in.string(run, "run", "format");
  f.recorder = in.string(run, "run", "recorder");
  int64_t device = in.i64(run, "run", "device");
  if (device < 0 || device > 1 << 20) in.fail("run.device", "out of range");
  f.device = int(device);
  f.static_snapshot = in.boolean(run, "run", "static_snapshot");
  f.policy = in.string(run, "run", "policy");
  f.config = in.string(run, "run", "config");
  const json& settings = in.array(run, "run", "settings");
  for (size_t i = 0; i < settings.size(); ++i) {
    const std::string p = Reader::index("run.settings", i);
    const json& kv = in.array(settings[i], p);
    if (kv.size() != 2) in.fail(p, "expected [key, value]");
    f.settings.emplace_back(in.string(kv[0], p), in.string(kv[1], p));
  }
  f.capacity = in.optional_u64(run, "run", "capacity");
  f.events = in.u64(run, "run", "events");
  f.allocs = in.u64(run, "run", "allocs");
  f.frees = in.u64(run, "run", "frees");
  f.first_time_us = in.i64(run, "run", "first_time_us");
  f.last_time_us = in.i64(run, "run", "last_time_us");
  f.replay_seconds = in.number(run, "run", "replay_seconds");

  const json& summary = in.object(j, "", "summary");
  r.summary.has_history = in.boolean(summary, "summary", "has_history");
  const json& rows = in.array(summary, "summary", "rows");
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string p = Reader::index("summary.rows", i);
    SummaryRow row;
    row.name = in.string(rows[i], p, "name");
    row.bytes = in.boolean(rows[i], p, "bytes");
    row.stat.all = read_counter(in, in.field(rows[i], p, "all"), p + ".all");
    row.stat.small_pool = read_counter(in, in.field(rows[i], p, "small_pool"), p + ".small_pool");
    row.stat.large_pool = read_counter(in, in.field(rows[i], p, "large_pool"), p + ".large_pool");
    r.summary.rows.push_back(std::move(row));
  }
  r.summary.num_alloc_retries = in.i64(summary, "summary", "num_alloc_retries");
  r.summary.num_ooms = in.i64(summary, "summary", "num_ooms");
  r.summary.num_device_alloc = in.i64(summary, "summary", "num_device_alloc");
  r.summary.num_device_free = in.i64(summary, "summary", "num_device_free");

  const std::string fp = "fragmentation";
  const json& frag = in.object(j, "", "fragmentation");
  Fragmentation& fr = r.frag;
  fr.peak_requested = in.u64(frag, fp, "peak_requested");
  fr.peak_allocated = in.u64(frag, fp, "peak_allocated");
  fr.peak_reserved = in.u64(frag, fp, "peak_reserved");
  fr.efficiency = in.number(frag, fp, "efficiency");
  fr.peak_reserved_event = in.u64(frag, fp, "peak_reserved_event");
  const json& moments = in.array(frag, fp, "moments");
  for (size_t i = 0; i < moments.size(); ++i)
    fr.moments.push_back(read_moment(in, moments[i], Reader::index(fp + ".moments", i)));
  const json& holes = in.array(frag, fp, "worst_holes");
  for (size_t i = 0; i < holes.size(); ++i) {
    const std::string p = Reader::index(fp + ".worst_holes", i);
    fr.worst_holes.push_back({in.u64(holes[i], p, "addr"), in.u64(holes[i], p, "size"),
                              in.u64(holes[i], p, "segment_addr"), in.u64(holes[i], p, "segment_size"),
                              in.number(holes[i], p, "segment_utilization")});
  }
  const json& uses = in.array(frag, fp, "least_utilized");
  for (size_t i = 0; i < uses.size(); ++i) {
    const std::string p = Reader::index(fp + ".least_utilized", i);
    SegmentUse u;
    u.addr = in.u64(uses[i], p, "addr");
    u.size = in.u64(uses[i], p, "size");
    u.pool = in.pool(uses[i], p, "pool");
    u.allocated = in.u64(uses[i], p, "allocated");
    u.requested = in.u64(uses[i], p, "requested");
    u.blocks = in.u64(uses[i], p, "blocks");
    u.free_blocks = in.u64(uses[i], p, "free_blocks");
    u.utilization = in.number(uses[i], p, "utilization");
    fr.least_utilized.push_back(u);
  }
  fr.segments_total = in.u64(frag, fp, "segments_total");
  fr.free_segments = in.u64(frag, fp, "free_segments");
  fr.free_segment_bytes = in.u64(frag, fp, "free_segment_bytes");

  const json& native = in.field(j, "", "native");
  if (!native.is_null()) {
    NativeBaseline n;
    n.peak_requested = in.u64(native, "native", "peak_requested");
    n.peak_reserved = in.optional_u64(native, "native", "peak_reserved");
    n.efficiency = in.number(native, "native", "efficiency");
    n.ooms = in.u64(native, "native", "ooms");
    r.native = n;
  }

  const json& ooms = in.array(j, "", "ooms");
  for (size_t i = 0; i < ooms.size(); ++i) {
    const std::string p = Reader::index("ooms", i);
    const json& o = ooms[i];
    OomReport rep;
    rep.event = in.u64(o, p, "event");
    rep.time_us = in.i64(o, p, "time_us");
    rep.size = in.u64(o, p, "size");
    rep.stream = in.u64(o, p, "stream");
    rep.usage = {in.u64(o, p, "requested"), in.u64(o, p, "allocated"), in.u64(o, p, "reserved")};
    rep.cached_free = in.u64(o, p, "cached_free");
    rep.largest_free_block = in.u64(o, p, "largest_free_block");
    rep.capacity = in.u64(o, p, "capacity");
    rep.cause = in.string(o, p, "cause");
    // Reports saved before failed requests were replayed under every policy lack it.
    if (o.is_object() && o.contains("recorded_failure")) rep.recorded_failure = in.boolean(o, p, "recorded_failure");
    rep.advice = in.strings(o, p, "advice");
    r.ooms.push_back(std::move(rep));
  }

  if (j.contains("failed_requests")) {
    const json& failed = in.array(j, "", "failed_requests");
    for (size_t i = 0; i < failed.size(); ++i) {
      const std::string p = Reader::index("failed_requests", i);
      const json& f = failed[i];
      r.failed_requests.push_back({in.u64(f, p, "event"), in.u64(f, p, "size"), in.u64(f, p, "stream"),
                                   in.i64(f, p, "time_us"), in.boolean(f, p, "served")});
    }
  }

  const json& timeline = in.array(j, "", "timeline");
  for (size_t i = 0; i < timeline.size(); ++i) {
    const std::string p = Reader::index("timeline", i);
    const json& t = in.array(timeline[i], p);
    if (t.size() != 5) in.fail(p, "expected [event, time_us, requested, allocated, reserved]");
    r.timeline.push_back({in.u64(t[0], p), in.i64(t[1], p), {in.u64(t[2], p), in.u64(t[3], p), in.u64(t[4], p)}});
  }

  const json& sizes = in.array(j, "", "sizes");
  for (size_t i = 0; i < sizes.size(); ++i) {
    const std::string p = Reader::index("sizes", i);
    int64_t log2 = in.i64(sizes[i], p, "log2");
    if (log2 < 0 || log2 > 63) in.fail(p + ".log2", "expected 0..63");
    r.sizes.push_back({int(log2), in.u64(sizes[i], p, "count"), in.u64(sizes[i], p, "bytes")});
  }

  const json& maps = in.array(j, "", "maps");
  for (size_t i = 0; i < maps.size(); ++i) {
    const std::string p = Reader::index("maps", i);
    r.maps.push_back({in.string(maps[i], p, "title"), in.u64(maps[i], p, "event"),
                      read_layout(in, in.field(maps[i], p, "segments"), p + ".segments")});
  }
  r.advice = in.strings(j, "", "advice");
  return r;
}

json failed_requests_json(const std::vector<replay::FailedRequest>& failed) {
  json out = json::array();
  for (const replay::FailedRequest& f : failed)
    out.push_back({{"event", f.event}, {"time_us", f.time_us}, {"size", f.size}, {"stream", f.stream},
                   {"served", f.served}});
  return out;
}

FragReport report_from_json_text(std::string_view text, const std::string& source) {
  if (trace::json_nests_deeper_than(text))
    throw Error(ErrorCode::kInvalidArgument, source + ": JSON nested too deep (refused)");
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(ErrorCode::kInvalidArgument, source + ": not valid JSON");
  return report_from_json(j, source);
}

}  // namespace hbmalloc::report
