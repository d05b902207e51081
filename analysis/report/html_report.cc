#include "report/html_report.h"

#include <string>
#include <vector>

#include "hbmalloc/config.hpp"
#include "report/advice.h"
#include "report/format.h"
#include "report/markup.h"
#include "report/svg_charts.h"

namespace hbmalloc::report {

namespace {

constexpr size_t kMapsDrawn = 6;  // the peak and the first OOMs; the JSON has them all

constexpr const char* kStyle = R"(
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px 32px; color: #222;
       max-width: 1180px; }
h1 { font-size: 24px; margin: 0 0 4px 0; }
h2 { font-size: 18px; margin: 28px 0 8px 0; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.sub { color: #555; margin: 0 0 16px 0; word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 130px; background: #fafafa; }
.card .label { font-size: 12px; color: #666; }
.card .value { font-size: 20px; font-weight: 600; }
.card.bad .value { color: #c0392b; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f3f3f3; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.mono { font-family: monospace; }
ul.advice li { margin: 4px 0; }
.oom { border-left: 4px solid #d62728; padding: 4px 12px; margin: 10px 0; background: #fff7f7; }
.note { color: #666; font-size: 13px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
svg { background: #fff; }
details { font-size: 13px; margin: 2px 0; }
details pre { font-size: 12px; background: #f7f7f7; padding: 6px 10px; overflow-x: auto; }
)";

// A table whose cells are escaped here; `numeric` marks right-aligned columns.
class HtmlTable {
 public:
  HtmlTable(std::vector<std::string> head, std::string numeric) : numeric_(std::move(numeric)) {
    html_ = "<table>";
    if (head.empty()) return;
    html_ += "<tr>";
    for (size_t i = 0; i < head.size(); ++i) html_ += "<th" + cls(i) + ">" + escape_html(head[i]) + "</th>";
    html_ += "</tr>\n";
  }
  void row(const std::vector<std::string>& cells) {
    html_ += "<tr>";
    for (size_t i = 0; i < cells.size(); ++i) html_ += "<td" + cls(i) + ">" + escape_html(cells[i]) + "</td>";
    html_ += "</tr>\n";
  }
  std::string finish() const { return html_ + "</table>\n"; }

 private:
  std::string cls(size_t i) const {
    if (i >= numeric_.size()) return "";
    return numeric_[i] == 'n' ? " class=\"num\"" : numeric_[i] == 'm' ? " class=\"mono\"" : "";
  }
  std::string numeric_;
  std::string html_;
};

std::string card(const std::string& label, const std::string& value, bool bad = false) {
  return std::string("<div class=\"card") + (bad ? " bad" : "") + "\"><div class=\"label\">" + escape_html(label) +
         "</div><div class=\"value\">" + escape_html(value) + "</div></div>\n";
}

std::string h2(const std::string& title) { return "<h2>" + escape_html(title) + "</h2>\n"; }

std::string key_figures(const FragReport& r) {
  const Fragmentation& f = r.frag;
  std::string out = "<div class=\"cards\">\n";
  const bool snapshot = r.run.static_snapshot;
  out += card(snapshot ? "requested" : "peak requested", format_bytes(f.peak_requested));
  out += card(snapshot ? "allocated" : "peak allocated", format_bytes(f.peak_allocated));
  out += card(snapshot ? "reserved" : "peak reserved", format_bytes(f.peak_reserved));
  out += card("efficiency", percent(f.efficiency), f.peak_reserved > 0 && f.efficiency < 0.85);
  if (!f.moments.empty())
    out += card("external frag. (" + f.moments.front().moment + ")", percent(f.moments.front().external_fragmentation),
                fragmentation_matters(f.moments.front()));
  if (!snapshot) out += card("OOMs", std::to_string(r.ooms.size()), !r.ooms.empty());
  out += card("capacity", r.run.capacity ? format_bytes(*r.run.capacity) : std::string(snapshot ? "unknown" : "unlimited"));
  if (r.native && r.native->peak_reserved && !snapshot) {
    out += card("recording allocator peak reserved", format_bytes(*r.native->peak_reserved));
    out += card("recording allocator efficiency", percent(r.native->efficiency));
  }
  return out + "</div>\n";
}

std::string advice_section(const FragReport& r) {
  std::string out = h2("What to do") + "<ul class=\"advice\">\n";
  for (const std::string& a : r.advice) out += "<li>" + escape_html(a) + "</li>\n";
  return out + "</ul>\n";
}

std::string timeline_section(const FragReport& r) {
  if (r.run.static_snapshot) return "";
  std::string svg = timeline_svg(r);
  return h2("Memory over time") +
         (svg.empty() ? "<p class=\"note\">No timeline in this report (replay with timeline points to get one).</p>\n"
                      : svg);
}

std::string maps_section(const FragReport& r) {
  std::string out;
  for (size_t i = 0; i < r.maps.size() && i < kMapsDrawn; ++i) {
    const SegmentMap& m = r.maps[i];
    out += h2("Segment map at " + m.title + (r.run.static_snapshot ? "" : " (event " + std::to_string(m.event) + ")"));
    out += segment_map_svg(m);
  }
  if (r.maps.size() > kMapsDrawn)
    out += "<p class=\"note\">" + std::to_string(r.maps.size() - kMapsDrawn) +
           " more segment maps are in the JSON report.</p>\n";
  if (r.maps.empty() && !r.run.static_snapshot)
    out += h2("Segment map") + "<p class=\"note\">No segment map captured (replay with layouts to get one).</p>\n";
  return out;
}

std::string oom_section(const FragReport& r) {
  if (r.ooms.empty()) return "";
  std::string out = h2("Out of memory (" + std::to_string(r.ooms.size()) + ")");
  for (size_t i = 0; i < r.ooms.size() && i < kOomsListed; ++i) {
    const OomReport& o = r.ooms[i];
    out += "<div class=\"oom\"><p><b>OOM " + std::to_string(i + 1) + "</b>: request " +
           escape_html(format_bytes(o.size)) + " on stream " + std::to_string(o.stream) + " at event " +
           std::to_string(o.event) + ", cause: <b>" + escape_html(o.cause) + "</b></p>\n";
    HtmlTable t({"reserved", "allocated", "requested (live)", "cached free", "largest free block", "capacity"},
                "nnnnnn");
    t.row({format_bytes(o.usage.reserved), format_bytes(o.usage.allocated), format_bytes(o.usage.requested),
           format_bytes(o.cached_free), format_bytes(o.largest_free_block),
           o.capacity ? format_bytes(o.capacity) : "unlimited"});
    out += t.finish() + "<ul class=\"advice\">\n";
    for (const std::string& a : o.advice) out += "<li>" + escape_html(a) + "</li>\n";
    out += "</ul></div>\n";
  }
  if (const std::string more = unlisted_ooms(r.ooms); !more.empty())
    out += "<p class=\"note\">And " + escape_html(more) + ": the JSON report lists every one.</p>\n";
  return out;
}

std::string failed_requests_section(const FragReport& r) {
  if (r.failed_requests.empty()) return "";
  HtmlTable t({"#", "event", "request", "stream", "in this replay"}, "nnnnl");
  for (size_t i = 0; i < r.failed_requests.size() && i < kOomsListed; ++i) {
    const replay::FailedRequest& f = r.failed_requests[i];
    t.row({std::to_string(i + 1), std::to_string(f.event), format_bytes(f.size), std::to_string(f.stream),
           failed_request_verdict(f)});
  }
  std::string out = h2("Requests the recording failed (" + std::to_string(r.failed_requests.size()) + ")") + t.finish();
  if (const std::string more = unlisted_failed_requests(r.failed_requests); !more.empty())
    out += "<p class=\"note\">And " + escape_html(more) + ": the JSON report lists every one.</p>\n";
  return out;
}

// Where the peak and the OOMs fall among the recording's annotated ranges,
// and each distinct mark (the timeline draws them all).
std::string marks_section(const FragReport& r) {
  if (r.marks.empty()) return "";
  std::string out = h2("Timeline marks: annotations and user metadata (" + std::to_string(r.marks.size()) + ")");
  out += "<ul>\n";
  if (!r.run.static_snapshot)
    out += "<li>" + escape_html(falls_within(r.marks, "peak reserved", r.frag.peak_reserved_event)) + "</li>\n";
  for (size_t i = 0; i < r.ooms.size() && i < 5; ++i)
    out += "<li>" + escape_html(falls_within(r.marks, "OOM " + std::to_string(i + 1), r.ooms[i].event)) + "</li>\n";
  out += "</ul>\n";
  HtmlTable t({"times", "first event", "first time", "mark"}, "nnnl");
  const std::vector<MarkTally> tally = tally_marks(r.marks);
  for (size_t i = 0; i < tally.size() && i < 50; ++i)
    t.row({std::to_string(tally[i].times), std::to_string(tally[i].first->event),
           time_since(tally[i].first->time_us, r.run.first_time_us), tally[i].label});
  out += t.finish();
  if (tally.size() > 50) out += "<p class=\"note\">" + std::to_string(tally.size() - 50) + " other distinct marks: the JSON report lists every one.</p>\n";
  return out;
}

// A figure's name with what it means, e.g. "cached free (reserved - allocated)".
std::string label_of(const FigureRow& row) { return row.meaning.empty() ? row.name : row.name + " " + row.meaning; }

std::string fragmentation_section(const FragReport& r) {
  const Fragmentation& f = r.frag;
  std::string out = h2("Fragmentation");
  std::vector<std::string> head{""};
  std::string numeric = "-";
  for (const MomentFigures& m : f.moments) head.push_back("at " + m.moment), numeric += 'n';
  HtmlTable t(head, numeric);
  for (const FigureRow& row : moment_rows(f)) {
    std::vector<std::string> cells{label_of(row)};
    cells.insert(cells.end(), row.values.begin(), row.values.end());
    t.row(cells);
  }
  out += t.finish();

  if (r.native && !r.run.static_snapshot) {
    HtmlTable c({"", "this replay", "recording allocator"}, "-nn");
    for (const FigureRow& row : native_rows(r)) c.row({label_of(row), row.values[0], row.values[1]});
    out += "<p>Compared with the allocator that recorded the trace:</p>\n" + c.finish();
  }
  return out;
}

std::string holes_section(const FragReport& r) {
  const Fragmentation& f = r.frag;
  if (r.maps.empty()) return "";
  std::string out = h2("Worst holes at " + r.maps.front().title);
  if (f.worst_holes.empty()) {
    out += "<p class=\"note\">None: every free block lies in a wholly free segment.</p>\n";
  } else {
    out += "<p class=\"note\">The largest free blocks in segments that also hold live blocks: cached memory that "
           "cannot be released while those blocks live.</p>\n";
    HtmlTable t({"#", "address", "size", "segment", "segment size", "segment used"}, "nmnmnn");
    for (size_t i = 0; i < f.worst_holes.size(); ++i) {
      const Hole& h = f.worst_holes[i];
      t.row({std::to_string(i + 1), hex(h.addr), format_bytes(h.size), hex(h.segment_addr),
             format_bytes(h.segment_size), percent(h.segment_utilization)});
    }
    out += t.finish();
  }
  out += h2("Least utilized segments in use (" + std::to_string(f.least_utilized.size()) + " of " +
            std::to_string(f.segments_total) + ")");
  if (f.free_segments > 0)
    out += "<p class=\"note\">Besides these, " + std::to_string(f.free_segments) + " wholly free segment(s) hold " +
           escape_html(format_bytes(f.free_segment_bytes)) + " (released by empty_cache).</p>\n";
  HtmlTable t({"address", "pool", "size", "allocated", "requested", "blocks", "free blocks", "used"}, "m-nnnnnn");
  for (const SegmentUse& u : f.least_utilized)
    t.row({hex(u.addr), u.pool == Pool::kSmall ? "small" : "large", format_bytes(u.size), format_bytes(u.allocated),
           format_bytes(u.requested), std::to_string(u.blocks), std::to_string(u.free_blocks), percent(u.utilization)});
  return out + t.finish();
}

std::string sites_section(const FragReport& r) {
  std::string out = h2("Who holds the memory (allocation sites)");
  if (!r.has_stacks)
    return out + "<p class=\"note\">No stacks recorded (torch.cuda.memory._record_memory_history() records them).</p>\n";
  for (const SitesAt& at : r.sites) {
    out += "<p class=\"note\">At " + escape_html(at.moment) +
           (r.run.static_snapshot ? std::string() : " (event " + std::to_string(at.event) + ")") + ": " +
           escape_html(format_bytes(at.live_bytes)) + " requested in " + std::to_string(at.live_blocks) +
           " live blocks, by the innermost frame outside PyTorch and Python.</p>\n";
    HtmlTable t({"site", "live", "share", "blocks"}, "-nnn");
    for (const Site& s : at.sites)
      t.row({s.where, format_bytes(s.bytes), at.live_bytes ? percent(double(s.bytes) / double(at.live_bytes)) : "-",
             std::to_string(s.blocks)});
    out += t.finish();
    for (const Site& s : at.sites) {
      if (s.stack.empty()) continue;
      out += "<details><summary>" + escape_html(s.where) + ": the whole stack</summary><pre>";
      for (const std::string& frame : s.stack) out += escape_html(frame) + "\n";
      out += "</pre></details>\n";
    }
  }
  for (const PinsAt& at : r.pins) {
    out += "<p class=\"note\">What pins the fragmentation at " + escape_html(at.moment) + ": " +
           escape_html(format_bytes(at.pinned)) +
           " cached free that live blocks keep from being released (in a page-mapped segment, the bytes on the pages "
           "they share), nor usable for a larger request while these blocks live (each segment's such bytes charged "
           "to its blocks' sites by their bytes).</p>\n";
    HtmlTable t({"site", "pins", "blocks", "their bytes", "segments"}, "-nnnn");
    for (const Pin& p : at.sites)
      t.row({p.where, format_bytes(p.pinned), std::to_string(p.blocks), format_bytes(p.live), std::to_string(p.segments)});
    out += t.finish();
  }
  return out;
}

std::string sizes_section(const FragReport& r) {
  std::string out = h2(std::string("Request sizes (") + (r.run.static_snapshot ? "live blocks" : "alloc events") + ")");
  return out + "<div class=\"charts\">\n" + histogram_svg(r.sizes, false) + histogram_svg(r.sizes, true) + "</div>\n";
}

std::string summary_section(const MemorySummary& s) {
  std::string out = h2("Memory summary (as torch.cuda.memory_summary)");
  HtmlTable t(s.has_history ? std::vector<std::string>{"metric", "current", "peak", "total allocated", "total freed"}
                            : std::vector<std::string>{"metric", "current"},
              "-nnnn");
  for (auto& cells : summary_cells(s, "\u2003")) t.row(cells);
  out += t.finish();
  if (s.has_history)
    out += "<p class=\"note\">alloc retries " + std::to_string(s.num_alloc_retries) + ", OOMs " +
           std::to_string(s.num_ooms) + ", device mallocs " + std::to_string(s.num_device_alloc) +
           ", device frees " + std::to_string(s.num_device_free) + "</p>\n";
  return out;
}

std::string run_section(const FragReport& r) {
  const RunFacts& f = r.run;
  HtmlTable t({}, "--");
  t.row({"source", f.source});
  t.row({"format", (f.format.empty() ? std::string("unknown") : f.format) +
                       (f.recorder.empty() ? "" : ", recorded by " + f.recorder)});
  t.row({"device", std::to_string(f.device)});
  if (f.static_snapshot) t.row({"kind", "static snapshot (no replay)"});
  else t.row({"policy", f.policy + " (" + f.config + ")"});
  t.row({"capacity", f.capacity ? format_bytes(*f.capacity) : std::string(f.static_snapshot ? "unknown" : "unlimited")});
  if (!f.static_snapshot || f.events > 0)
    t.row({"events", std::to_string(f.events) + " (" + std::to_string(f.allocs) + " allocs, " +
                         std::to_string(f.frees) + " frees)"});
  if (f.last_time_us > f.first_time_us) t.row({"time span", duration_us(double(f.last_time_us) - double(f.first_time_us))});
  if (!f.static_snapshot) t.row({"replay time", duration_us(f.replay_seconds * 1e6)});
  for (const auto& [key, value] : f.settings) t.row({"setting " + key, value});
  return h2("Run") + t.finish();
}

}  // namespace

std::string render_html(const DiffReport& d) {
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>hbmalloc diff</title>\n<style>" +
                    std::string(kStyle) + "</style></head>\n<body>\n<h1>hbmalloc diff</h1>\n";
  out += "<p class=\"sub\">A: " + escape_html(d.a_name) + "<br>B: " + escape_html(d.b_name) + "</p>\n";
  out += h2("Peaks");
  HtmlTable t({"", "A", "B"}, "-nn");
  t.row({"peak requested", format_bytes(d.a.frag.peak_requested), format_bytes(d.b.frag.peak_requested)});
  t.row({"peak allocated", format_bytes(d.a.frag.peak_allocated), format_bytes(d.b.frag.peak_allocated)});
  t.row({"peak reserved", format_bytes(d.a.frag.peak_reserved), format_bytes(d.b.frag.peak_reserved)});
  t.row({"efficiency", percent(d.a.frag.efficiency), percent(d.b.frag.efficiency)});
  t.row({"OOMs", std::to_string(d.a.ooms.size()), std::to_string(d.b.ooms.size())});
  out += t.finish();
  out += h2("Live bytes by site at each peak reserved");
  if (!d.has_stacks) {
    out += "<p class=\"note\">No stacks recorded in one of the traces.</p>\n";
  } else {
    HtmlTable s({"site", "A", "B", "change"}, "-nnn");
    for (size_t i = 0; i < d.sites.size() && i < 40; ++i) {
      const SiteChange& c = d.sites[i];
      s.row({c.where, format_bytes(c.a), format_bytes(c.b), signed_bytes(c.change())});
    }
    out += s.finish();
  }
  for (const auto& [label, r] : {std::pair<const char*, const FragReport*>{"A", &d.a}, {"B", &d.b}}) {
    if (r->maps.empty()) continue;
    out += h2(std::string(label) + ": segment map at " + r->maps.front().title);
    out += segment_map_svg(r->maps.front());
  }
  return out + "</body></html>\n";
}

std::string render_html(const FragReport& r) {
  std::string subtitle = r.run.source + " \u00b7 device " + std::to_string(r.run.device) + " \u00b7 " +
                         (r.run.static_snapshot ? std::string("static snapshot") : "policy " + r.run.policy);
  std::string out = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>hbmalloc report: " +
                    escape_html(r.run.source) + "</title>\n<style>" + kStyle + "</style></head>\n<body>\n";
  out += "<h1>hbmalloc fragmentation report</h1>\n<p class=\"sub\">" + escape_html(subtitle) + "</p>\n";
  out += key_figures(r);
  out += advice_section(r);
  out += timeline_section(r);
  out += oom_section(r);
  out += failed_requests_section(r);
  out += marks_section(r);
  out += maps_section(r);
  out += fragmentation_section(r);
  out += sites_section(r);
  out += holes_section(r);
  out += sizes_section(r);
  out += summary_section(r.summary);
  out += run_section(r);
  out += "</body></html>\n";
  return out;
}

}  // namespace hbmalloc::report
