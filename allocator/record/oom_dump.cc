#include "record/oom_dump.h"

#include <unistd.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <filesystem>

#include <algorithm>
#include <sstream>

#include "core/helpers.h"
#include "core/memory_summary.h"
#include "core/text_table.h"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "record/hbt_writer.h"
#include "record/write_file.h"

namespace hbmalloc::trace {
namespace {

// Dumps of one process are numbered, so repeated OOMs never overwrite each other.
std::atomic<unsigned> dumps_written{0};

std::string line(const char* name, const std::string& value) {
  char buf[256];
  std::snprintf(buf, sizeof buf, "  %-24s %s\n", name, value.c_str());
  return buf;
}

// The report page's name beside the trace: X.hbt -> X.html.
std::string html_name(const std::string& trace_file) {
  return trace_file.substr(0, trace_file.size() - std::string_view(".hbt").size()) + ".html";
}

std::string with_peak(const StatCounter& c) {
  return format_bytes(uint64_t(c.current)) + " (peak " + format_bytes(uint64_t(c.peak)) + ")";
}

// The segments holding the most cached free memory at the failure: where
// the free bytes the request could not use sat.
std::string segments_text(const Layout& layout) {
  struct Row {
    const SegmentLayout* seg;
    uint64_t live = 0, free = 0, largest = 0;
    size_t blocks = 0;
  };
  std::vector<Row> rows;
  for (const SegmentLayout& seg : layout) {
    Row r{&seg};
    for (const BlockLayout& b : seg.blocks) {
      if (b.allocated) {
        r.live += b.size;
        ++r.blocks;
      } else {
        r.free += b.size;
        r.largest = std::max(r.largest, b.size);
      }
    }
    rows.push_back(r);
  }
  if (rows.empty()) return "";
  constexpr size_t kShown = 10;
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.free > b.free; });
  std::ostringstream out;
  out << "\n  segments at the failure: " << rows.size()
      << (rows.size() > kShown ? ", the " + std::to_string(kShown) + " with the most cached free memory" : "") << "\n";
  TextTable t("lrrrrl");
  t.row({"address", "size", "live", "blocks", "free", "largest free"});
  for (size_t i = 0; i < rows.size() && i < kShown; ++i) {
    const Row& r = rows[i];
    t.row({hex(r.seg->addr), format_bytes(r.seg->size), format_bytes(r.live), std::to_string(r.blocks),
           format_bytes(r.free), format_bytes(r.largest)});
  }
  t.write(out, "    ");
  return out.str();
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
    const std::string capacity = f.capacity ? " --capacity " + std::to_string(f.capacity) : std::string();
    out += "  explain it: hbmalloc explain " + trace_file + capacity + "\n";
    out += "  report:     hbmalloc report " + trace_file + " --html " + html_name(trace_file) + "\n";
    out += "  replay it:  hbmalloc replay " + trace_file + capacity + " --min-capacity\n";
  }
  out += segments_text(f.layout);
  std::ostringstream table;
  table << "\n  memory summary (as torch.cuda.memory_summary):\n";
  write_summary_table(table, summary_of(s, true));
  return out + table.str();
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
  OomDumpFiles files{stem + ".hbt", stem + ".txt"};
  write_hbt_file(recent, files.trace);
  write_whole_file(files.summary, summary_text(facts, recent, files.trace));
  return files;
}

}  // namespace hbmalloc::trace
