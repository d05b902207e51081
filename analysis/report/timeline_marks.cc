#include "report/timeline_marks.h"

#include <algorithm>

namespace hbmalloc::report {
namespace {

std::string kind_of(const trace::Annotation& a) {
  const std::string_view stage = a.field("stage");
  if (stage == "START") return "start";
  if (stage == "END") return "end";
  return "annotation";
}

// The name, else every field but the stage as "key=value".
std::string text_of(const trace::Annotation& a) {
  if (std::string_view name = a.field("name"); !name.empty()) return std::string(name);
  std::string out;
  for (const auto& [key, value] : a.fields) {
    if (key == "stage") continue;
    if (!out.empty()) out += ", ";
    out += key + "=" + value;
  }
  return out;
}

}  // namespace

std::vector<TimelineMark> timeline_marks(const trace::Trace& t, const trace::DeviceTrace& d) {
  std::vector<TimelineMark> marks;
  for (const trace::MetadataChange& c : d.user_metadata) {
    const int64_t time = c.event < d.events.size() ? d.events[c.event].time_us : 0;
    marks.push_back(TimelineMark{c.event, time, "metadata", c.text});
  }
  // Events' times may step back a little (threads stamp them): the first
  // event at or after an annotation is found on their running maximum.
  std::vector<int64_t> latest(d.events.size());
  int64_t so_far = INT64_MIN;
  for (size_t i = 0; i < d.events.size(); ++i) latest[i] = so_far = std::max(so_far, d.events[i].time_us);
  const bool timed = !d.events.empty() && latest.back() > 0;
  if (timed) {
    for (const trace::Annotation& a : t.annotations) {
      if (a.device != d.device || a.time_us <= 0) continue;
      const uint64_t event = uint64_t(std::lower_bound(latest.begin(), latest.end(), a.time_us) - latest.begin());
      marks.push_back(TimelineMark{event, a.time_us, kind_of(a), text_of(a)});
    }
  }
  std::stable_sort(marks.begin(), marks.end(), [](const TimelineMark& a, const TimelineMark& b) {
    return a.event != b.event ? a.event < b.event : a.time_us < b.time_us;
  });
  return marks;
}

OpenAt open_at(const std::vector<TimelineMark>& marks, uint64_t event) {
  OpenAt at;
  for (const TimelineMark& m : marks) {
    if (m.event > event) break;
    if (m.kind == "metadata") {
      at.metadata = m.text;
    } else if (m.kind == "start") {
      at.ranges.push_back(m.text);
    } else if (m.kind == "end") {
      // The innermost open range of that name ends (ranges need not nest).
      auto it = std::find(at.ranges.rbegin(), at.ranges.rend(), m.text);
      if (it != at.ranges.rend()) at.ranges.erase(std::next(it).base());
    }
  }
  return at;
}

std::string falls_within(const std::vector<TimelineMark>& marks, const std::string& moment, uint64_t event) {
  const OpenAt at = open_at(marks, event);
  std::string where;
  for (const std::string& range : at.ranges) where += (where.empty() ? "" : " > ") + range;
  if (where.empty()) where = "no annotated range";
  if (!at.metadata.empty()) where += "; metadata \"" + at.metadata + "\"";
  return moment + " (event " + std::to_string(event) + ") falls within: " + where;
}

std::string mark_label(const TimelineMark& m) {
  if (m.kind == "metadata") return m.text.empty() ? "metadata cleared" : "metadata \"" + m.text + "\"";
  const std::string stage = m.kind == "start" ? "START " : m.kind == "end" ? "END   " : "";
  return stage + m.text;
}

std::vector<MarkTally> tally_marks(const std::vector<TimelineMark>& marks) {
  std::vector<MarkTally> tally;
  for (const TimelineMark& m : marks) {
    const bool range = m.kind == "start" || m.kind == "end";
    const std::string label = range ? "range " + m.text : mark_label(m);
    auto it = std::find_if(tally.begin(), tally.end(), [&](const MarkTally& e) { return e.label == label; });
    if (it == tally.end()) it = tally.insert(tally.end(), MarkTally{label, 0, &m});
    if (m.kind != "end") ++it->times;
  }
  for (MarkTally& t : tally) t.times = std::max<size_t>(t.times, 1);  // ended only: it began before the trace
  std::stable_sort(tally.begin(), tally.end(), [](const MarkTally& a, const MarkTally& b) { return a.times > b.times; });
  return tally;
}

}  // namespace hbmalloc::report
