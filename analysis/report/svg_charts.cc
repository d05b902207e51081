#include "report/svg_charts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string_view>

#include "hbmalloc/config.hpp"
#include "report/format.h"
#include "report/layout_figures.h"
#include "report/markup.h"

namespace hbmalloc::report {

namespace {

// Colours shared by the charts and their legends.
constexpr const char* kRequested = "#2e8b57";
constexpr const char* kAllocated = "#3b6fb6";
constexpr const char* kReserved = "#555555";
constexpr const char* kReservedFill = "#e4e4e4";
constexpr const char* kWaste = "#f28e2b";
constexpr const char* kFree = "#cfe5c4";
constexpr const char* kMixed = "#9db4d8";
constexpr const char* kOom = "#d62728";
constexpr const char* kNative = "#8e44ad";
constexpr const char* kMarkStart = "#2f9e44";
constexpr const char* kMarkEnd = "#adb5bd";
constexpr const char* kMarkMetadata = "#e67700";

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", std::isfinite(v) ? v : 0.0);
  return buf;
}

// A small SVG writer: coordinates in pixels, text always escaped.
class Svg {
 public:
  Svg(double width, double height, const std::string& label) : height_(height) {
    // Inline in HTML5: no namespace declaration needed.
    out_ = "<svg width=\"" + num(width) + "\" height=\"" + num(height) +
           "\" viewBox=\"0 0 " + num(width) + " " + num(height) + "\" role=\"img\" aria-label=\"" +
           escape_html(label) + "\" font-family=\"sans-serif\">\n";
  }
  double height() const { return height_; }

  void rect(double x, double y, double w, double h, const char* fill, const std::string& title = "",
            const std::string& extra = "") {
    out_ += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(w) + "\" height=\"" + num(h) +
            "\" fill=\"" + fill + "\"" + (extra.empty() ? "" : " " + extra);
    out_ += title.empty() ? "/>\n" : "><title>" + escape_html(title) + "</title></rect>\n";
  }
  void line(double x1, double y1, double x2, double y2, const char* stroke, double width = 1,
            const char* dash = nullptr) {
    out_ += "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) +
            "\" stroke=\"" + stroke + "\" stroke-width=\"" + num(width) + "\"" +
            (dash ? std::string(" stroke-dasharray=\"") + dash + "\"" : "") + "/>\n";
  }
  // anchor: "start", "middle" or "end". A white halo keeps labels readable over lines.
  void text(double x, double y, const std::string& s, const char* anchor = "start", double size = 11,
            const char* fill = "#222", const std::string& extra = "") {
    out_ += "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" font-size=\"" + num(size) + "\" text-anchor=\"" +
            anchor + "\" fill=\"" + fill + "\"" + (extra.empty() ? "" : " " + extra) + ">" + escape_html(s) +
            "</text>\n";
  }
  void halo_text(double x, double y, const std::string& s, const char* anchor, const char* fill) {
    text(x, y, s, anchor, 11, fill, "stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\"");
  }
  void path(const std::string& d, const char* stroke, double width, const char* fill = "none") {
    out_ += "<path d=\"" + d + "\" stroke=\"" + stroke + "\" stroke-width=\"" + num(width) + "\" fill=\"" + fill +
            "\" stroke-linejoin=\"round\"/>\n";
  }
  void raw(const std::string& s) { out_ += s; }
  std::string finish() { return out_ + "</svg>\n"; }

