#include "report/explain.h"

#include <algorithm>

#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "policy/cca/cca_config.h"
#include "policy/policy_catalog.h"
#include "tune/capacity_choice.h"
#include "tune/grid.h"
#include "tune/sweep.h"

namespace hbmalloc::report {
namespace {

using trace::Action;

uint64_t minus(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

// The cause of a request of `c.request` with `c.live` bytes live, on a device
// of `c.capacity`, under a process limit of `fraction` of it.
void classify(OomCause& c, double fraction, std::optional<uint64_t> trace_capacity) {
  const uint64_t need = c.live + c.request;
  const std::string figures = "live " + format_bytes(c.live) + " + request " + format_bytes(c.request) + " = " +
                              format_bytes(need);
  if (!c.capacity) {
    c.cause = c.at_peak ? "none" : "unknown";
    c.detail = figures + " on a device of unknown size (give --capacity to judge it)";
    return;
  }
  const uint64_t cap = *c.capacity;
  if (need > cap) {
    c.cause = "capacity";
    c.detail = figures + " > device " + format_bytes(cap) + ": no allocator serves it; " +
               format_bytes(need - cap) + " fewer live bytes or a device of at least " + format_bytes(need);
    return;
  }
  if (fraction < 1.0 && double(need) > fraction * double(cap)) {
    c.cause = "limit";
    c.detail = figures + " > per_process_memory_fraction " + std::to_string(fraction) + " of the device (" +
               format_bytes(uint64_t(fraction * double(cap))) + "): raise the fraction";
    return;
  }
  if (trace_capacity && c.reserved && c.device_free && *c.reserved + *c.device_free < *trace_capacity) {
    c.cause = "other tenants";
    c.detail = "the device had " + format_bytes(*c.device_free) + " free beside the " + format_bytes(*c.reserved) +
               " this process reserved, of " + format_bytes(*trace_capacity) + ": another process held " +
               format_bytes(*trace_capacity - *c.reserved - *c.device_free);
    return;
  }
  if (c.at_peak) {
    c.cause = "none";
    c.detail = "no OOM recorded; at its peak the job had " + format_bytes(c.live) + " live on a device of " +
               format_bytes(cap) + " (headroom " + format_bytes(cap - c.live) + ")";
    return;
  }
  c.cause = "fragmentation";
  c.detail = figures + " fits the device " + format_bytes(cap) +
             (c.reserved ? ", and the recording held " + format_bytes(*c.reserved) + " (" +
                               format_bytes(minus(*c.reserved, c.live)) + " cached free)"
                         : std::string()) +
             ": the free bytes were there, not in one piece";
}

// Each recorded OOM with the figures of the trace just before it; with none,
// the peak of live bytes.
std::vector<OomCause> causes(const trace::DeviceTrace& d, std::optional<uint64_t> capacity) {
  trace::FiguresTally tally(d);
  uint64_t peak = tally.live_requested(), peak_event = 0;
  std::vector<OomCause> out;
  for (uint64_t i = 0; i < d.events.size(); ++i) {
    const trace::Event& e = d.events[i];
    if (e.action == Action::kOom) {  // an OOM changes neither figure
      OomCause c;
      c.event = i;
      c.request = e.size;
      c.stream = e.stream;
      c.live = tally.live_requested();
      // As FiguresTally reads it: with a segment picture, addr is the device's free bytes.
      if (d.has_segment_picture) {
        c.reserved = tally.reserved();
        c.device_free = e.addr;
      }
      c.capacity = capacity;
      out.push_back(c);
    }
    tally.add(e);
    if (tally.live_requested() > peak) peak = tally.live_requested(), peak_event = i;
  }
  if (out.empty()) {
    OomCause c;
    c.at_peak = true;
    c.event = peak_event;
    c.live = peak;
    c.capacity = capacity;
    out.push_back(c);
  }
  return out;
}

SettingRow row_of(const std::string& name, const tune::PointResult& r) {
  SettingRow row;
  row.name = name;
  row.policy = r.point.policy;
  // A policy chosen by PyTorch's variable runs its defaults with the variable unset.
  const PolicyDescription& p = policy_named(r.point.policy);
  row.line = p.reads_pytorch_settings && r.point.settings.empty() ? "unset " + std::string(p.conf_variable)
                                                                  : tune::conf_line(r.point);
  row.fits = r.fits;
  row.peak_reserved = r.peak_reserved;
  row.min_capacity = r.min_capacity;
  row.device_seconds = r.device_seconds;
  row.error = r.error;
  return row;
}

}  // namespace

Explanation explain(const trace::Trace& trace, const ExplainOptions& o) {
  const trace::DeviceTrace& d = trace.device_or_error(o.device);
  if (!trace.has_history)
    throw Error(ErrorCode::kInvalidArgument,
                trace.source + ": a static snapshot (segments only, no events) cannot be explained by a replay");
  Explanation e;
  e.source = trace.source;
  e.format = trace.format;
  e.device = d.device;
  const tune::CapacityChoice cap = tune::capacity_for(trace, d, o.capacity);
  e.capacity = cap.bytes;
  e.capacity_source = cap.source;

  const cca::Settings recorded = cca::settings_of_trace(trace.settings);
  const double fraction = cca::parse_settings(recorded).per_process_memory_fraction;
  e.ooms = causes(d, e.capacity);
  for (OomCause& c : e.ooms) classify(c, fraction, trace.capacity);

  // PyTorch's allocator (the policy that reproduces the recording) under the
  // recorded settings and with expandable segments, then tune's grid (its
  // own baseline is the first point again), then hbmalloc's default policy.
  const std::string pytorch(recording_policy().name), ours(policy_catalog().front().name);
  size_t skipped = 0;
  std::vector<tune::Point> points = tune::expand(tune::parse_grid(pytorch, "expandable_segments:True"), recorded, skipped);
  // One point when the recording ran with expandable segments already.
  const bool expandable_row = points.size() > 1;
  const std::vector<tune::Point> grid = tune::expand(tune::default_grid(pytorch), recorded, skipped);
  points.insert(points.end(), grid.begin() + 1, grid.end());
  const size_t hbm_index = points.size();
  points.push_back(tune::expand(tune::default_grid(ours), {}, skipped).front());

  tune::SweepOptions so;
  so.device = d.device;
  so.capacity = e.capacity;
  so.threads = o.threads;
  so.progress = o.progress;
  const std::vector<tune::PointResult> ranked = tune::sweep(trace, points, so);
  auto at = [&](size_t index) {
    return *std::find_if(ranked.begin(), ranked.end(), [&](const tune::PointResult& r) { return r.index == index; });
  };
  const tune::PointResult* best = nullptr;
  for (const tune::PointResult& r : ranked)
    if (r.point.policy == pytorch && r.error.empty()) {
      best = &r;
      break;
    }
  e.rows.push_back(row_of(expandable_row ? "recorded settings" : "recorded (expandable_segments:True)", at(0)));
  if (expandable_row) e.rows.push_back(row_of("expandable_segments:True", at(1)));
  if (best != nullptr) e.rows.push_back(row_of("best tune finds", *best));
  e.rows.push_back(row_of(std::string(policy_catalog().front().defaults_name), at(hbm_index)));

  // PyTorch's allocator with a setting is the smaller change (the one that
  // reserves least of those that fit; the recorded one on a tie); hbmalloc next.
  for (const std::string& policy : {pytorch, ours}) {
    const SettingRow* pick = nullptr;
    for (const SettingRow& r : e.rows)
      if (r.policy == policy && r.fits && r.error.empty() && (!pick || r.peak_reserved < pick->peak_reserved)) pick = &r;
    if (pick != nullptr && !e.use)
      e.use = pick->policy == pytorch ? pick->line : pick->line + " python -m hbmalloc.run YOUR_SCRIPT.py";
  }
  for (const SettingRow& r : e.rows)
    if (r.min_capacity && (!e.smallest_device || *r.min_capacity < *e.smallest_device)) e.smallest_device = r.min_capacity;
  for (const OomCause& c : e.ooms)
    if (c.capacity) e.bytes_to_free = std::max(e.bytes_to_free, minus(c.live + c.request, *c.capacity));
  // Live bytes plus the request past the device is what must go at least;
  // failing that (fragmentation), what the smallest device that fits adds.
  if (!e.use && e.capacity && e.smallest_device && e.bytes_to_free == 0)
    e.bytes_to_free = minus(*e.smallest_device, *e.capacity);

  if (e.use)
    e.verdict = "use: " + *e.use;
  else if (!e.capacity)
    e.verdict = "the device's size is unknown: give --capacity to judge what fits";
  else
    e.verdict = "nothing fits in " + format_bytes(*e.capacity) + ": at least " + format_bytes(e.bytes_to_free) +
                " of live bytes must go, or use a device of at least " +
                (e.smallest_device ? format_bytes(*e.smallest_device) : std::string("(unknown)"));
  return e;
}

nlohmann::json to_json(const Explanation& e) {
  using nlohmann::json;
  const auto opt = [](const std::optional<uint64_t>& v) { return v ? json(*v) : json(nullptr); };
  json ooms = json::array();
  for (const OomCause& c : e.ooms)
    ooms.push_back({{"event", c.event}, {"at_peak", c.at_peak}, {"request", c.request}, {"stream", c.stream},
                    {"live", c.live}, {"reserved", opt(c.reserved)}, {"device_free", opt(c.device_free)},
                    {"capacity", opt(c.capacity)}, {"cause", c.cause}, {"detail", c.detail}});
  json rows = json::array();
  for (const SettingRow& r : e.rows) {
    json row{{"setting", r.name},           {"policy", r.policy},
             {"line", r.line},              {"fits", r.fits},
             {"peak_reserved", r.peak_reserved}, {"min_capacity", opt(r.min_capacity)},
             {"device_seconds", r.device_seconds}};
    if (!r.error.empty()) row["error"] = r.error;
    rows.push_back(row);
  }
  return {{"trace", e.source},
          {"format", e.format},
          {"device", e.device},
          {"capacity", opt(e.capacity)},
          {"capacity_source", e.capacity_source},
          {"ooms", ooms},
          {"settings", rows},
          {"use", e.use ? json(*e.use) : json(nullptr)},
          {"bytes_to_free", e.bytes_to_free},
          {"smallest_device", opt(e.smallest_device)},
          {"verdict", e.verdict}};
}

}  // namespace hbmalloc::report
