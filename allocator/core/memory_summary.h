// PyTorch's torch.cuda.memory_summary of an allocator's statistics: the rows
// in PyTorch's order, their labels and figures, and the table as text. The
// runtime serves it live (hbm_memory_summary, the OOM dump); the analyser's
// reports show the same rows for a replay.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "hbmalloc/stats.hpp"

namespace hbmalloc {

// One row of the table.
struct SummaryRow {
  std::string name;   // "allocated_bytes", "active_bytes", ..., "inactive_split"
  bool bytes = true;  // byte figures, else block / segment counts
  StatArray stat;
};
struct MemorySummary {
  bool has_history = true;  // false: only `current` is known (static snapshot)
  std::vector<SummaryRow> rows;
  int64_t num_alloc_retries = 0, num_ooms = 0, num_device_alloc = 0, num_device_free = 0;
};

// Stats as summary rows, in PyTorch's memory_summary order; has_history false
// keeps only the current figures (a static snapshot).
MemorySummary summary_of(const Stats& s, bool has_history);
// The summary as table rows (label, current[, peak, total allocated, total
// freed]); pool rows are labelled with `indent` first.
std::vector<std::vector<std::string>> summary_cells(const MemorySummary& s, const std::string& indent);
// The memory_summary label of a row name ("reserved_bytes" -> "GPU reserved memory").
std::string summary_label(const std::string& name);
// A statistics counter: bytes in binary units, or a plain count.
std::string stat_figure(int64_t value, bool bytes);
// The table (with its header row) and, with history, the counters line below it.
void write_summary_table(std::ostream& out, const MemorySummary& s);
// The titled summary of a live device, with its cached free bytes, largest
// free block, fragmentation and limit (hbm_memory_summary).
std::string render_memory_summary(const Stats& s, int device);

}  // namespace hbmalloc
