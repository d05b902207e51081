#include "core/memory_summary.h"

#include <algorithm>
#include <sstream>
#include <utility>

#include "core/helpers.h"
#include "core/text_table.h"
#include "hbmalloc/config.hpp"

namespace hbmalloc {

MemorySummary summary_of(const Stats& s, bool has_history) {
  MemorySummary m;
  m.has_history = has_history;
  m.rows = {{"allocated_bytes", true, s.allocated_bytes},   {"active_bytes", true, s.active_bytes},
            {"requested_bytes", true, s.requested_bytes},   {"reserved_bytes", true, s.reserved_bytes},
            {"inactive_split_bytes", true, s.inactive_split_bytes}, {"allocation", false, s.allocation},
            {"active", false, s.active},                   {"segment", false, s.segment},
            {"inactive_split", false, s.inactive_split}};
  m.num_alloc_retries = s.num_alloc_retries;
  m.num_ooms = s.num_ooms;
  m.num_device_alloc = s.num_device_alloc;
  m.num_device_free = s.num_device_free;
  return m;
}

std::vector<std::vector<std::string>> summary_cells(const MemorySummary& s, const std::string& indent) {
  std::vector<std::vector<std::string>> cells;
  for (const SummaryRow& row : s.rows) {
    auto add = [&](const std::string& label, const StatCounter& c) {
      if (s.has_history)
        cells.push_back({label, stat_figure(c.current, row.bytes), stat_figure(c.peak, row.bytes),
                         stat_figure(c.allocated, row.bytes), stat_figure(c.freed, row.bytes)});
      else
        cells.push_back({label, stat_figure(c.current, row.bytes)});
    };
    add(summary_label(row.name), row.stat.all);
    add(indent + "from large pool", row.stat.large_pool);
    add(indent + "from small pool", row.stat.small_pool);
  }
  return cells;
}

std::string stat_figure(int64_t value, bool bytes) {
  if (!bytes) return std::to_string(value);
  // -(value + 1) + 1 keeps INT64_MIN from overflowing.
  if (value >= 0) return format_bytes(uint64_t(value));
  std::string s = format_bytes(uint64_t(-(value + 1)) + 1);
  s.insert(s.begin(), '-');
  return s;
}

std::string summary_label(const std::string& name) {
  static constexpr std::pair<const char*, const char*> kLabels[] = {
      {"allocated_bytes", "Allocated memory"},    {"active_bytes", "Active memory"},
      {"requested_bytes", "Requested memory"},    {"reserved_bytes", "GPU reserved memory"},
      {"inactive_split_bytes", "Non-releasable memory"}, {"allocation", "Allocations"},
      {"active", "Active allocs"},                {"segment", "GPU reserved segments"},
      {"inactive_split", "Non-releasable allocs"}};
  for (const auto& [key, label] : kLabels)
    if (name == key) return label;
  return name;
}

void write_summary_table(std::ostream& out, const MemorySummary& s) {
  TextTable t;
  if (s.has_history) t.row({"Metric", "Cur Usage", "Peak Usage", "Tot Alloc", "Tot Freed"});
  else t.row({"Metric", "Cur Usage"});
  for (auto& cells : summary_cells(s, "  ")) t.row(cells);
  t.write(out);
  if (s.has_history)
    out << "  alloc retries " << s.num_alloc_retries << ", OOMs " << s.num_ooms << ", device mallocs "
        << s.num_device_alloc << ", device frees " << s.num_device_free << '\n';
}

std::string render_memory_summary(const Stats& s, int device) {
  std::ostringstream out;
  title(out, "hbmalloc memory summary, device " + std::to_string(device));
  heading(out, "Memory summary (as torch.cuda.memory_summary)");
  write_summary_table(out, summary_of(s, true));
  const int64_t cached = s.reserved_bytes.all.current - s.allocated_bytes.all.current;
  out << "  cached free " << format_bytes(uint64_t(std::max<int64_t>(0, cached))) << ", largest free block "
      << format_bytes(uint64_t(s.largest_free_block)) << ", external fragmentation "
      << percent(s.external_fragmentation) << ", limit "
      << (s.memory_limit > 0 ? format_bytes(uint64_t(s.memory_limit)) : std::string("none")) << '\n';
  return out.str();
}

}  // namespace hbmalloc
