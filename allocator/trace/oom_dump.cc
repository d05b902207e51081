#include "trace/oom_dump.h"

#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <filesystem>

#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "report/advice.h"
#include "report/frag_report.h"
#include "report/html_report.h"
#include "report/text_report.h"
#include "trace/file_io.h"
#include "trace/hbt_format.h"
#include "trace/live_snapshot.h"

namespace hbmalloc::trace {
namespace {

// Dumps of one process are numbered, so repeated OOMs never overwrite each other.
std::atomic<unsigned> dumps_written{0};

std::string line(const char* name, const std::string& value) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "  %-24s %s\n", name, value.c_str());
  return buf;
}

std::string with_peak(const StatCounter& c) {
  return format_bytes(uint64_t(c.current)) + " (peak " + format_bytes(uint64_t(c.peak)) + ")";
}

// The fragmentation report of the moment of failure: the allocator's own
// layout, read as a static snapshot, with the failed request explained.
report::FragReport frag_report_of(Trace recent, const OomFacts& f) {
  DeviceTrace& d = recent.devices.front();
  d.segments_at_end = picture_of(f.layout);
  report::FragReport r = report::build_static_report(recent, d.device);
  replay::OomRecord oom;
  oom.event = d.events.empty() ? 0 : d.events.size() - 1;  // the oom event is the last one
  oom.time_us = d.events.empty() ? 0 : d.events.back().time_us;
  oom.size = f.request;
  oom.stream = f.stream;
  const Stats& s = f.stats;
  oom.usage = {uint64_t(s.requested_bytes.all.current), uint64_t(s.allocated_bytes.all.current),
               uint64_t(s.reserved_bytes.all.current)};
  oom.cached_free = oom.usage.reserved > oom.usage.allocated ? oom.usage.reserved - oom.usage.allocated : 0;
  oom.largest_free_block = uint64_t(s.largest_free_block);
  oom.capacity = f.capacity;
  r.ooms.push_back(report::explain_oom(oom, std::nullopt));
  r.advice = report::what_to_do(r, std::nullopt);
  return r;
}

// The figures the allocator kept (with their peaks) and how to replay the dump.
std::string summary_text(const OomFacts& f, const Trace& recent, const std::string& trace_file) {
  const Stats& s = f.stats;
  const int64_t cached_free = s.reserved_bytes.all.current - s.allocated_bytes.all.current;
  std::string out = "hbmalloc: out of memory on device " + std::to_string(f.device) + " (" + f.backend + ")\n\n";
  out += line("failed request", format_bytes(f.request) + " (" + std::to_string(f.request) + " bytes) on stream " +
                                    std::to_string(f.stream));
  out += line("capacity", f.capacity ? format_bytes(f.capacity) : std::string("unlimited"));
  out += line("memory limit", s.memory_limit ? format_bytes(uint64_t(s.memory_limit)) : std::string("none"));
  out += line("reserved", with_peak(s.reserved_bytes.all));
  out += line("allocated", with_peak(s.allocated_bytes.all));
  out += line("requested", with_peak(s.requested_bytes.all));
  out += line("cached free", format_bytes(uint64_t(cached_free > 0 ? cached_free : 0)));
  out += line("largest free block", format_bytes(uint64_t(s.largest_free_block)));
  char frag[32];
  std::snprintf(frag, sizeof frag, "%.4f", s.external_fragmentation);
  out += line("external fragmentation", frag);
  out += line("segments", std::to_string(s.segment.all.current) + " (small pool " +
                              std::to_string(s.segment.small_pool.current) + ", large pool " +
                              std::to_string(s.segment.large_pool.current) + ")");
  out += line("live blocks", std::to_string(s.allocation.all.current));
  out += line("alloc retries / OOMs", std::to_string(s.num_alloc_retries) + " / " + std::to_string(s.num_ooms));
  out += "\n";
  if (s.reserved_bytes.all.current > 0 && uint64_t(cached_free) >= f.request)
    out += "  " + format_bytes(uint64_t(cached_free)) + " was cached free but no free block of " +
           format_bytes(f.request) + " was contiguous: fragmentation.\n";
  else if (f.capacity)
    out += "  the device could not hold the live blocks plus the request.\n";
  if (!recent.devices.empty()) {
    const DeviceTrace& d = recent.devices.front();
    out += "\n  trace of the recent past: " + trace_file + "\n  (" + std::to_string(d.events.size()) +
           " events, " + std::to_string(d.live_at_start.size()) + " blocks live at its start)\n";
    out += "  replay it:  hbmalloc replay " + trace_file +
           (f.capacity ? " --capacity " + std::to_string(f.capacity) : std::string()) + "\n";
  }
  return out;
}

}  // namespace

OomDumpFiles write_oom_dump(const std::string& dir, Trace recent, const OomFacts& facts) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::kInvalidArgument, dir + ": cannot create the OOM dump directory: " + ec.message());
  const std::string stem = (std::filesystem::path(dir) / ("hbmalloc-oom-" + std::to_string(getpid()) + "-dev" +
                                                            std::to_string(facts.device) + "-" +
                                                            std::to_string(dumps_written.fetch_add(1))))
                               .string();
  OomDumpFiles files{stem + ".hbt", stem + ".txt", stem + ".html"};
  write_hbt_file(recent, files.trace);
  std::string text = summary_text(facts, recent, files.trace);
  std::string html;
  if (!recent.devices.empty()) {
    recent.source = files.trace;
    try {
      report::FragReport r = frag_report_of(std::move(recent), facts);
      text += "\n" + report::render_text(r);
      html = report::render_html(r);
    } catch (const Error& e) {
      text += std::string("\n  (no fragmentation report: ") + e.what() + ")\n";
    }
  }
  write_whole_file(files.report, text);
  if (!html.empty()) write_whole_file(files.html, html);
  else files.html.clear();
  return files;
}

}  // namespace hbmalloc::trace