 private:
  double height_;
  std::string out_;
};

// 1, 2, 2.5 or 5 times a power of ten, at least `raw`.
double nice_step(double raw) {
  if (!(raw > 0)) return 1;
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  double f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * p;
}

std::string tick_label(double v) {
  char buf[32];
  if (std::fabs(v) < 1e-9) v = 0;  // no "-0"
  if (std::fabs(v - std::round(v)) < 1e-9 && std::fabs(v) < 1e15) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

// A value axis from 0: ticks every `step` up to `top`, labelled in `unit`.
struct Axis {
  double unit = 1;  // raw value of one label unit (bytes per GiB, ...)
  std::string unit_name;
  double step = 1, top = 1;  // in label units
  double top_raw() const { return top * unit; }
};

Axis axis_for(double max, double unit, std::string unit_name, bool integer) {
  Axis a;
  a.unit = unit;
  a.unit_name = std::move(unit_name);
  double v = max / unit;
  a.step = nice_step(v / 5);
  if (integer) a.step = std::max(1.0, std::ceil(a.step));
  a.top = std::max(a.step, std::ceil(v / a.step - 1e-9) * a.step);
  return a;
}

Axis byte_axis(double max) {
  constexpr double kKiB = 1024.0, kMiB = kKiB * 1024, kGiB = kMiB * 1024, kTiB = kGiB * 1024;
  if (max >= kTiB) return axis_for(max, kTiB, "TiB", false);
  if (max >= kGiB) return axis_for(max, kGiB, "GiB", false);
  if (max >= kMiB) return axis_for(max, kMiB, "MiB", false);
  if (max >= kKiB) return axis_for(max, kKiB, "KiB", false);
  return axis_for(std::max(max, 1.0), 1, "B", true);
}

// Horizontal grid lines and labels of a value axis on [y_bottom, y_top].
void draw_value_axis(Svg& svg, const Axis& a, double x_left, double x_right, double y_bottom, double y_top) {
  // Counted steps: adding a step to a huge value may not change it.
  for (int k = 0; k <= 1000; ++k) {
    double v = a.step * k;
    if (v > a.top + a.step * 1e-6) break;
    double y = y_bottom - (y_bottom - y_top) * v / a.top;
    svg.line(x_left, y, x_right, y, v == 0 ? "#888" : "#e6e6e6", 1);
    std::string label = tick_label(v) + (a.unit_name.empty() ? "" : " " + a.unit_name);
    svg.text(x_left - 6, y + 4, label, "end", 11, "#444");
  }
}

// Keeps chart labels apart: a label that would overlap one already placed
// moves down, then up, a line at a time until it is clear.
class LabelPlacer {
 public:
  LabelPlacer(Svg& svg, double y_min, double y_max) : svg_(svg), y_min_(y_min), y_max_(y_max) {}

  void place(double x, double y, const std::string& text, const char* anchor, const char* fill) {
    const double w = 6.4 * double(text.size()), x0 = std::string_view(anchor) == "end" ? x - w : x;
    for (int step = 0; step < 40; ++step) {
      double dy = 14.0 * double((step + 1) / 2) * (step % 2 ? 1 : -1);
      Box b{x0, x0 + w, y + dy - 11, y + dy + 3};
      if (b.y0 < y_min_ || b.y1 > y_max_) continue;
      bool clear = true;
      for (const Box& o : placed_) clear = clear && (b.x1 < o.x0 || o.x1 < b.x0 || b.y1 < o.y0 || o.y1 < b.y0);
      if (!clear) continue;
      placed_.push_back(b);
      svg_.halo_text(x, y + dy, text, anchor, fill);
      return;
    }
    svg_.halo_text(x, y, text, anchor, fill);  // no room anywhere: overlap rather than lose it
  }

 private:
  struct Box {
    double x0, x1, y0, y1;
  };
  Svg& svg_;
  double y_min_, y_max_;
  std::vector<Box> placed_;
};

void legend(Svg& svg, double x, double y, const std::vector<std::pair<const char*, std::string>>& items) {
  for (const auto& [colour, name] : items) {
    svg.rect(x, y - 9, 14, 10, colour);
    svg.text(x + 19, y, name, "start", 12);
    x += 30 + 7.0 * double(name.size());
  }
}

}  // namespace

std::string timeline_svg(const FragReport& r) {
  const std::vector<replay::TimelinePoint>& pts = r.timeline;
  if (pts.empty()) return "";
  const double W = 1100, H = 400, L = 84, R = 24, T = 40, B = 52;
  const double pw = W - L - R, ph = H - T - B;

  // Time on the x axis when every point has one, else the event index.
  bool use_time = pts.back().time_us > pts.front().time_us;
  for (const replay::TimelinePoint& p : pts) use_time = use_time && p.time_us != 0;
  const int64_t t0 = pts.front().time_us;
  // Seconds, milliseconds or microseconds, whichever keeps tick labels short.
  const double span_us = double(pts.back().time_us) - double(t0);
  const double us_per_unit = span_us >= 2e6 ? 1e6 : span_us >= 2e3 ? 1e3 : 1;
  const char* time_unit = us_per_unit == 1e6 ? "s" : us_per_unit == 1e3 ? "ms" : "us";
  auto x_value = [&](uint64_t event, int64_t time_us) {
    return use_time ? (double(time_us) - double(t0)) / us_per_unit : double(event);
  };
  // An event's x: the time of the sample that covers it.
  auto x_of_event = [&](uint64_t event) {
    auto it = std::lower_bound(pts.begin(), pts.end(), event,
                               [](const replay::TimelinePoint& p, uint64_t e) { return p.event < e; });
    if (it == pts.end()) --it;
    return x_value(event, it->time_us);
  };
  double x_min = x_value(pts.front().event, pts.front().time_us);
  double x_max = x_value(pts.back().event, pts.back().time_us);
  for (const OomReport& o : r.ooms) x_max = std::max(x_max, x_value(o.event, o.time_us));
  if (!(x_max > x_min)) x_max = x_min + std::max(1.0, std::fabs(x_min) * 1e-9);  // + 1 is lost on huge values

  double y_max = 0;
  for (const replay::TimelinePoint& p : pts)
    y_max = std::max({y_max, double(p.usage.reserved), double(p.usage.allocated), double(p.usage.requested)});
  y_max = std::max(y_max, double(r.frag.peak_reserved));
  const bool has_native = r.native && r.native->peak_reserved;
  const uint64_t native = has_native ? *r.native->peak_reserved : 0;
  y_max = std::max(y_max, double(native));
  for (const OomReport& o : r.ooms) y_max = std::max(y_max, double(o.usage.reserved));
  // The capacity is drawn only when it is close enough to matter.
  const bool show_capacity = r.run.capacity && *r.run.capacity > 0 && double(*r.run.capacity) <= y_max * 1.3;
  if (show_capacity) y_max = std::max(y_max, double(*r.run.capacity));
  Axis ya = byte_axis(y_max);

  // The x axis spans the data exactly; ticks fall on round values inside it.
  Axis xa = axis_for(x_max - x_min, 1, "", !use_time);
  const double x_lo = x_min, x_hi = x_max;
  auto px = [&](double x) { return L + pw * (x - x_lo) / (x_hi - x_lo); };
  auto py = [&](double bytes) { return T + ph - ph * bytes / ya.top_raw(); };

  Svg svg(W, H, "memory over time");
  draw_value_axis(svg, ya, L, L + pw, T + ph, T);
  const double first_tick = std::ceil(x_lo / xa.step - 1e-9) * xa.step;
  for (int k = 0; k <= 1000; ++k) {
    const double x = first_tick + xa.step * k;
    if (x > x_hi + xa.step * 1e-6) break;
    svg.line(px(x), T + ph, px(x), T + ph + 5, "#888");
    svg.text(px(x), T + ph + 18, tick_label(x), "middle", 11, "#444");
  }
  svg.line(L, T, L, T + ph, "#888");
  svg.text(L + pw / 2, H - 10, use_time ? std::string("time since the first sample (") + time_unit + ")" : "event",
           "middle", 12, "#444");

  // Reserved as a filled area, allocated and requested as lines.
  std::string area = "M" + num(px(x_value(pts.front().event, pts.front().time_us))) + "," + num(py(0));
  std::string reserved, allocated, requested;
  for (const replay::TimelinePoint& p : pts) {
    std::string x = num(px(x_value(p.event, p.time_us)));
    area += " L" + x + "," + num(py(double(p.usage.reserved)));
    reserved += (reserved.empty() ? "M" : " L") + x + "," + num(py(double(p.usage.reserved)));
    allocated += (allocated.empty() ? "M" : " L") + x + "," + num(py(double(p.usage.allocated)));
    requested += (requested.empty() ? "M" : " L") + x + "," + num(py(double(p.usage.requested)));
  }
  area += " L" + num(px(x_value(pts.back().event, pts.back().time_us))) + "," + num(py(0)) + " Z";
  svg.path(area, "none", 0, kReservedFill);
  svg.path(reserved, kReserved, 1.5);
  // Allocated is drawn wider, under requested: where they coincide both show.
  svg.path(allocated, kAllocated, 4);
  svg.path(requested, kRequested, 1.5);

  // The recording's annotations and metadata changes: thin lines across the
  // plot, named on hover; a few distinct names labelled along the top.
  std::vector<std::pair<double, const TimelineMark*>> marked;
  for (const TimelineMark& m : r.marks) {
    if (marked.size() >= 5000) break;
    const double x = use_time && m.time_us > 0 ? x_value(m.event, m.time_us) : x_of_event(m.event);
    if (x < x_lo || x > x_hi) continue;
    const char* colour = m.kind == "metadata" ? kMarkMetadata : m.kind == "end" ? kMarkEnd : kMarkStart;
    const std::string what = m.kind == "metadata" ? "metadata \"" + m.text + "\"" : m.kind + " " + m.text;
    svg.raw("<g opacity=\"0.55\"><title>" + escape_html(what) + " (event " + std::to_string(m.event) + ")</title>");
    svg.line(px(x), T, px(x), T + ph, colour, 1, m.kind == "end" ? "2,2" : nullptr);
    svg.raw("</g>\n");
    marked.emplace_back(px(x), &m);
  }

  // Marks first, labels after, most important label first.
  const double peak_x = px(x_of_event(r.frag.peak_reserved_event));
  const double peak_y = py(double(r.frag.peak_reserved));
  if (show_capacity) svg.line(L, py(double(*r.run.capacity)), L + pw, py(double(*r.run.capacity)), "#000", 1, "2,3");
  if (has_native) svg.line(L, py(double(native)), L + pw, py(double(native)), kNative, 1.5, "7,4");
  svg.raw("<circle cx=\"" + num(peak_x) + "\" cy=\"" + num(peak_y) + "\" r=\"4.5\" fill=\"" + kReserved +
          "\"><title>peak reserved " + escape_html(format_bytes(r.frag.peak_reserved)) + " at event " +
          std::to_string(r.frag.peak_reserved_event) + "</title></circle>\n");

  LabelPlacer labels(svg, T, T + ph);
  // The peak's label goes on the side with more room.
  const bool right_half = peak_x > L + pw / 2;
  labels.place(peak_x + (right_half ? -8 : 8), peak_y - 8, "peak reserved " + format_bytes(r.frag.peak_reserved),
               right_half ? "end" : "start", kReserved);

  for (size_t i = 0; i < r.ooms.size() && i < 200; ++i) {
    const OomReport& o = r.ooms[i];
    double x = px(x_value(o.event, o.time_us));
    double y = py(double(o.usage.reserved));
    svg.raw("<g><title>OOM " + std::to_string(i + 1) + ": request " + escape_html(format_bytes(o.size)) +
            " at event " + std::to_string(o.event) + " (" + escape_html(o.cause) + ")</title>");
    svg.line(x - 5, y - 5, x + 5, y + 5, kOom, 2.5);
    svg.line(x - 5, y + 5, x + 5, y - 5, kOom, 2.5);
    svg.raw("</g>\n");
    if (i < 6) labels.place(x + 8, y + 16, "OOM " + std::to_string(i + 1), "start", kOom);
  }
  if (has_native)
    labels.place(L + 6, py(double(native)) - 5, "recording allocator's peak reserved " + format_bytes(native), "start",
                 kNative);
  std::vector<std::string> named;
  for (const auto& [x, m] : marked) {
    if (named.size() >= 6 || m->kind == "end") continue;
    const std::string text = m->kind == "metadata" ? "\"" + m->text + "\"" : m->text;
    if (std::find(named.begin(), named.end(), text) != named.end()) continue;
    named.push_back(text);
    labels.place(x + 3, T + 12, text.size() > 40 ? text.substr(0, 39) + "…" : text, "start",
                 m->kind == "metadata" ? kMarkMetadata : kMarkStart);
  }
  if (show_capacity)
    labels.place(L + pw - 4, py(double(*r.run.capacity)) - 5, "capacity " + format_bytes(*r.run.capacity), "end",
                 "#000");

  std::vector<std::pair<const char*, std::string>> items = {
      {kRequested, "requested"}, {kAllocated, "allocated"}, {kReserved, "reserved"}};
  if (has_native) items.push_back({kNative, "recording allocator's peak"});
  if (!r.ooms.empty()) items.push_back({kOom, "OOM"});
  if (!marked.empty()) items.push_back({kMarkStart, "annotation"});
  if (std::any_of(marked.begin(), marked.end(), [](const auto& m) { return m.second->kind == "metadata"; }))
    items.push_back({kMarkMetadata, "user metadata"});
  legend(svg, L, 20, items);
  return svg.finish();
}

std::string segment_map_svg(const SegmentMap& map, size_t max_rows) {
  const Layout& layout = map.layout;
  const double W = 1100, bar_x = 160, bar_w = 760, row_h = 14, gap = 6, top = 36;
  if (layout.empty()) {
    Svg svg(W, 40, "segment map " + map.title);
    svg.text(10, 24, "no segments held", "start", 12, "#666");
    return svg.finish();
  }

  // Too many segments: draw the telling ones, in address order. Segments
  // with holes come first (most free bytes first), then full ones, then
  // wholly free ones (cache empty_cache would return), larger first.
  std::vector<size_t> rows(layout.size());
  std::iota(rows.begin(), rows.end(), 0);
  std::vector<SegmentUse> uses;
  for (const SegmentLayout& s : layout) uses.push_back(use_of(s));
  auto kind = [&](size_t i) { return uses[i].allocated == 0 ? 2 : uses[i].allocated < uses[i].size ? 0 : 1; };
  if (rows.size() > max_rows) {
    std::stable_sort(rows.begin(), rows.end(), [&](size_t a, size_t b) {
      if (kind(a) != kind(b)) return kind(a) < kind(b);
      uint64_t fa = uses[a].size - uses[a].allocated, fb = uses[b].size - uses[b].allocated;
      if (kind(a) == 0 && fa != fb) return fa > fb;
      return uses[a].size > uses[b].size;
    });
    rows.resize(max_rows);
    std::sort(rows.begin(), rows.end());
  }
  uint64_t largest = 0;
  for (size_t i : rows) largest = std::max(largest, layout[i].size);

  const bool omitted = rows.size() < layout.size();
  const double H = top + double(rows.size()) * (row_h + gap) + (omitted ? 24 : 6);
  Svg svg(W, H, "segment map " + map.title);
  legend(svg, bar_x, 18,
         {{kAllocated, "allocated (requested)"}, {kWaste, "internal waste"}, {kFree, "free (cached)"},
          {kMixed, "small blocks, merged"}});

  // Shapes per segment are bounded so a map of a million blocks stays a
  // few thousand elements: blocks narrower than min_px are merged.
  const double per_segment = std::max(64.0, 8000.0 / double(rows.size()));
  for (size_t row = 0; row < rows.size(); ++row) {
    const SegmentLayout& seg = layout[rows[row]];
    const SegmentUse& u = uses[rows[row]];
    const double y = top + double(row) * (row_h + gap);
    const double seg_w = std::max(2.0, bar_w * double(seg.size) / double(largest));
    const double scale = seg_w / double(seg.size);
    const double min_px = std::max(0.8, seg_w / per_segment);
    svg.text(bar_x - 8, y + row_h - 3, hex(seg.addr) + (seg.pool == Pool::kSmall ? " small" : " large"), "end", 10,
             "#444", "font-family=\"monospace\"");
    svg.text(bar_x + bar_w + 8, y + row_h - 3, format_bytes(seg.size) + ", " + percent(u.utilization) + " used",
             "start", 10, "#444");
    svg.rect(bar_x, y, seg_w, row_h, "#fafafa", "", "stroke=\"#999\" stroke-width=\"0.5\"");

    // A run of blocks too narrow to draw one by one.
    struct Run {
      double x = 0, w = 0;
      uint64_t addr = 0, blocks = 0, allocated = 0, free = 0;
    } run;
    auto flush = [&]() {
      if (run.blocks == 0) return;
      const char* fill = run.blocks == 1 ? (run.allocated ? kAllocated : kFree) : (run.allocated >= run.free ? kMixed : kFree);
      svg.rect(run.x, y, std::max(run.w, 0.5), row_h, fill,
               std::to_string(run.blocks) + " block(s) at " + hex(run.addr) + ": " + format_bytes(run.allocated) +
                   " allocated, " + format_bytes(run.free) + " free");
      run = Run{};
    };
    for (const BlockLayout& b : seg.blocks) {
      const double x = bar_x + double(b.addr - seg.addr) * scale;
      const double w = double(b.size) * scale;
      if (w < min_px) {
        if (run.blocks == 0) run.x = x, run.addr = b.addr;
        ++run.blocks;
        run.w = x + w - run.x;
        (b.allocated ? run.allocated : run.free) += b.size;
        if (run.w >= min_px) flush();
        continue;
      }
      flush();
      if (!b.allocated) {
        svg.rect(x, y, w, row_h, kFree, hex(b.addr) + ": free " + format_bytes(b.size) + " (cached)");
        continue;
      }
      const uint64_t requested = std::min(b.requested, b.size);
      const double req_w = double(requested) * scale;
      svg.raw("<g><title>" +
              escape_html(hex(b.addr) + ": allocated " + format_bytes(b.size) + " (requested " +
                          format_bytes(requested) + ", waste " + format_bytes(b.size - requested) + ")") +
              "</title>");
      svg.rect(x, y, w, row_h, kWaste, "", w > 3 ? "stroke=\"#fff\" stroke-width=\"0.5\"" : "");
      if (req_w > 0) svg.rect(x, y, req_w, row_h, kAllocated, "", w > 3 ? "stroke=\"#fff\" stroke-width=\"0.5\"" : "");
      svg.raw("</g>\n");
    }
    flush();
  }
  if (omitted) {
    uint64_t count[3] = {0, 0, 0}, bytes[3] = {0, 0, 0};
    std::vector<bool> drawn(layout.size(), false);
    for (size_t i : rows) drawn[i] = true;
    for (size_t i = 0; i < layout.size(); ++i)
      if (!drawn[i]) ++count[kind(i)], bytes[kind(i)] += uses[i].size;
    std::string rest;
    const char* names[3] = {"with holes", "full", "wholly free"};
    for (int k = 0; k < 3; ++k)
      if (count[k]) rest += (rest.empty() ? "" : ", ") + std::to_string(count[k]) + " " + names[k] + " (" +
                            format_bytes(bytes[k]) + ")";
    svg.text(bar_x, H - 8,
             "showing " + std::to_string(rows.size()) + " of " + std::to_string(layout.size()) +
                 " segments, those with holes first; not drawn: " + rest,
             "start", 11, "#666");
  }
  return svg.finish();
}

std::string histogram_svg(const std::vector<SizeBucket>& buckets, bool bytes) {
  const double W = 540, H = 290, L = 70, R = 12, T = 30, B = 64;
  const double pw = W - L - R, ph = H - T - B;
  Svg svg(W, H, bytes ? "bytes by request size" : "requests by size");
  svg.text(L, 16, bytes ? "bytes requested, by request size" : "number of requests, by size", "start", 12, "#222");
  if (buckets.empty()) {
    svg.text(L, T + ph / 2, "no requests", "start", 12, "#666");
    return svg.finish();
  }
  double max = 0;
  for (const SizeBucket& b : buckets) max = std::max(max, double(bytes ? b.bytes : b.count));
  Axis a = bytes ? byte_axis(max) : axis_for(std::max(max, 1.0), 1, "", true);
  draw_value_axis(svg, a, L, L + pw, T + ph, T);
  const double bw = pw / double(buckets.size());
  const size_t label_every = size_t(std::max(1.0, std::ceil(15.0 / bw)));
  for (size_t i = 0; i < buckets.size(); ++i) {
    const SizeBucket& b = buckets[i];
    double v = double(bytes ? b.bytes : b.count);
    double h = ph * v / a.top_raw();
    double x = L + bw * double(i);
    std::string range = std::string("[").append(bucket_label(b.log2)).append(", ").append(bucket_label(b.log2 + 1));
    svg.rect(x + 1, T + ph - h, std::max(bw - 2, 1.0), h, bytes ? kAllocated : kRequested,
             range + "): " + std::to_string(b.count) + " requests, " + format_bytes(b.bytes));
    if (i % label_every == 0) {
      double lx = x + bw / 2, ly = T + ph + 12;
      svg.text(lx, ly, bucket_label(b.log2), "end", 10, "#444",
               "transform=\"rotate(-45 " + num(lx) + " " + num(ly) + ")\"");
    }
  }
  return svg.finish();
}

}  // namespace hbmalloc::report
