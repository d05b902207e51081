#include "report/replay_output.h"

#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <utility>

#include "core/helpers.h"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "policy/cca/cca_config.h"
#include "policy/policy_catalog.h"
#include "report/advice.h"
#include "report/json_fields.h"
#include "report/json_report.h"
#include "report/text_report.h"

namespace hbmalloc {
namespace replay {

HBM_JSON_FIELDS(Fidelity, recorded, replayed, matched, matched_fraction, first_difference, exact)

}  // namespace replay

namespace report {
namespace {

using nlohmann::json;
using json_io::field;
using json_io::optional_field;

double trace_seconds(const ReplayRun& r) { return double(r.native.last_time_us - r.native.first_time_us) / 1e6; }

Stats device_calls(const ReplayRun& r) {
  Stats s;
  s.vmm = r.vmm;
  s.device_alloc_bytes = r.segment_alloc_bytes;
  s.device_free_bytes = r.segment_free_bytes;
  s.device_alloc_calls = r.segment_allocs;
  s.device_free_calls = r.segment_frees;
  return s;
}

std::string line(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string line(const char* format, ...) {
  char buf[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buf, sizeof buf, format, args);
  va_end(args);
  return buf;
}

// Every granule operation and what it would cost on a GPU, beside the time
// the trace itself took (0 when it carries no times), and every device
// memory call (plain segments too) priced alike, so that policies with and
// without page mapping compare. Derived figures are written, not read back.
json device_calls_json(const ReplayRun& r) {
  const VmmCounts& v = r.vmm;
  const double seconds = trace_seconds(r);
  json j = {{"create", v.create},
            {"map", v.map},
            {"set_access", v.set_access},
            {"unmap", v.unmap},
            {"release", v.release},
            {"modeled_seconds", v.modeled_seconds()},
            {"trace_seconds", seconds},
            {"peak_held", v.peak_held},
            {"overhead_seconds", v.overhead_seconds()},
            {"segment_alloc_bytes", r.segment_alloc_bytes},
            {"segment_free_bytes", r.segment_free_bytes},
            {"remapped", v.remapped},
            {"remap_refused", v.remap_refused},
            {"remap_bought", v.remap_bought},
            {"remap_seconds", VmmCounts::remap_seconds(v.remapped)},
            {"segment_allocs", r.segment_allocs},
            {"segment_frees", r.segment_frees},
            {"device_syncs", r.device_syncs},
            {"device_seconds", modeled_device_seconds(device_calls(r))},
            {"floor_seconds", floor_device_seconds(r.peak_requested)}};
  if (seconds > 0) {
    j["modeled_share"] = v.modeled_seconds() / seconds;
    j["overhead_share"] = v.overhead_seconds() / seconds;
  }
  return j;
}

// A count kept signed (as the statistics keep it), never negative.
void count(const json& j, const char* key, int64_t& out) {
  json_io::within(j, key, [&](const json& v) {
    json_io::read(v, out);
    if (out < 0) json_io::fail("expected a non-negative integer");
  });
}

void device_calls_from_json(const json& j, ReplayRun& r) {
  count(j, "create", r.vmm.create);
  count(j, "map", r.vmm.map);
  count(j, "set_access", r.vmm.set_access);
  count(j, "unmap", r.vmm.unmap);
  count(j, "release", r.vmm.release);
  count(j, "peak_held", r.vmm.peak_held);
  if (j.contains("remapped")) count(j, "remapped", r.vmm.remapped);  // saved before the budget: 0
  if (j.contains("remap_refused")) count(j, "remap_refused", r.vmm.remap_refused);
  if (j.contains("remap_bought")) count(j, "remap_bought", r.vmm.remap_bought);  // saved before remap_overhead: 0
  count(j, "segment_alloc_bytes", r.segment_alloc_bytes);
  count(j, "segment_free_bytes", r.segment_free_bytes);
  if (j.contains("segment_allocs")) count(j, "segment_allocs", r.segment_allocs);  // saved before calls were kept: 0
  if (j.contains("segment_frees")) count(j, "segment_frees", r.segment_frees);
  if (j.contains("device_syncs")) count(j, "device_syncs", r.device_syncs);  // saved before syncs were kept: 0
  double seconds = 0;
  field(j, "trace_seconds", seconds);
  if (!(seconds >= 0 && seconds < 1e12)) throw json_io::FieldError{".trace_seconds", "out of range"};
  r.native.first_time_us = 0;
  r.native.last_time_us = int64_t(std::llround(seconds * 1e6));
}

json native_json(const trace::TraceFigures& n) {
  json j = {{"peak_requested", n.peak_requested}, {"ooms", n.native_ooms}, {"segment_events", n.segment_events}};
  if (n.native_peak_reserved) {
    j["peak_reserved"] = *n.native_peak_reserved;
    j["efficiency"] = n.native_efficiency().value_or(0.0);
  }
  return j;
}

void native_from_json(const json& j, trace::TraceFigures& n) {
  field(j, "peak_requested", n.peak_requested);
  field(j, "ooms", n.native_ooms);
  field(j, "segment_events", n.segment_events);
  optional_field(j, "peak_reserved", n.native_peak_reserved);
}

std::string capacity_text(uint64_t capacity) { return capacity ? format_bytes(capacity) : "unlimited"; }

// The remap budget and overhead the run kept (read back from its config
// text) and what each had created instead of remapped.
std::string limits_text(const std::string& config_text, const VmmCounts& v) {
  VmmConfig vmm;
  try {
    vmm = Config::parse(config_text).vmm;
  } catch (const Error&) {
    return line("the remap budget had %lld created instead, remapping that recurred %lld", (long long)v.remap_refused,
                (long long)v.remap_bought);
  }
  std::string out = vmm.budget() < 0 ? std::string("no remap budget")
                                     : line("the remap budget (%s%% of elapsed time, a bucket of %s) had %lld created instead",
                                            format_number(vmm.budget() * 100).c_str(),
                                            format_duration_us(vmm.remap_window_us).c_str(), (long long)v.remap_refused);
  if (vmm.overhead() < 0) return out + "; remapping that recurs is not bought out";
  return out + line("; remapping that recurred (past %s%% of the time creating granules took) had %lld created instead",
                    format_number(vmm.overhead() * 100).c_str(), (long long)v.remap_bought);
}

}  // namespace

ReplayOutput replay_output(const trace::Trace& t, const replay::ReplayResult& r, const Config& config,
                           std::optional<uint64_t> min_capacity, bool min_capacity_searched, FragReport report) {
  ReplayRun run;
  run.trace = t.source;
  run.format = t.format;
  run.device = r.device;
  run.policy = config.policy;
  run.config = config.to_string();
  if (!config.pytorch_settings.empty()) run.pytorch_alloc_conf = cca::alloc_conf_text(config.pytorch_settings);
  run.capacity = r.capacity;
  run.events = r.events;
  run.allocs = r.allocs;
  run.frees = r.frees;
  run.empty_cache_calls = r.empty_cache_calls;
  run.peak_requested = r.peak_requested;
  run.peak_allocated = r.peak_allocated;
  run.peak_reserved = r.peak_reserved;
  run.efficiency = r.efficiency;
  run.oom_count = r.ooms.size();
  run.failed_requests = r.failed_requests;
  run.seconds = r.seconds;
  run.events_per_second = r.events_per_second;
  run.native = r.native;
  run.vmm = r.final_stats.vmm;
  run.segment_alloc_bytes = r.final_stats.device_alloc_bytes;
  run.segment_free_bytes = r.final_stats.device_free_bytes;
  run.segment_allocs = r.final_stats.device_alloc_calls;
  run.segment_frees = r.final_stats.device_free_calls;
  run.device_syncs = r.final_stats.num_sync_all_streams;
  run.min_capacity_searched = min_capacity_searched;
  run.min_capacity = min_capacity;
  run.reproduces_recording = policy_named(config.policy).reproduces_recording;
  run.started_from_picture = r.started_from_picture;
  run.start_note = r.start_note;
  run.fidelity = r.fidelity;
  return ReplayOutput{std::move(run), std::move(report)};
}

std::string render_text(const ReplayOutput& output) {
  const ReplayRun& r = output.run;
  std::string out = line("hbmalloc replay: %llu events (%llu allocs, %llu frees, %llu empty_cache) in %.3f ms: %.1f M events/s\n",
                         (unsigned long long)r.events, (unsigned long long)r.allocs, (unsigned long long)r.frees,
                         (unsigned long long)r.empty_cache_calls, r.seconds * 1e3, r.events_per_second / 1e6);
  if (r.pytorch_alloc_conf) out += line("  %-16s PYTORCH_CUDA_ALLOC_CONF=%s\n", "settings", r.pytorch_alloc_conf->c_str());
  if (const VmmCounts& v = r.vmm; v.create + v.map + v.unmap + v.release > 0)
    out += line("  %-16s %lld create, %lld map, %lld set_access, %lld unmap, %lld release: %.3f ms on a GPU (model)\n",
                "vmm operations", (long long)v.create, (long long)v.map, (long long)v.set_access, (long long)v.unmap,
                (long long)v.release, v.modeled_seconds() * 1e3);
  if (const VmmCounts& v = r.vmm; v.remapped + v.remap_refused + v.remap_bought > 0) {
    const double trace = trace_seconds(r);
    std::string share = trace > 0 ? line(" (%.2f%% of the trace's %.3f s)", 100.0 * VmmCounts::remap_seconds(v.remapped) / trace, trace) : "";
    out += line("  %-16s %lld granules remapped: %.3f ms (model)%s; %s\n", "remapping", (long long)v.remapped,
                VmmCounts::remap_seconds(v.remapped) * 1e3, share.c_str(), limits_text(r.config, v).c_str());
  }
  if (r.segment_alloc_bytes + r.segment_free_bytes > 0)
    out += line("  %-16s %s taken, %s given back: %.3f ms on a GPU (model, priced as their 2 MiB granules)\n",
                "plain segments", format_bytes(uint64_t(r.segment_alloc_bytes)).c_str(),
                format_bytes(uint64_t(r.segment_free_bytes)).c_str(), modeled_segment_seconds(device_calls(r)) * 1e3);
  if (r.device_syncs > 0)
    out += line("  %-16s %lld: the device synchronized to wait for queued work (not priced by the model)\n",
                "device syncs", (long long)r.device_syncs);
  if (r.min_capacity)
    out += line("  %-16s %14s   (smallest capacity with no OOM)\n", "min capacity", format_bytes(*r.min_capacity).c_str());
  else if (r.min_capacity_searched)
    out += line("  %-16s %14s   (no device up to the 1 PiB hbmalloc models serves every request)\n", "min capacity", "none");
  if (r.reproduces_recording) {
    if (r.started_from_picture)
      out += "  started from the trace's own segments and live blocks\n";
    else if (!r.start_note.empty())
      out += "  started with the live blocks allocated anew (" + r.start_note + ")\n";
    if (!r.fidelity)
      out += line("  %-16s %14s   the trace records no segment events to compare with\n", "fidelity", "not measurable");
  }
  if (r.fidelity && r.fidelity->recorded > 0) {
    const replay::Fidelity& f = *r.fidelity;
    out += line("  %-16s %14.4f   %s%llu of %llu recorded segment events matched (%llu replayed)%s\n", "fidelity",
                f.matched_fraction, f.exact ? "" : "at least ", (unsigned long long)f.matched,
                (unsigned long long)f.recorded, (unsigned long long)f.replayed,
                f.exact ? "" : "; a lower bound: the comparison was cut into parts to bound its work");
  }
  if (r.native.native_ooms) out += line("  the recording itself hit %llu OOM(s)\n", (unsigned long long)r.native.native_ooms);
  size_t served = 0;
  for (const replay::FailedRequest& f : r.failed_requests)
    if (f.served && served++ < kOomsListed)
      out += line("  event %llu, %s on stream %llu: %s\n", (unsigned long long)f.event, format_bytes(f.size).c_str(),
                  (unsigned long long)f.stream, failed_request_verdict(f).c_str());
  if (served > kOomsListed)
    out += line("  ... and %llu more served here: see \"Requests the recording failed\" below\n",
                (unsigned long long)(served - kOomsListed));
  if (r.oom_count > 0)
    out += line("  %llu OOM(s) in this replay: see \"Out of memory\" below\n", (unsigned long long)r.oom_count);
  else if (r.capacity)
    out += "  no OOM: the trace fits in " + capacity_text(r.capacity) + "\n";
  else
    out += "  no OOM (capacity unlimited; --capacity sets one, --min-capacity finds the least)\n";
  return out + "\n" + render_text(output.report);
}

void to_json(json& j, const ReplayOutput& output) {
  const ReplayRun& r = output.run;
  j = {{"trace", r.trace},
       {"format", r.format},
       {"device", r.device},
       {"policy", r.policy},
       {"config", r.config},
       {"capacity", r.capacity},
       {"events", r.events},
       {"allocs", r.allocs},
       {"frees", r.frees},
       {"empty_cache_calls", r.empty_cache_calls},
       {"peak_requested", r.peak_requested},
       {"peak_allocated", r.peak_allocated},
       {"peak_reserved", r.peak_reserved},
       {"efficiency", r.efficiency},
       {"oom_count", r.oom_count},
       {"failed_requests", r.failed_requests},
       {"seconds", r.seconds},
       {"events_per_second", r.events_per_second},
       {"native", native_json(r.native)},
       {"vmm", device_calls_json(r)},
       {"report", output.report}};
  if (r.min_capacity_searched) json_io::write(j["min_capacity"], r.min_capacity);  // null: no device serves the trace
  if (r.pytorch_alloc_conf) j["pytorch_alloc_conf"] = *r.pytorch_alloc_conf;
  if (r.reproduces_recording) {
    j["started_from_picture"] = r.started_from_picture;
    json_io::write(j["fidelity"], r.fidelity);  // null: the trace records no segment events
  }
}

void from_json(const json& j, ReplayOutput& output) {
  ReplayRun& r = output.run;
  field(j, "trace", r.trace);
  field(j, "format", r.format);
  field(j, "device", r.device);
  field(j, "policy", r.policy);
  field(j, "config", r.config);
  field(j, "capacity", r.capacity);
  field(j, "events", r.events);
  field(j, "allocs", r.allocs);
  field(j, "frees", r.frees);
  field(j, "empty_cache_calls", r.empty_cache_calls);
  field(j, "peak_requested", r.peak_requested);
  field(j, "peak_allocated", r.peak_allocated);
  field(j, "peak_reserved", r.peak_reserved);
  field(j, "efficiency", r.efficiency);
  field(j, "oom_count", r.oom_count);
  field(j, "failed_requests", r.failed_requests);
  field(j, "seconds", r.seconds);
  field(j, "events_per_second", r.events_per_second);
  json_io::within(j, "native", [&](const json& n) { native_from_json(n, r.native); });
  json_io::within(j, "vmm", [&](const json& v) { device_calls_from_json(v, r); });
  r.min_capacity_searched = j.contains("min_capacity");
  optional_field(j, "min_capacity", r.min_capacity);
  if (j.contains("pytorch_alloc_conf")) field(j, "pytorch_alloc_conf", r.pytorch_alloc_conf.emplace());
  r.reproduces_recording = j.contains("started_from_picture");
  optional_field(j, "started_from_picture", r.started_from_picture);
  optional_field(j, "fidelity", r.fidelity);
  field(j, "report", output.report);
}

bool is_replay_output_json(const json& j) {
  return j.is_object() && j.contains("report") && is_report_json(j["report"]);
}

ReplayOutput replay_output_from_json(const json& j, const std::string& source) {
  ReplayOutput out;
  try {
    from_json(j, out);
  } catch (const json_io::FieldError& e) {
    throw Error(ErrorCode::kInvalidArgument, source + ": replay field " + e.where() + ": " + e.what);
  }
  return out;
}

}  // namespace report
}  // namespace hbmalloc
