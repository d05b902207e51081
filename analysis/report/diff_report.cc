#include "report/diff_report.h"

#include <algorithm>
#include <map>
#include <sstream>
#include <utility>

#include "core/helpers.h"
#include "core/text_table.h"
#include "report/alloc_sites.h"
#include "report/format.h"
#include "report/json_report.h"

namespace hbmalloc::report {

namespace {

using nlohmann::json;

std::string name_of(const FragReport& r) {
  return r.run.source + (r.run.static_snapshot ? " (static snapshot)" : " (" + r.run.config + ")");
}

// Every site's live bytes at the report's peak reserved (the snapshot, for a static one).
std::map<std::string, uint64_t> sites_at_peak(const trace::Trace& t, const FragReport& r) {
  std::map<std::string, uint64_t> out;
  if (t.stacks.empty()) return out;
  const trace::DeviceTrace& d = t.device_or_error(r.run.device);
  const SitesAt at = r.run.static_snapshot
                         ? sites_of_picture(t, d, "snapshot", SIZE_MAX)
                         : sites_at(t, d, r.frag.peak_reserved_event + 1, "peak reserved", {}, SIZE_MAX);
  for (const Site& s : at.sites) out[s.where] = s.bytes;
  return out;
}

const MomentFigures* peak_moment(const FragReport& r) {
  return r.frag.moments.empty() ? nullptr : &r.frag.moments.front();
}

// The side-by-side figures: name, A, B, change (text).
struct PeakRow {
  std::string name;
  uint64_t a = 0, b = 0;
  bool bytes = true;
};
std::vector<PeakRow> peak_rows(const DiffReport& d) {
  std::vector<PeakRow> rows = {{"peak requested", d.a.frag.peak_requested, d.b.frag.peak_requested},
                               {"peak allocated", d.a.frag.peak_allocated, d.b.frag.peak_allocated},
                               {"peak reserved", d.a.frag.peak_reserved, d.b.frag.peak_reserved},
                               {"OOMs", d.a.ooms.size(), d.b.ooms.size(), false}};
  const MomentFigures* ma = peak_moment(d.a);
  const MomentFigures* mb = peak_moment(d.b);
  if (ma && mb) {
    rows.push_back({"segments at peak", ma->segments, mb->segments, false});
    rows.push_back({"cached free at peak", ma->cached_free, mb->cached_free});
    rows.push_back({"largest free block", ma->largest_free_block, mb->largest_free_block});
    rows.push_back({"inactive split", ma->inactive_split_bytes, mb->inactive_split_bytes});
  }
  return rows;
}

}  // namespace

DiffReport diff_reports(const trace::Trace& ta, FragReport a, const trace::Trace& tb, FragReport b) {
  DiffReport d;
  d.a_name = name_of(a);
  d.b_name = name_of(b);
  d.has_stacks = !ta.stacks.empty() && !tb.stacks.empty();
  if (d.has_stacks) {
    std::map<std::string, SiteChange> by_site;
    for (const auto& [where, bytes] : sites_at_peak(ta, a)) by_site[where].a = bytes;
    for (const auto& [where, bytes] : sites_at_peak(tb, b)) by_site[where].b = bytes;
    for (auto& [where, change] : by_site) {
      change.where = where;
      d.sites.push_back(change);
    }
    std::stable_sort(d.sites.begin(), d.sites.end(),
                     [](const SiteChange& x, const SiteChange& y) { return x.change() > y.change(); });
  }
  d.a = std::move(a);
  d.b = std::move(b);
  return d;
}

std::string render_text(const DiffReport& d) {
  std::ostringstream out;
  title(out, "hbmalloc diff");
  out << "  A  " << d.a_name << "\n  B  " << d.b_name << "\n";
  heading(out, "Peaks");
  TextTable t;
  t.row({"", "A", "B", "change"});
  for (const PeakRow& r : peak_rows(d))
    t.row({r.name, r.bytes ? format_bytes(r.a) : std::to_string(r.a), r.bytes ? format_bytes(r.b) : std::to_string(r.b),
           r.bytes ? signed_bytes(int64_t(r.b) - int64_t(r.a)) : std::to_string(int64_t(r.b) - int64_t(r.a))});
  t.row({"efficiency", percent(d.a.frag.efficiency), percent(d.b.frag.efficiency), ""});
  t.write(out);
  heading(out, "Live bytes by site at each peak reserved");
  if (!d.has_stacks) {
    out << "  no stacks recorded (in " << (d.a.has_stacks ? "B" : d.b.has_stacks ? "A" : "either trace") << ")\n";
  } else {
    TextTable s;
    s.row({"site", "A", "B", "change"});
    const size_t shown = std::min<size_t>(d.sites.size(), 20);
    for (size_t i = 0; i < shown; ++i) {
      const SiteChange& c = d.sites[i];
      s.row({c.where, format_bytes(c.a), format_bytes(c.b), signed_bytes(c.change())});
    }
    s.write(out);
    if (d.sites.size() > shown) out << "  and " << d.sites.size() - shown << " more sites (--json lists every one)\n";
  }
  heading(out, "Segment picture at each peak");
  for (const auto& [label, r] : {std::pair<const char*, const FragReport*>{"A", &d.a}, {"B", &d.b}}) {
    const MomentFigures* m = peak_moment(*r);
    if (m == nullptr) {
      out << "  " << label << ": no picture captured\n";
      continue;
    }
    out << "  " << label << ": " << m->segments << " segments, " << format_bytes(m->reserved) << " reserved, "
        << format_bytes(m->cached_free) << " cached free, largest free block " << format_bytes(m->largest_free_block)
        << ", external fragmentation " << percent(m->external_fragmentation) << "\n";
  }
  return out.str();
}

void to_json(json& j, const DiffReport& d) {
  json peaks = json::object();
  for (const PeakRow& r : peak_rows(d)) peaks[r.name] = {{"a", r.a}, {"b", r.b}};
  peaks["efficiency"] = {{"a", d.a.frag.efficiency}, {"b", d.b.frag.efficiency}};
  json sites = json::array();
  for (const SiteChange& c : d.sites) sites.push_back({{"where", c.where}, {"a", c.a}, {"b", c.b}, {"change", c.change()}});
  j = {{"format", "hbmalloc-diff"},
       {"a", d.a_name},
       {"b", d.b_name},
       {"peaks", peaks},
       {"has_stacks", d.has_stacks},
       {"sites", sites},
       {"report_a", d.a},
       {"report_b", d.b}};
}

}  // namespace hbmalloc::report
