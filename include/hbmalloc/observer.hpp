// Watching what an Allocator does: one interface for everything that follows
// it, the recorder (traces and the OOM dump), a replay's fidelity log and
// PyTorch's allocation history. Attach with Allocator::add_observer.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "hbmalloc/layout.hpp"
#include "hbmalloc/stats.hpp"
#include "hbmalloc/types.hpp"

namespace hbmalloc {

// What the allocator holds when an observer is attached.
struct ObservedStart {
  int device = 0;
  uint64_t capacity = 0;  // 0: unlimited
  std::vector<std::pair<std::string, std::string>> settings;  // the allocator's config
  Layout layout;  // every segment held and its blocks
  std::vector<uint64_t> pending_frees;  // live blocks whose free waits on other streams' work, ascending
};

// A request that failed for want of memory after the cache went back.
struct ObservedOom {
  int device = 0;
  uint64_t request = 0;
  StreamId stream = 0;
  uint64_t device_free = 0;  // what the device had left (0: unknown)
  uint64_t capacity = 0;     // 0: unlimited
  std::string_view backend;  // its name
  // The figures (hbmalloc's own filled in) and the layout at the failure,
  // worked out on demand: only an observer that keeps them pays for them.
  std::function<Stats()> stats;
  std::function<Layout()> layout;
};

// Every call comes under the allocator's lock, in the order things happened,
// from the thread that made them happen: an observer is quick, thread-safe
// when it watches several allocators, and never calls back into the
// allocator. Each method does nothing unless overridden.
class AllocatorObserver {
 public:
  virtual ~AllocatorObserver() = default;

  // Once, as it is attached; throwing refuses the attach.
  virtual void attached(const ObservedStart&) {}
  // Once, as it is detached or the allocator goes.
  virtual void detached(int /*device*/) {}

  // A block handed out: `requested` bytes asked for, `size` taken.
  virtual void allocated(int /*device*/, uint64_t /*ptr*/, uint64_t /*requested*/, uint64_t /*size*/,
                         Pool /*pool*/, StreamId /*stream*/) {}
  // A free with no other stream's work to wait for: both moments at once.
  virtual void freed(int device, uint64_t ptr) {
    free_requested(device, ptr);
    free_completed(device, ptr);
  }
  // The two moments of a free that waits for other streams: the caller lets
  // go, and later the memory is reusable.
  virtual void free_requested(int /*device*/, uint64_t /*ptr*/) {}
  virtual void free_completed(int /*device*/, uint64_t /*ptr*/) {}
  virtual void stream_recorded(int /*device*/, uint64_t /*ptr*/, StreamId /*stream*/) {}
  // Before the cache goes back to the device (after pending frees completed).
  virtual void cache_emptied(int /*device*/) {}
  // What the allocator reserves changed: a segment taken or given back, or a
  // range of pages mapped (usable) or unmapped.
  virtual void segment_changed(int /*device*/, const SegmentEvent& /*event*/) {}

  // An allocation failed; `oom`'s functions may be called only during the call.
  virtual void out_of_memory(const ObservedOom& /*oom*/) {}
  // Right after, with the allocator's lock let go (slow work goes here): a
  // note for the error's text, such as where a dump went, or "".
  virtual std::string out_of_memory_note(int /*device*/) { return {}; }
};

}  // namespace hbmalloc
