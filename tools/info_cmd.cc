// `hbmalloc info TRACE`: what a trace holds, without replaying it.
#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "cli_args.h"
#include "json_out.h"
#include "record/safe_text.h"
#include "commands.h"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "report/size_histogram.h"
#include "trace/read_trace.h"

namespace hbmalloc::tools {
namespace {

using nlohmann::json;
using trace::Action;

json device_info(const trace::DeviceTrace& d) {
  std::map<std::string, uint64_t> actions;
  std::set<uint64_t> streams;
  report::SizeHistogram histogram;
  for (const trace::Event& e : d.events) {
    ++actions[trace::action_name(e.action)];
    if (e.action == Action::kAlloc) {
      streams.insert(e.stream);
      histogram.add(e.size);
    }
  }
  for (const trace::BlockInfo& b : d.live_at_start) streams.insert(b.stream);
  trace::TraceFigures f = trace::figures_of(d);

  json j;
  j["device"] = d.device;
  j["events"] = d.events.size();
  j["actions"] = actions;
  j["blocks"] = d.block_count;
  j["live_at_start"] = d.live_at_start.size();
  uint64_t live_bytes = 0;
  for (const trace::BlockInfo& b : d.live_at_start) live_bytes += b.requested;
  j["live_at_start_bytes"] = live_bytes;
  j["streams"] = std::vector<uint64_t>(streams.begin(), streams.end());
  j["time_span_us"] = f.last_time_us - f.first_time_us;
  j["peak_requested"] = f.peak_requested;
  j["peak_demand"] = f.peak_demand;
  if (f.native_peak_reserved) j["native_peak_reserved"] = *f.native_peak_reserved;
  j["native_ooms"] = f.native_ooms;
  if (d.has_segment_picture) {
    uint64_t end_bytes = 0;
    for (const trace::SegmentInfo& s : d.segments_at_end) end_bytes += s.size;
    j["segments_at_end"] = d.segments_at_end.size();
    j["segments_at_end_bytes"] = end_bytes;
  }
  json hist = json::array();
  for (const report::SizeBucket& b : histogram.buckets())
    if (b.count > 0) hist.push_back({{"from", uint64_t(1) << b.log2}, {"count", b.count}, {"bytes", b.bytes}});
  j["size_histogram"] = hist;
  return j;
}

void print_text(const json& j) {
  std::printf("%s: %s", j["trace"].get<std::string>().c_str(), j["format"].get<std::string>().c_str());
  if (!j["recorder"].get<std::string>().empty()) std::printf(" recorded by %s", j["recorder"].get<std::string>().c_str());
  std::printf(", %s, %zu device(s)\n", j["has_history"].get<bool>() ? "with event history" : "static (no events)",
              j["devices"].size());
  if (j.contains("capacity")) std::printf("  capacity %s\n", format_bytes(j["capacity"].get<uint64_t>()).c_str());
  if (!j["settings"].empty()) {
    std::printf("  settings:\n");
    for (const auto& kv : j["settings"]) std::printf("    %s: %s\n", kv[0].get<std::string>().c_str(), kv[1].get<std::string>().c_str());
  }
  for (const json& d : j["devices"]) {
    std::printf("\n  device %d: %llu events over %.3f s, %llu blocks (%llu live at start, %s)\n", d["device"].get<int>(),
                (unsigned long long)d["events"].get<uint64_t>(), double(d["time_span_us"].get<int64_t>()) / 1e6,
                (unsigned long long)d["blocks"].get<uint64_t>(), (unsigned long long)d["live_at_start"].get<uint64_t>(),
                format_bytes(d["live_at_start_bytes"].get<uint64_t>()).c_str());
    for (const auto& [name, count] : d["actions"].items())
      std::printf("    %-16s %10llu\n", name.c_str(), (unsigned long long)count.get<uint64_t>());
    std::printf("    streams:");
    for (const json& s : d["streams"]) std::printf(" %llu", (unsigned long long)s.get<uint64_t>());
    std::printf("\n    peak requested %s", format_bytes(d["peak_requested"].get<uint64_t>()).c_str());
    if (d.contains("native_peak_reserved"))
      std::printf(", native peak reserved %s", format_bytes(d["native_peak_reserved"].get<uint64_t>()).c_str());
    if (d["native_ooms"].get<uint64_t>()) {
      std::printf(", %llu native OOM(s)", (unsigned long long)d["native_ooms"].get<uint64_t>());
      std::printf("\n    peak demand %s (live bytes plus a failed request, at its worst: no device smaller fits)",
                  format_bytes(d["peak_demand"].get<uint64_t>()).c_str());
    }
    std::printf("\n");
    if (d.contains("segments_at_end"))
      std::printf("    %llu segment(s) at the end, %s\n", (unsigned long long)d["segments_at_end"].get<uint64_t>(),
                  format_bytes(d["segments_at_end_bytes"].get<uint64_t>()).c_str());
    if (!d["size_histogram"].empty()) {
      std::printf("    request sizes:\n");
      uint64_t most = 1;
      for (const json& h : d["size_histogram"]) most = std::max(most, h["count"].get<uint64_t>());
      for (const json& h : d["size_histogram"]) {
        uint64_t count = h["count"].get<uint64_t>();
        int bar = int((count * 30 + most - 1) / most);
        std::printf("      >= %-11s %8llu  %-30.*s %s\n", format_bytes(h["from"].get<uint64_t>()).c_str(),
                    (unsigned long long)count, bar, "##############################",
                    format_bytes(h["bytes"].get<uint64_t>()).c_str());
      }
    }
  }
}

}  // namespace

int run_info(int argc, char** argv) {
  Args args("info", {"--max-input"}, {"--json"});
  trace::InputLimits limits;
  if (!args.parse(argc, argv) || !args.input_limits(limits)) return 2;
  if (args.positional().size() != 1) {
    args.fail("wants exactly one TRACE file (see hbmalloc help)");
    return 2;
  }
  try {
    trace::Trace t = trace::read_trace_file(args.positional()[0], limits);
    json j;
    j["trace"] = t.source;
    j["format"] = t.format;
    j["recorder"] = t.recorder;
    j["has_history"] = t.has_history;
    if (t.capacity) j["capacity"] = *t.capacity;
    j["settings"] = t.settings;
    j["devices"] = json::array();
    for (const trace::DeviceTrace& d : t.devices) j["devices"].push_back(device_info(d));
    if (args.has("--json"))
      std::printf("%s\n", json_text(j).c_str());
    else
      print_text(j);
  } catch (const Error& e) {
    std::fprintf(stderr, "hbmalloc info: %s\n", trace::safe_text(e.what()).c_str());
    return 2;
  }
  return 0;
}

}  // namespace hbmalloc::tools
