#include "trace/trace_checks.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "core/helpers.h"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "record/segment_ranges.h"

namespace hbmalloc::trace {
namespace {

class DeviceCheck {
 public:
  DeviceCheck(const Trace& t, const DeviceTrace& d) : t_(t), d_(d) {}

  void run() {
    check_picture(d_.segments_at_start, "at start");
    check_picture(d_.segments_at_end, "at end");
    for (const BlockInfo& b : d_.live_at_start) check_requested(b, "live at start");
    check_events();
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::kInvalidArgument, t_.source + ": device " + std::to_string(d_.device) + ": " + what);
  }
  [[noreturn]] void fail_event(uint64_t i, const std::string& what) const {
    const Event& e = d_.events[i];
    fail("event " + std::to_string(i) + " (" + action_name(e.action) + " of " + std::to_string(e.size) +
         " bytes at " + hex(e.addr) + "): " + what);
  }

  void check_size(uint64_t size, const std::string& what) const {
    if (size > kMaxDeviceBytes)
      fail(what + " of " + std::to_string(size) + " bytes: more than the largest device hbmalloc models (1 PiB)");
  }

  // Whether [addr, addr + size) lies in one segment held.
  static bool inside(const SegmentRanges& held, uint64_t addr, uint64_t size) {
    const auto* seg = held.find(addr);
    return seg != nullptr && size <= seg->first + seg->second.size - addr;
  }

  // A block in use holds what was asked of it: PyTorch's free blocks keep the
  // request they last served (often more than what is left of them), its
  // live blocks never do. Size 0 is "not told".
  void check_requested(const BlockInfo& b, const std::string& when) const {
    if (b.state != BlockState::kInactive && b.size != 0 && b.requested > b.size)
      fail("a block " + when + " at " + hex(b.addr) + " holds " + std::to_string(b.size) + " bytes for a request of " +
           std::to_string(b.requested));
  }

  // Segments apart from each other, each within the largest device, together
  // too, and each holding its blocks (in address order, apart).
  void check_picture(const std::vector<SegmentInfo>& segments, const char* when) const {
    std::vector<const SegmentInfo*> sorted;
    uint64_t total = 0;
    for (const SegmentInfo& s : segments) {
      check_size(s.size, std::string("a segment ") + when + " at " + hex(s.addr));
      total += s.size;
      if (total > kMaxDeviceBytes)
        fail(std::string("the segments ") + when + " hold more than the largest device hbmalloc models (1 PiB)");
      if (s.addr != 0) sorted.push_back(&s);  // address 0: the format does not tell (profiler traces)
    }
    std::sort(sorted.begin(), sorted.end(), [](const SegmentInfo* a, const SegmentInfo* b) { return a->addr < b->addr; });
    for (size_t i = 0; i < sorted.size(); ++i) {
      const SegmentInfo& s = *sorted[i];
      if (s.size > UINT64_MAX - s.addr) fail(std::string("the segment ") + when + " at " + hex(s.addr) + " wraps around");
      if (i + 1 < sorted.size() && s.addr + s.size > sorted[i + 1]->addr)
        fail(std::string("segments ") + when + " at " + hex(s.addr) + " and " + hex(sorted[i + 1]->addr) + " overlap");
      uint64_t end_of_last = s.addr;
      for (const BlockInfo& b : s.blocks) {
        if (b.addr < end_of_last || b.addr > s.addr + s.size || b.size > s.addr + s.size - b.addr)
          fail("a block at " + hex(b.addr) + " of " + std::to_string(b.size) + " bytes lies outside its segment " +
               when + " at " + hex(s.addr) + " (" + std::to_string(s.size) + " bytes) or over the block before it");
        end_of_last = b.addr + b.size;
        check_requested(b, std::string("in the segment ") + when + " at " + hex(s.addr));
      }
    }
  }

