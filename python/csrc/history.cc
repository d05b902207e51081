#include "history.h"

#include <c10/util/ApproximateClock.h>

#include <utility>

namespace hbmalloc::torch_ext {

namespace {

// TraceEntry's constructor gained a mempool id after torch 2.4 (2.9 has it;
// entries here carry the default pool's), and its stream became a void* in 2.11; a template, so that the form the
// installed torch lacks is never compiled.
template <typename Entry = TraceEntry>
Entry make_entry(typename Entry::Action action, int device, uint64_t addr, uint64_t size, void* stream,
                 const Context& context) {
  using Stream = decltype(Entry::stream_);
  const auto now = c10::getApproximateTime();
  const auto dev = static_cast<c10::DeviceIndex>(device);
  const auto s = static_cast<Stream>(stream);
  if constexpr (std::is_constructible_v<Entry, typename Entry::Action, c10::DeviceIndex, size_t, size_t, Stream,
                                        c10::cuda::MempoolId_t, decltype(now), Context>) {
    return Entry(action, dev, size_t(addr), size_t(size), s, c10::cuda::MempoolId_t{0, 0}, now, context);
  } else {
    return Entry(action, dev, size_t(addr), size_t(size), s, now, context);
  }
}

void* to_stream(StreamId stream) { return reinterpret_cast<void*>(stream); }

}  // namespace

Context History::alloc_context() const {
  if (!recording_ || gather_ == nullptr || when_ == CCA::RecordContext::NEVER) return nullptr;
  return gather_();
}

Context History::free_context() const {
  if (!recording_ || gather_ == nullptr || when_ != CCA::RecordContext::ALL) return nullptr;
  return gather_();
}

void History::configure(bool enabled, CCA::CreateContextFn gather, size_t max_entries, CCA::RecordContext when,
                        bool clear) {
  std::lock_guard<std::mutex> lock(mu_);
  recording_ = enabled;
  gather_ = enabled ? gather : nullptr;
  when_ = enabled ? when : CCA::RecordContext::NEVER;
  max_entries_ = max_entries;
  if (!enabled || clear) entries_.clear();
  for (auto& [device, ring] : entries_)
    while (ring.size() > max_entries_) ring.pop_front();
  update_active();
}

void History::add_tracker(CCA::AllocatorTraceTracker tracker) {
  std::lock_guard<std::mutex> lock(mu_);
  trackers_.push_back(std::move(tracker));
  update_active();
}

void History::update_active() { active_.store(recording_ || !trackers_.empty(), std::memory_order_relaxed); }

void History::record(int device, typename TraceEntry::Action action, uint64_t addr, uint64_t size, void* stream,
                     const Context& context) {
  TraceEntry e = make_entry(action, device, addr, size, stream, context);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& tracker : trackers_) tracker(e);
  if (!recording_ || max_entries_ == 0) return;
  std::deque<TraceEntry>& ring = entries_[device];
  if (ring.size() >= max_entries_) ring.pop_front();
  ring.push_back(std::move(e));
}

void History::attached(const ObservedStart& start) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const SegmentLayout& seg : start.layout)
    for (const BlockLayout& b : seg.blocks)
      if (b.allocated)
        live_.try_emplace({start.device, b.addr}, Live{b.requested, to_stream(seg.stream), nullptr, nullptr});
}

void History::detached(int device) {
  std::lock_guard<std::mutex> lock(mu_);
  std::erase_if(live_, [&](const auto& kv) { return kv.first.first == device; });
}

void History::allocated(int device, uint64_t ptr, uint64_t requested, uint64_t, Pool, StreamId stream) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    live_[{device, ptr}] = Live{requested, to_stream(stream), nullptr, current()};
  }
  record(device, TraceEntry::ALLOC, ptr, requested, to_stream(stream), current());
}

void History::free_requested(int device, uint64_t ptr) {
  Live block;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find({device, ptr});
    if (it != live_.end()) {
      it->second.freed_by = current();
      block = it->second;
    }
  }
  record(device, TraceEntry::FREE_REQUESTED, ptr, block.size, block.stream, block.freed_by);
}

void History::free_completed(int device, uint64_t ptr) {
  Live block;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find({device, ptr});
    if (it != live_.end()) {
      block = std::move(it->second);
      live_.erase(it);
    }
  }
  record(device, TraceEntry::FREE_COMPLETED, ptr, block.size, block.stream, block.freed_by);
}

void History::segment_changed(int device, const SegmentEvent& e) {
  using Action = typename TraceEntry::Action;
  const Action action = e.action == SegmentAction::kAlloc  ? TraceEntry::SEGMENT_ALLOC
                        : e.action == SegmentAction::kFree ? TraceEntry::SEGMENT_FREE
                        : e.action == SegmentAction::kMap  ? TraceEntry::SEGMENT_MAP
                                                           : TraceEntry::SEGMENT_UNMAP;
  record(device, action, e.addr, e.bytes, nullptr, current());
}

Context History::allocated_by(int device, uint64_t ptr) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find({device, ptr});
  return it != live_.end() ? it->second.allocated_by : nullptr;
}

std::vector<std::vector<TraceEntry>> History::entries(int devices) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::vector<TraceEntry>> out(size_t(devices > 0 ? devices : 0));
  for (const auto& [device, ring] : entries_) {
    if (device >= int(out.size())) out.resize(size_t(device) + 1);
    out[size_t(device)].assign(ring.begin(), ring.end());
  }
  return out;
}

}  // namespace hbmalloc::torch_ext
