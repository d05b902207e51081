// Replays a trace once per grid point, in parallel over the machine's
// cores, and ranks what each setting did: fits or not at the capacity, peak
// reserved, efficiency, OOMs, the least capacity with no OOM.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "record/trace.h"
#include "tune/grid.h"

namespace hbmalloc::tune {

struct SweepOptions {
  int device = 0;
  std::optional<uint64_t> capacity;  // unlimited when absent
  unsigned threads = 0;              // 0: one per hardware thread
  bool min_capacity = true;          // also search each point's least capacity (the slow part)
  // Called on the calling thread as points finish, with (done, total), and
  // once more at the end with (total, total).
  std::function<void(uint64_t, uint64_t)> progress;
};

struct PointResult {
  Point point;
  size_t index = 0;  // place in the grid's order
  bool fits = false;  // no OOM at the capacity
  uint64_t peak_requested = 0, peak_allocated = 0, peak_reserved = 0;
  double efficiency = 0;  // peak requested / peak reserved
  uint64_t ooms = 0;
  std::optional<uint64_t> min_capacity;
  double device_seconds = 0;  // every device memory call of the replay, priced by the model (stats.hpp)
  std::string error;  // when the replay itself failed
};

// Replays every point (each on a thread of its own at a time; the trace is
// only read) and returns them ranked: fitting first, then the lowest peak
// reserved, the lowest least capacity, fewer OOMs, fewer keys set, grid order.
std::vector<PointResult> sweep(const trace::Trace& trace, const std::vector<Point>& points,
                               const SweepOptions& options);

// The order sweep() returns (exposed for tests).
bool ranks_before(const PointResult& a, const PointResult& b);

}  // namespace hbmalloc::tune
