#include "record/recording_observer.h"

#include <algorithm>
#include <exception>

namespace hbmalloc::trace {

void RecordingObserver::attached(const ObservedStart& start) {
  DeviceSetup setup;
  setup.device = start.device;
  if (start.capacity != 0) setup.capacity = start.capacity;
  setup.settings = start.settings;
  for (const SegmentLayout& seg : start.layout) {
    setup.segments.push_back(SegmentInfo{seg.addr, seg.size, seg.stream, seg.pool == Pool::kSmall, seg.expandable(), {}});
    for (const BlockLayout& b : seg.blocks) {
      if (!b.allocated) continue;
      const bool waiting = std::binary_search(start.pending_frees.begin(), start.pending_frees.end(), b.addr);
      setup.live.push_back(BlockInfo{kNoBlock, b.addr, b.size, b.requested, seg.stream,
                                     waiting ? BlockState::kActivePendingFree : BlockState::kActiveAllocated});
    }
  }
  engine_.attach(setup);
}

void RecordingObserver::segment_changed(int device, const SegmentEvent& e) {
  switch (e.action) {
    case SegmentAction::kAlloc:
      return engine_.segment_alloc(device, e.addr, e.bytes);
    case SegmentAction::kFree:
      return engine_.segment_free(device, e.addr, e.bytes);
    case SegmentAction::kMap:
      return engine_.segment_map(device, e.addr, e.bytes);
    case SegmentAction::kUnmap:
      return engine_.segment_unmap(device, e.addr, e.bytes);
  }
}

void RecordingObserver::out_of_memory(const ObservedOom& oom) {
  engine_.oom(oom.device, oom.request, oom.device_free);
  const std::string& dir = recorder_->options().oom_dump_dir;
  if (dir.empty()) return;
  std::optional<Trace> recent = engine_.recent(oom.device);
  if (!recent) return;
  const uint64_t generation = engine_.memory_generation(oom.device);
  OomFacts facts{oom.device, std::string(oom.backend), oom.request, oom.stream, oom.capacity, oom.stats(), oom.layout()};
  std::lock_guard<std::mutex> lock(mu_);
  pending_.insert_or_assign(std::this_thread::get_id(), PendingDump{std::move(*recent), std::move(facts), generation});
}

std::string RecordingObserver::out_of_memory_note(int /*device*/) {
  std::optional<PendingDump> dump;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pending_.find(std::this_thread::get_id());
    if (it == pending_.end()) return {};
    dump = std::move(it->second);
    pending_.erase(it);
  }
  try {
    // The stacks still waiting are named now that no allocator lock is held.
    if (engine_.name_stacks() > 0) engine_.add_named_stacks(dump->recent, dump->generation);
    OomDumpFiles files = write_oom_dump(recorder_->options().oom_dump_dir, std::move(dump->recent), dump->facts);
    return "; OOM dump: trace " + files.trace + ", summary " + files.summary;
  } catch (const std::exception& e) {
    return std::string("; OOM dump failed: ") + e.what();
  } catch (...) {
    return "; OOM dump failed";
  }
}

}  // namespace hbmalloc::trace
