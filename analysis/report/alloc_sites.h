// Who holds the memory: the blocks live at one moment of a trace, grouped by
// where they were allocated (the innermost frame of the allocation's stack
// outside PyTorch and Python internals), most bytes first.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "hbmalloc/layout.hpp"
#include "record/trace.h"

namespace hbmalloc::report {

struct Site {
  std::string where;   // "train.py:88 forward", "(no stack recorded)", "(allocated before the trace began)", "(other sites)"
  uint64_t bytes = 0;  // live requested bytes allocated there
  uint64_t blocks = 0;
  std::vector<std::string> stack;  // one of its stacks, innermost frame first ("file:line name")
};

struct SitesAt {
  std::string moment;   // "peak reserved", "OOM 1", "snapshot"
  uint64_t event = 0;   // the trace's event index the moment is at
  uint64_t live_bytes = 0, live_blocks = 0;  // every live block (the sites add up to these)
  std::vector<Site> sites;
};

// What a replay had not allocated at that moment: blocks whose request
// failed before (by id), and, during the start, the blocks live at start
// from `start_done` on (a replay allocates them in id order).
struct NotAllocated {
  const std::vector<char>* failed = nullptr;
  uint32_t start_done = trace::kNoBlock;
};

// The blocks live after the first `events` events of device `d` (live at
// start included), less what `replayed` says was not allocated, grouped by
// site: the `top` largest sites, then one "(other sites)" for the rest.
SitesAt sites_at(const trace::Trace& t, const trace::DeviceTrace& d, uint64_t events, std::string moment,
                 NotAllocated replayed = {}, size_t top = 10);
// The same for the live blocks of `d`'s final picture (a static snapshot).
SitesAt sites_of_picture(const trace::Trace& t, const trace::DeviceTrace& d, std::string moment, size_t top = 10);

// What pins the fragmentation: the free bytes of segments that also hold
// live blocks can be neither released nor used for a request larger than
// their pieces while those blocks live. Each such segment's free bytes are
// charged to the sites of its live blocks, in proportion to their bytes there.
struct Pin {
  std::string where;      // the site, as in Site
  uint64_t pinned = 0;    // cached free bytes its blocks keep
  uint64_t blocks = 0;    // its live blocks in those segments
  uint64_t live = 0;      // their bytes
  uint64_t segments = 0;  // segments it shares in
};
struct PinsAt {
  std::string moment;
  uint64_t pinned = 0;  // the free bytes live blocks keep from empty_cache (the pins add up to it)
  std::vector<Pin> sites;  // most pinned first: the top ones, then "(other sites)"
};
// `layout` is a replay's picture and `ids` the trace block id of each live
// block there, by address (ReplayResult::peak_block_ids). A segment's free
// bytes are pinned by its live blocks, but for the whole pages of an
// expandable segment, which empty_cache gives back (unreleasable_bytes).
PinsAt pins_at(const trace::Trace& t, const trace::DeviceTrace& d, const Layout& layout,
               const std::vector<std::pair<uint64_t, uint32_t>>& ids, std::string moment, size_t top = 10);

// The innermost frame outside PyTorch and Python internals, as "file:line
// name" (the file's last path component); the innermost Python frame when
// every one is internal; for a stack without Python (the backward pass), the
// autograd node or ATen operator ("autograd NllLossBackward0"), else its
// innermost frame; "(no stack recorded)" for kNoStack.
std::string site_of(const trace::Trace& t, uint32_t stack);

}  // namespace hbmalloc::report
