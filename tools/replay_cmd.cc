// `hbmalloc replay TRACE`: replays one device of a trace on the sim backend.
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_args.h"
#include "json_out.h"
#include "record/safe_text.h"
#include "commands.h"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "policy/cca/cca_config.h"
#include "policy/policy_catalog.h"
#include "replay/replay.h"
#include "report/advice.h"
#include "report/explain.h"
#include "report/frag_report.h"
#include "report/html_report.h"
#include "report/json_report.h"
#include "report/text_report.h"
#include "record/write_file.h"
#include "trace/read_trace.h"

namespace hbmalloc::tools {
namespace {

using nlohmann::json;

std::string capacity_text(uint64_t capacity) { return capacity ? format_bytes(capacity) : "unlimited"; }

// Every VMM operation the replay made and what they would cost on a GPU,
// beside the time the trace itself took (0 when it carries no times), and
// all device memory calls (plain segments too) priced alike, so policies
// with and without VMM compare.
json vmm_to_json(const replay::ReplayResult& r) {
  const Stats& s = r.final_stats;
  const VmmCounts& v = s.vmm;
  const double trace_seconds = double(r.native.last_time_us - r.native.first_time_us) / 1e6;
  json j = {{"create", v.create},         {"map", v.map},       {"set_access", v.set_access},
            {"unmap", v.unmap},           {"release", v.release}, {"modeled_seconds", v.modeled_seconds()},
            {"trace_seconds", trace_seconds}};
  j["peak_held"] = v.peak_held;
  j["overhead_seconds"] = v.overhead_seconds();
  j["segment_alloc_bytes"] = s.device_alloc_bytes;
  j["segment_free_bytes"] = s.device_free_bytes;
  j["device_seconds"] = modeled_device_seconds(s);
  if (trace_seconds > 0) {
    j["modeled_share"] = v.modeled_seconds() / trace_seconds;
    j["overhead_share"] = v.overhead_seconds() / trace_seconds;
  }
  return j;
}

json replay_to_json(const trace::Trace& t, const replay::ReplayResult& r, const Config& config,
                    std::optional<uint64_t> min_cap, bool searched, const report::FragReport& rep) {
  json j;
  j["trace"] = t.source;
  j["format"] = t.format;
  j["device"] = r.device;
  j["policy"] = config.policy;
  j["config"] = config.to_string();
  j["capacity"] = r.capacity;  // 0: unlimited
  j["events"] = r.events;
  j["allocs"] = r.allocs;
  j["frees"] = r.frees;
  j["empty_cache_calls"] = r.empty_cache_calls;
  j["peak_requested"] = r.peak_requested;
  j["peak_allocated"] = r.peak_allocated;
  j["peak_reserved"] = r.peak_reserved;
  j["efficiency"] = r.efficiency;
  j["oom_count"] = r.ooms.size();
  j["failed_requests"] = r.failed_requests;
  j["seconds"] = r.seconds;
  j["events_per_second"] = r.events_per_second;
  json native;
  native["peak_requested"] = r.native.peak_requested;
  native["ooms"] = r.native.native_ooms;
  native["segment_events"] = r.native.segment_events;
  if (r.native.native_peak_reserved) {
    native["peak_reserved"] = *r.native.native_peak_reserved;
    native["efficiency"] = r.native.native_efficiency().value_or(0.0);
  }
  j["native"] = native;
  j["vmm"] = vmm_to_json(r);
  if (min_cap) j["min_capacity"] = *min_cap;
  else if (searched) j["min_capacity"] = nullptr;  // asked for, and no device serves the trace
  if (!config.pytorch_settings.empty()) j["pytorch_alloc_conf"] = cca::alloc_conf_text(config.pytorch_settings);
  if (policy_named(config.policy).reproduces_recording) j["started_from_picture"] = r.started_from_picture;
  if (!r.fidelity && policy_named(config.policy).reproduces_recording) {
    j["fidelity"] = nullptr;  // the trace records no segment events: nothing to compare
  } else if (r.fidelity) {
    const replay::Fidelity& f = *r.fidelity;
    j["fidelity"] = {{"recorded", f.recorded},
                     {"replayed", f.replayed},
                     {"matched", f.matched},
                     {"matched_fraction", f.matched_fraction},
                     {"first_difference", f.first_difference},
                     {"exact", f.exact}};
  }
  // Each OOM, with its cause and advice, is in report.ooms; `hbmalloc report`
  // re-renders a saved replay from this member.
  j["report"] = rep;
  return j;
}

void print_text(const trace::Trace& t, const replay::ReplayResult& r, const Config& config,
                std::optional<uint64_t> min_cap, bool searched) {
  std::printf("hbmalloc replay: %s (%s, device %d of %zu)\n", t.source.c_str(), t.format.c_str(), r.device,
              t.devices.size());
  // A policy that reads PyTorch's keys runs as PyTorch: its settings are a PYTORCH_CUDA_ALLOC_CONF line.
  const PolicyDescription& policy = policy_named(config.policy);
  const std::string settings = !policy.reads_pytorch_settings ? config.to_string()
                               : config.pytorch_settings.empty()
                                   ? std::string("PyTorch's defaults")
                                   : "PYTORCH_CUDA_ALLOC_CONF=" + cca::alloc_conf_text(config.pytorch_settings);
  std::printf("  policy %s, capacity %s (%s)\n", config.policy.c_str(), capacity_text(r.capacity).c_str(),
              settings.c_str());
  std::printf("  %llu events (%llu allocs, %llu frees, %llu empty_cache) in %.3f ms: %.1f M events/s\n\n",
              (unsigned long long)r.events, (unsigned long long)r.allocs, (unsigned long long)r.frees,
              (unsigned long long)r.empty_cache_calls, r.seconds * 1e3, r.events_per_second / 1e6);
  std::printf("  %-16s %14s\n", "peak requested", format_bytes(r.peak_requested).c_str());
  std::printf("  %-16s %14s\n", "peak allocated", format_bytes(r.peak_allocated).c_str());
  std::printf("  %-16s %14s   efficiency %.4f\n", "peak reserved", format_bytes(r.peak_reserved).c_str(),
              r.efficiency);
  if (r.native.native_peak_reserved) {
    uint64_t native = *r.native.native_peak_reserved;
    std::printf("  %-16s %14s   efficiency %.4f (what the recording allocator reserved)\n", "native reserved",
                format_bytes(native).c_str(), r.native.native_efficiency().value_or(0.0));
    if (r.peak_reserved <= native)
      std::printf("  %s reserves %s less at its peak than the recording did\n", config.policy.c_str(),
                  format_bytes(native - r.peak_reserved).c_str());
    else
      std::printf("  %s reserves %s more at its peak than the recording did\n", config.policy.c_str(),
                  format_bytes(r.peak_reserved - native).c_str());
  }
  if (const VmmCounts& v = r.final_stats.vmm; v.create + v.map + v.unmap + v.release > 0)
    std::printf("  %-16s %lld create, %lld map, %lld set_access, %lld unmap, %lld release: %.3f ms on a GPU (model)\n",
                "vmm operations", (long long)v.create, (long long)v.map, (long long)v.set_access, (long long)v.unmap,
                (long long)v.release, v.modeled_seconds() * 1e3);
  if (const Stats& s = r.final_stats; s.device_alloc_bytes + s.device_free_bytes > 0)
    std::printf("  %-16s %s taken, %s given back: %.3f ms on a GPU (model, priced as their 2 MiB granules)\n",
                "plain segments", format_bytes(uint64_t(s.device_alloc_bytes)).c_str(),
                format_bytes(uint64_t(s.device_free_bytes)).c_str(),
                modeled_segment_seconds(s) * 1e3);
  if (min_cap)
    std::printf("  %-16s %14s   (smallest capacity with no OOM)\n", "min capacity", format_bytes(*min_cap).c_str());
  else if (searched)
    std::printf("  %-16s %14s   (even an unlimited device fails a request)\n", "min capacity", "none");
  if (policy.reproduces_recording) {
    if (r.started_from_picture) std::printf("  started from the trace's own segments and live blocks\n");
    else if (!r.start_note.empty()) std::printf("  started with the live blocks allocated anew (%s)\n", r.start_note.c_str());
  }
  if (!r.fidelity && policy_named(config.policy).reproduces_recording)
    std::printf("  %-16s %14s   the trace records no segment events to compare with\n", "fidelity", "not measurable");
  if (r.fidelity && r.fidelity->recorded > 0) {
    const replay::Fidelity& f = *r.fidelity;
    std::printf("  %-16s %14.4f   %s%llu of %llu recorded segment events matched (%llu replayed)%s\n", "fidelity",
                f.matched_fraction, f.exact ? "" : "at least ", (unsigned long long)f.matched,
                (unsigned long long)f.recorded, (unsigned long long)f.replayed,
                f.exact ? "" : "; a lower bound: the comparison was cut into parts to bound its work");
  }
  if (r.native.native_ooms) std::printf("  the recording itself hit %llu OOM(s)\n", (unsigned long long)r.native.native_ooms);
  for (const replay::FailedRequest& f : r.failed_requests)
    if (f.served)
      std::printf("  event %llu, %s on stream %llu: %s\n", (unsigned long long)f.event, format_bytes(f.size).c_str(),
                  (unsigned long long)f.stream, report::failed_request_verdict(f).c_str());
  if (!r.ooms.empty())
    std::printf("  %zu OOM(s) in this replay: see \"Out of memory\" below\n", r.ooms.size());
  else if (r.capacity)
    std::printf("  no OOM: the trace fits in %s\n", capacity_text(r.capacity).c_str());
  else
    std::printf("  no OOM (capacity unlimited; --capacity sets one, --min-capacity finds the least)\n");
}

// Explain's verdict and each recorded OOM's cause, first in "What to do".
void add_verdict(const report::Explanation& e, report::FragReport& rep) {
  std::vector<std::string> lines;
  for (const report::OomCause& c : e.ooms)
    if (!c.at_peak) lines.push_back("the recording's OOM at event " + std::to_string(c.event) + ": " + c.cause + ": " + c.detail);
  std::string settings;
  for (const report::SettingRow& row : e.rows) settings += (settings.empty() ? "" : ", ") + row.name;
  lines.push_back("hbmalloc explain (" + settings + " replayed at " +
                  (e.capacity ? format_bytes(*e.capacity) : std::string("an unlimited device")) + "): " + e.verdict);
  rep.advice.insert(rep.advice.begin(), lines.begin(), lines.end());
}

}  // namespace

int run_replay(int argc, char** argv) {
  Args args("replay", {"--policy", "--conf", "--capacity", "--device", "--html", "--max-input"},
            {"--json", "--min-capacity"});
  trace::InputLimits limits;
  if (!args.parse(argc, argv) || !args.input_limits(limits)) return 2;
  if (args.positional().size() != 1) {
    args.fail("wants exactly one TRACE file (see hbmalloc help)");
    return 2;
  }
  replay::ReplayOptions options;
  long device = -1;
  if (!args.capacity("--capacity", options.capacity) || !args.integer("--device", 0, 1023, device)) return 2;
  try {
    options.config = Config::parse(args.value("--conf").value_or(""));
    if (auto p = args.value("--policy")) options.config.policy = *p;
    options.config.backend = "sim";  // what replay runs on, whatever the conf says
    trace::Trace t = trace::read_trace_file(args.positional()[0], limits);
    bool empty = true;
    for (const trace::DeviceTrace& d : t.devices) empty = empty && d.events.empty() && d.live_at_start.empty();
    if (empty) throw Error(ErrorCode::kInvalidArgument, t.source + ": nothing to replay (the trace is empty)");
    if (!t.has_history)
      throw Error(ErrorCode::kInvalidArgument,
                  t.source + ": a static snapshot (segments only, no events) cannot be replayed; try hbmalloc report");
    options.device = device >= 0 ? int(device) : t.devices.front().device;
    const trace::DeviceTrace* d = t.device(options.device);
    if (d != nullptr && d->events.empty() && d->live_at_start.empty())
      throw Error(ErrorCode::kInvalidArgument, t.source + ": nothing to replay on device " +
                                                   std::to_string(options.device) + " (no events, no live blocks)");
    replay::as_recorded(t, options);  // cca: the recording's own settings and device
    options.fidelity = policy_named(options.config.policy).reproduces_recording;
    options.config.capacity = options.capacity.value_or(0);

    Progress bar("replay");
    options.progress = [&](uint64_t done, uint64_t total) { bar.update(done, total); };
    replay::ReplayResult r = replay::replay(t, options);
    options.fidelity = false;  // r has it: the replays below need not log and compare again
    std::optional<uint64_t> min_cap;
    if (args.has("--min-capacity")) {
      Progress search("min capacity");
      options.progress = [&](uint64_t done, uint64_t total) { search.update(done, total); };
      min_cap = replay::min_capacity(t, options);
      options.progress = nullptr;
    }

    // The report needs the timeline and the segment maps; a second replay
    // collects them so the first one's speed figure stays a plain replay's.
    report::ReportOptions ro;
    ro.min_capacity = min_cap;
    report::FragReport rep = report::replay_and_report(t, options, ro);
    // A page about a trace that recorded an OOM carries explain's verdict in
    // its "What to do" (the settings are replayed at the recorded device).
    if (args.has("--html") && !r.failed_requests.empty()) {
      report::ExplainOptions eo;
      eo.device = options.device;
      Progress search("explain");
      eo.progress = [&](uint64_t done, uint64_t total) { search.update(done, total); };
      add_verdict(report::explain(t, eo), rep);
    }
    if (auto html = args.value("--html")) trace::write_whole_file(*html, report::render_html(rep));

    if (args.has("--json")) {
      std::printf("%s\n", json_text(replay_to_json(t, r, options.config, min_cap, args.has("--min-capacity"), rep)).c_str());
    } else {
      print_text(t, r, options.config, min_cap, args.has("--min-capacity"));
      std::printf("\n%s", report::render_text(rep).c_str());
      if (auto html = args.value("--html")) std::printf("\nHTML report: %s\n", html->c_str());
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "hbmalloc replay: %s\n", trace::safe_text(e.what()).c_str());
    return 2;
  }
  return 0;
}

}  // namespace hbmalloc::tools
