#include "report/text_report.h"

#include <algorithm>
#include <sstream>
#include <utility>
#include <vector>

#include "core/memory_summary.h"
#include "core/text_table.h"
#include "hbmalloc/config.hpp"
#include "report/advice.h"
#include "report/format.h"

namespace hbmalloc::report {

namespace {

using Table = TextTable;

void run_section(std::ostream& out, const FragReport& r) {
  const RunFacts& f = r.run;
  heading(out, "Run");
  Table t("ll");
  t.row({"source", f.source});
  std::string format = f.format.empty() ? "unknown" : f.format;
  if (!f.recorder.empty()) format += ", recorded by " + f.recorder;
  t.row({"format", format});
  t.row({"device", std::to_string(f.device)});
  if (f.static_snapshot) t.row({"kind", "static snapshot (segments and blocks of one moment, no replay)"});
  else t.row({"policy", f.policy + "  (" + f.config + ")"});
  t.row({"capacity", f.capacity ? format_bytes(*f.capacity) : std::string(f.static_snapshot ? "unknown" : "unlimited")});
  std::string events = std::to_string(f.events) + " (" + std::to_string(f.allocs) + " allocs, " +
                       std::to_string(f.frees) + " frees)";
  if (f.last_time_us > f.first_time_us) events += " over " + duration_us(double(f.last_time_us) - double(f.first_time_us));
  if (!f.static_snapshot || f.events > 0) t.row({"events", events});
  if (!f.static_snapshot) t.row({"replay time", duration_us(f.replay_seconds * 1e6)});
  for (const auto& [key, value] : f.settings) t.row({"setting", key + " = " + value});
  t.write(out);
}

void summary_section(std::ostream& out, const MemorySummary& s) {
  heading(out, "Memory summary (as torch.cuda.memory_summary)");
  write_summary_table(out, s);
}

void fragmentation_section(std::ostream& out, const FragReport& r) {
  const Fragmentation& f = r.frag;
  heading(out, "Fragmentation");
  Table peaks("ll");
  if (r.run.static_snapshot) {
    peaks.row({"requested", format_bytes(f.peak_requested)});
    peaks.row({"allocated", format_bytes(f.peak_allocated)});
    peaks.row({"reserved", format_bytes(f.peak_reserved)});
    peaks.row({"efficiency", percent(f.efficiency) + "  (requested / reserved)"});
  } else {
    peaks.row({"peak requested", format_bytes(f.peak_requested)});
    peaks.row({"peak allocated", format_bytes(f.peak_allocated)});
    peaks.row({"peak reserved", format_bytes(f.peak_reserved) + "  (event " + std::to_string(f.peak_reserved_event) + ")"});
    peaks.row({"efficiency", percent(f.efficiency) + "  (peak requested / peak reserved)"});
  }
  peaks.write(out);
  if (f.moments.empty()) return;
  out << '\n';
  Table t;
  std::vector<std::string> head{"at"};
  for (const MomentFigures& m : f.moments) head.push_back(m.moment);
  t.row(head);
  for (const FigureRow& row : moment_rows(f)) {
    std::vector<std::string> cells{row.name};
    cells.insert(cells.end(), row.values.begin(), row.values.end());
    t.row(cells);
  }
  t.write(out);
}

void native_section(std::ostream& out, const FragReport& r) {
  if (!r.native || r.run.static_snapshot) return;
  heading(out, "Versus the recording allocator");
  Table t;
  t.row({"", "this replay", "recorded"});
  for (const FigureRow& row : native_rows(r)) t.row({row.name, row.values[0], row.values[1]});
  t.write(out);
}

void sites_section(std::ostream& out, const FragReport& r) {
  heading(out, "Who holds the memory (allocation sites)");
  if (!r.has_stacks) {
    out << "  no stacks recorded (torch.cuda.memory._record_memory_history() records them)\n";
    return;
  }
  for (const SitesAt& at : r.sites) {
    out << "  at " << at.moment << (r.run.static_snapshot ? "" : " (event " + std::to_string(at.event) + ")") << ": "
        << format_bytes(at.live_bytes) << " requested in " << at.live_blocks << " live blocks\n";
    Table t;
    t.row({"site", "live", "share", "blocks"});
    for (const Site& s : at.sites)
      t.row({s.where, format_bytes(s.bytes), at.live_bytes ? percent(double(s.bytes) / double(at.live_bytes)) : "-",
             std::to_string(s.blocks)});
    t.write(out);
  }
  for (const PinsAt& at : r.pins) {
    out << "\n  what pins the fragmentation at " << at.moment << ": " << format_bytes(at.pinned)
        << " cached free that live blocks keep\n"
        << "  from being released (in a page-mapped segment, the bytes on the pages they share), kept by\n";
    if (at.sites.empty()) {
      out << "  nothing: every cached free byte could be released\n";
      continue;
    }
    Table t;
    t.row({"site", "pins", "blocks", "their bytes", "segments"});
    for (const Pin& p : at.sites)
      t.row({p.where, format_bytes(p.pinned), std::to_string(p.blocks), format_bytes(p.live), std::to_string(p.segments)});
    t.write(out);
  }
}

void holes_section(std::ostream& out, const FragReport& r) {
  const Fragmentation& f = r.frag;
  if (r.maps.empty()) return;
  heading(out, "Worst holes (free blocks in segments that hold live blocks, at " + r.maps.front().title + ")");
  if (f.worst_holes.empty()) {
    out << "  none: every free block is in a wholly free segment\n";
  } else {
    Table t;
    t.row({"#", "address", "size", "segment", "segment size", "segment used"});
    for (size_t i = 0; i < f.worst_holes.size(); ++i) {
      const Hole& h = f.worst_holes[i];
      t.row({std::to_string(i + 1), hex(h.addr), format_bytes(h.size), hex(h.segment_addr),
             format_bytes(h.segment_size), percent(h.segment_utilization)});
    }
    t.write(out);
  }
  heading(out, "Least utilized segments in use (" + std::to_string(f.least_utilized.size()) + " of " +
                   std::to_string(f.segments_total) + ")");
  if (f.free_segments > 0)
    out << "  plus " << f.free_segments << " wholly free segment(s) holding " << format_bytes(f.free_segment_bytes)
        << " (released by empty_cache)\n";
  Table t;
  t.row({"address", "pool", "size", "allocated", "requested", "blocks", "free blocks", "used"});
  for (const SegmentUse& u : f.least_utilized)
    t.row({hex(u.addr), u.pool == Pool::kSmall ? "small" : "large", format_bytes(u.size), format_bytes(u.allocated),
           format_bytes(u.requested), std::to_string(u.blocks), std::to_string(u.free_blocks), percent(u.utilization)});
  t.write(out);
}

void oom_section(std::ostream& out, const FragReport& r) {
  if (r.ooms.empty()) return;
  heading(out, "Out of memory (" + std::to_string(r.ooms.size()) + ")");
  for (size_t i = 0; i < r.ooms.size() && i < kOomsListed; ++i) {
    const OomReport& o = r.ooms[i];
    out << "  #" << i + 1 << " event " << o.event;
    if (o.time_us != 0 && r.run.first_time_us != 0) out << " at " << duration_us(double(o.time_us) - double(r.run.first_time_us));
    out << ": request " << format_bytes(o.size) << " on stream " << o.stream << ", cause: " << o.cause << '\n';
    Table t("lrlr");
    t.row({"reserved", format_bytes(o.usage.reserved), "allocated", format_bytes(o.usage.allocated)});
    t.row({"cached free", format_bytes(o.cached_free), "largest free block", format_bytes(o.largest_free_block)});
    t.row({"capacity", o.capacity ? format_bytes(o.capacity) : "unlimited", "requested (live)",
           format_bytes(o.usage.requested)});
    t.write(out, "     ");
    for (const std::string& a : o.advice) out << "     - " << a << '\n';
  }
  if (const std::string more = unlisted_ooms(r.ooms); !more.empty())
    out << "  ... and " << more << " (--json lists every one)\n";
}

// Each request the recording failed: did this replay serve it?
void failed_requests_section(std::ostream& out, const FragReport& r) {
  if (r.failed_requests.empty()) return;
  heading(out, "Requests the recording failed (" + std::to_string(r.failed_requests.size()) + ")");
  for (size_t i = 0; i < r.failed_requests.size() && i < kOomsListed; ++i) {
    const replay::FailedRequest& f = r.failed_requests[i];
    out << "  #" << i + 1 << " event " << f.event << ": request " << format_bytes(f.size) << " on stream "
        << f.stream << ": " << failed_request_verdict(f) << '\n';
  }
  if (const std::string more = unlisted_failed_requests(r.failed_requests); !more.empty())
    out << "  ... and " << more << " (--json lists every one)\n";
}

// Where the peak and the OOMs fall among the recording's annotated ranges,
// then the marks themselves (a tally of them when there are many).
void marks_section(std::ostream& out, const FragReport& r) {
  if (r.marks.empty()) return;
  heading(out, "Timeline marks: annotations and user metadata (" + std::to_string(r.marks.size()) + ")");
  if (!r.run.static_snapshot) out << "  " << falls_within(r.marks, "peak reserved", r.frag.peak_reserved_event) << '\n';
  for (size_t i = 0; i < r.ooms.size() && i < 5; ++i)
    out << "  " << falls_within(r.marks, "OOM " + std::to_string(i + 1), r.ooms[i].event) << '\n';
  constexpr size_t kListed = 16;
  if (r.marks.size() <= kListed) {
    Table t("rll");
    t.row({"event", "time", "mark"});
    for (const TimelineMark& m : r.marks) t.row({std::to_string(m.event), time_since(m.time_us, r.run.first_time_us), mark_label(m)});
    t.write(out);
    return;
  }
  const std::vector<MarkTally> tally = tally_marks(r.marks);
  Table t("rrll");
  t.row({"times", "first event", "first time", "mark"});
  for (size_t i = 0; i < tally.size() && i < kListed; ++i)
    t.row({std::to_string(tally[i].times), std::to_string(tally[i].first->event),
           time_since(tally[i].first->time_us, r.run.first_time_us), tally[i].label});
  t.write(out);
  if (tally.size() > kListed) out << "  ... and " << tally.size() - kListed << " other distinct marks (--json lists every one)\n";
}

void sizes_section(std::ostream& out, const FragReport& r) {
  if (r.sizes.empty()) return;
  heading(out, std::string("Request sizes (") + (r.run.static_snapshot ? "live blocks" : "alloc events") + ")");
  uint64_t most = 0;
  for (const SizeBucket& b : r.sizes) most = std::max(most, b.bytes);
  Table t("rrrl");
  t.row({"from", "count", "bytes", "share of bytes"});
  for (const SizeBucket& b : r.sizes) {
    if (b.count == 0) continue;  // the charts keep empty buckets; the table need not
    size_t bar = most ? size_t(double(b.bytes) / double(most) * 30.0 + 0.5) : 0;
    t.row({bucket_label(b.log2), std::to_string(b.count), format_bytes(b.bytes), std::string(bar, '#')});
  }
  t.write(out);
}

}  // namespace

std::string render_text(const FragReport& r) {
  std::ostringstream out;
  title(out, "hbmalloc fragmentation report: " + r.run.source + ", device " + std::to_string(r.run.device));
  run_section(out, r);
  summary_section(out, r.summary);
  fragmentation_section(out, r);
  native_section(out, r);
  sites_section(out, r);
  holes_section(out, r);
  oom_section(out, r);
  failed_requests_section(out, r);
  marks_section(out, r);
  sizes_section(out, r);
  heading(out, "What to do");
  for (const std::string& a : r.advice) out << "  - " << a << '\n';
  return out.str();
}

}  // namespace hbmalloc::report
