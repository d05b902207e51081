// `hbmalloc explain` as text for a terminal and as one HTML page.
#include <cstdio>
#include <sstream>

#include "hbmalloc/config.hpp"
#include "report/explain.h"
#include "report/markup.h"
#include "report/unlisted.h"

namespace hbmalloc::report {
namespace {

std::string bytes_or(const std::optional<uint64_t>& v, const char* none) { return v ? format_bytes(*v) : none; }

std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f ms", s * 1e3);
  return buf;
}

std::string heading_of(const OomCause& c, size_t i) {
  if (c.at_peak) return "No OOM recorded: explained at the peak (event " + std::to_string(c.event) + ")";
  return "OOM " + std::to_string(i + 1) + " at event " + std::to_string(c.event) + ": request " +
         format_bytes(c.request) + " on stream " + std::to_string(c.stream);
}

Unlisted cause_of(const OomCause& c) { return {c.event, c.request, c.cause}; }

}  // namespace

std::string render_text(const Explanation& e) {
  std::ostringstream out;
  out << "hbmalloc explain: " << e.source << " (" << e.format << ", device " << e.device << ")\n";
  out << "  device " << bytes_or(e.capacity, "unknown") << " (" << e.capacity_source << ")\n\n";
  for (size_t i = 0; i < e.ooms.size() && i < kOomsListed; ++i) {
    const OomCause& c = e.ooms[i];
    out << heading_of(c, i) << "\n";
    out << "  cause: " << c.cause << "\n  " << c.detail << "\n";
    out << "  live " << format_bytes(c.live);
    if (c.reserved) out << ", recording reserved " << format_bytes(*c.reserved);
    if (c.device_free) out << ", device free " << format_bytes(*c.device_free);
    out << "\n\n";
  }
  if (const std::string more = sum_up(unlisted(e.ooms, cause_of)); !more.empty())
    out << "... and " << more << " (--json lists every one)\n\n";
  out << "Replayed at " << bytes_or(e.capacity, "an unlimited device") << ":\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-36s %-4s %14s %14s %12s  %s\n", "setting", "fits", "peak reserved",
                "min capacity", "device time", "line");
  out << line;
  for (const SettingRow& r : e.rows) {
    if (!r.error.empty()) {
      out << "  " << r.name << ": error: " << r.error << "\n";
      continue;
    }
    std::snprintf(line, sizeof line, "  %-36s %-4s %14s %14s %12s  ", r.name.c_str(), r.fits ? "yes" : "no",
                  format_bytes(r.peak_reserved).c_str(), bytes_or(r.min_capacity, "none").c_str(),
                  seconds_text(r.device_seconds).c_str());
    out << line << r.line << "\n";
  }
  out << "\n" << e.verdict << "\n";
  return out.str();
}

std::string render_html(const Explanation& e) {
  std::string out =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>hbmalloc explain: " +
      escape_html(e.source) +
      "</title>\n<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:1100px}"
      "table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}"
      ".num{text-align:right}.verdict{font-size:16px;padding:10px;background:#eef5ff;border-left:4px solid #36c}"
      "</style></head>\n<body>\n<h1>What to do about this OOM</h1>\n<p>" +
      escape_html(e.source + " (" + e.format + ", device " + std::to_string(e.device) + "), device " +
                  bytes_or(e.capacity, "unknown") + " (" + e.capacity_source + ")") +
      "</p>\n<p class=\"verdict\">" + escape_html(e.verdict) + "</p>\n";
  for (size_t i = 0; i < e.ooms.size() && i < kOomsListed; ++i) {
    const OomCause& c = e.ooms[i];
    out += "<h2>" + escape_html(heading_of(c, i)) + "</h2>\n<p>cause: <b>" + escape_html(c.cause) + "</b>: " +
           escape_html(c.detail) + "</p>\n";
  }
  if (const std::string more = sum_up(unlisted(e.ooms, cause_of)); !more.empty())
    out += "<p>And " + escape_html(more) + ": <code>--json</code> lists every one.</p>\n";
  out += "<h2>Replayed at " + escape_html(bytes_or(e.capacity, "an unlimited device")) +
         "</h2>\n<table><tr><th>setting</th><th>fits</th><th class=\"num\">peak reserved</th>"
         "<th class=\"num\">min capacity</th><th class=\"num\">device time</th><th>line</th></tr>\n";
  for (const SettingRow& r : e.rows)
    out += "<tr><td>" + escape_html(r.name) + "</td><td>" +
           (r.error.empty() ? (r.fits ? "yes" : "no") : "error: " + escape_html(r.error)) + "</td><td class=\"num\">" +
           escape_html(format_bytes(r.peak_reserved)) + "</td><td class=\"num\">" +
           escape_html(bytes_or(r.min_capacity, "none")) + "</td><td class=\"num\">" +
           escape_html(seconds_text(r.device_seconds)) + "</td><td><code>" + escape_html(r.line) + "</code></td></tr>\n";
  out += "</table>\n</body></html>\n";
  return out;
}

}  // namespace hbmalloc::report
