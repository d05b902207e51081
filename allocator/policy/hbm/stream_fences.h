// Which streams' queued work is done with a freed block, so that another
// stream may take it or its memory may be unmapped. Once the policy has seen
// two streams, each stream keeps one fence: an event recorded on it at one
// of its large frees or allocations, the moments its caller is using it, never
// later (a block's stream may be gone by the time another stream wants the
// block, and an event recorded on it then would be an error). A block freed
// before its stream's fence is settled once the fence's event is done. One
// fence pending at a time bounds the events recorded.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>

#include "backend/backend.h"
#include "core/live_stats.h"
#include "core/per_stream.h"

namespace hbmalloc::hbm {

class StreamFences {
 public:
  // The stamp of a free no fence can cover (a slab's, which keeps none).
  static constexpr uint64_t kUnstamped = std::numeric_limits<uint64_t>::max();

  StreamFences(Backend& backend, LiveStats& stats) : backend_(backend), stats_(stats) {}
  ~StreamFences();
  StreamFences(const StreamFences&) = delete;
  StreamFences& operator=(const StreamFences&) = delete;

  // While a CUDA graph is captured no event may be recorded or queried.
  void set_capturing(bool capturing) { capturing_ = capturing; }
  bool capturing() const { return capturing_; }
  // An allocation on `stream` starts (it is the requester until the next
  // one or none()).
  void allocating(StreamId stream) {
    requester_ = stream;
    refresh(stream, fences_.of(stream));
  }
  // An operation on behalf of no stream (empty_cache) starts.
  void none() { requester_.reset(); }
  std::optional<StreamId> requester() const { return requester_; }
  // Whether more than one stream has allocated: before that nothing is fenced.
  bool several() const { return fences_.size() > 1; }

  // A free on `stream`: the stamp the freed block keeps (never 0).
  uint64_t freed(StreamId stream) {
    // One stream: nothing to fence (its next free after a second stream came
    // fences this one too).
    if (!several()) [[likely]]
      return ++clock_;
    Fence& f = fences_.of(stream);
    f.last_free = ++clock_;
    const uint64_t stamp = clock_;
    refresh(stream, f);
    return stamp;
  }
  // The stamp of the latest free (0: none yet).
  uint64_t clock() const { return clock_; }
  // Whether the work queued on `stream` before a free stamped `freed_at` is
  // done by its stream's fence (0: a block no request ever used). Where
  // blocks go follows this alone, never the synchronizations a remap made,
  // so remapping cannot change the layout.
  bool settled(StreamId stream, uint64_t freed_at);
  // settled(), or done at a device synchronization since the free.
  bool settled_or_synced(StreamId stream, uint64_t freed_at) {
    return freed_at <= synced_at_ || settled(stream, freed_at);
  }
  // Waits for all work on the device (counted in num_sync_all_streams).
  void synchronize();

 private:
  struct Fence {
    uint64_t at = 0;         // the clock when it was recorded: it covers frees stamped up to this
    uint64_t done_at = 0;    // frees stamped up to this are settled (an earlier fence was done)
    uint64_t last_free = 0;  // the stamp of the stream's latest free
    EventId event = 0;
    bool recorded = false, done = false;
  };
  // A new fence when the stream freed something since its last one and that
  // one is done (inline: one stream's job returns at once).
  void refresh(StreamId stream, Fence& f) {
    if (capturing_ || f.last_free <= f.at || !several()) [[likely]]
      return;
    record(stream, f);
  }
  void record(StreamId stream, Fence& f);
  bool done(Fence& f) {
    if (!f.done && backend_.event_done(f.event)) {
      f.done = true;
      f.done_at = f.at;
    }
    return f.done;
  }

  Backend& backend_;
  LiveStats& stats_;
  PerStream<Fence> fences_;
  uint64_t clock_ = 0;      // counts frees
  uint64_t synced_at_ = 0;  // frees stamped up to this were done at a device synchronization
  std::optional<StreamId> requester_;
  bool capturing_ = false;
};

}  // namespace hbmalloc::hbm
