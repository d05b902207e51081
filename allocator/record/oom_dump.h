// The out-of-memory dump: the recent past of the failing device as a complete
// .hbt trace (replayable offline) and a summary of the allocator's figures
// next to it. The runtime renders no report: `hbmalloc report` / `explain`
// on the trace do, later and elsewhere (the summary names the commands).
#pragma once

#include <cstdint>
#include <string>

#include "hbmalloc/layout.hpp"
#include "hbmalloc/stats.hpp"
#include "record/trace.h"

namespace hbmalloc::trace {

// What the allocator knew when the request failed (copied under its lock).
struct OomFacts {
  int device = 0;
  std::string backend;
  uint64_t request = 0;
  uint64_t stream = 0;
  uint64_t capacity = 0;  // 0: unknown / unlimited
  Stats stats;            // largest_free_block filled in
  Layout layout;          // its segments and blocks
};

struct OomDumpFiles {
  std::string trace;    // dir/hbmalloc-oom-<pid>-dev<N>-<k>.hbt
  std::string summary;  // the same name, .txt: the figures, memory summary and segments at the failure
};

// Creates dir when missing and writes the two files. Throws Error naming
// the path that could not be written.
OomDumpFiles write_oom_dump(const std::string& dir, Trace recent, const OomFacts& facts);

}  // namespace hbmalloc::trace