  // Requests within the largest device, alone and all live together (with a
  // failed request on top); segment events that add up (never more freed than
  // held), and, where addresses are known, that free or unmap only what was
  // held, allocate segments only where nothing was and blocks only inside one.
  void check_events() const {
    // Where each block was allocated (0: not told; ids past block_count are replay's to name).
    std::vector<uint64_t> at(d_.block_count, 0);
    uint64_t at_start = 0;  // clamped per block, so hostile sizes cannot wrap the sum
    for (const BlockInfo& b : d_.live_at_start) {
      at_start += std::min(b.requested, kMaxDeviceBytes + 1);
      if (b.id < at.size()) at[b.id] = b.addr;
    }
    if (at_start > kMaxDeviceBytes)
      fail("the blocks live at start hold more than the largest device hbmalloc models (1 PiB)");
    FiguresTally tally(d_);  // the requested bytes live and the segment bytes held, as the events go
    bool addressed = d_.has_segment_picture;
    for (const SegmentInfo& s : d_.segments_at_start) addressed = addressed && s.addr != 0;
    // Blocks are held to lie in segments only where the trace tells of any
    // (a hand-made snapshot may give events and no segments at all).
    const bool places_blocks =
        !d_.segments_at_start.empty() || std::any_of(d_.events.begin(), d_.events.end(), [](const Event& e) {
          return e.action == Action::kSegmentAlloc || e.action == Action::kSegmentMap;
        });
    SegmentRanges held;
    if (addressed)
      for (const SegmentInfo& s : d_.segments_at_start) held.add(s.addr, {s.size, s.stream, s.small_pool, s.expandable});
    if (addressed && places_blocks)
      for (const BlockInfo& b : d_.live_at_start)
        if (b.addr != 0 && !inside(held, b.addr, std::max(b.size, uint64_t{1})))
          fail("a block live at start at " + hex(b.addr) + " lies in no segment at start");
    for (uint64_t i = 0; i < d_.events.size(); ++i) {
      const Event& e = d_.events[i];
      switch (e.action) {
        case Action::kAlloc:
        case Action::kOom:
          if (e.size > kMaxDeviceBytes) fail_event(i, "more than the largest device hbmalloc models (1 PiB)");
          if (tally.live_requested() + e.size > kMaxDeviceBytes)
            fail_event(i, "with the requests live then, more than the largest device hbmalloc models (1 PiB)");
          // Where segments are placed, a block lies in one held then.
          if (e.action == Action::kAlloc && addressed && places_blocks && e.addr != 0) {
            if (!inside(held, e.addr, e.size)) fail_event(i, "it lies in no segment held then");
          }
          if (e.action == Action::kAlloc && e.id < at.size()) at[e.id] = e.addr;
          break;
        case Action::kFreeRequested:
        case Action::kFree:
          // A free names its block by id and by address: both the same block.
          if (e.id < at.size() && e.addr != 0 && at[e.id] != 0 && e.addr != at[e.id])
            fail_event(i, "it frees block " + std::to_string(e.id) + ", which was allocated at " + hex(at[e.id]));
          break;
        case Action::kSegmentAlloc:
        case Action::kSegmentMap:
          if (tally.reserved() + e.size > kMaxDeviceBytes)
            fail_event(i, "the segments would hold more than the largest device hbmalloc models (1 PiB)");
          addressed = addressed && e.addr != 0;
          if (addressed && !(e.action == Action::kSegmentAlloc ? held.add(e.addr, {e.size, e.stream, false, false})
                                                                 : held.map(e.addr, e.size, {e.size, e.stream, false, true})))
            fail_event(i, "it overlaps a segment held then");
          break;
        case Action::kSegmentFree:
        case Action::kSegmentUnmap:
          if (e.size > tally.reserved())
            fail_event(i, "frees more segment bytes than are held then (" + std::to_string(tally.reserved()) + ")");
          addressed = addressed && e.addr != 0;
          if (addressed && !(e.action == Action::kSegmentFree ? held.remove(e.addr, e.size) : held.unmap(e.addr, e.size)))
            fail_event(i, e.action == Action::kSegmentFree ? "no segment of that address and size was allocated"
                                                           : "no segment holds that range then");
          break;
        default:
          break;
      }
      tally.add(e);
    }
  }

  const Trace& t_;
  const DeviceTrace& d_;
};

}  // namespace

void check_trace(const Trace& trace) {
  for (const DeviceTrace& d : trace.devices) DeviceCheck(trace, d).run();
}

}  // namespace hbmalloc::trace
