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
  if (!enabled) live_.clear();
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
  if (action == TraceEntry::ALLOC) live_[{device, addr}] = Live{size, stream};
  for (const auto& tracker : trackers_) tracker(e);
  if (!recording_ || max_entries_ == 0) return;
  std::deque<TraceEntry>& ring = entries_[device];
  if (ring.size() >= max_entries_) ring.pop_front();
  ring.push_back(std::move(e));
}

void History::record_free(int device, uint64_t addr, const Context& context) {
  Live block;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find({device, addr});
    if (it != live_.end()) {
      block = it->second;
      live_.erase(it);
    }
  }
  record(device, TraceEntry::FREE_REQUESTED, addr, block.size, block.stream, context);
  record(device, TraceEntry::FREE_COMPLETED, addr, block.size, block.stream, context);
}

void History::seed_segments(int device, const Layout& layout) {
  std::map<uint64_t, uint64_t> now;
  for (const SegmentLayout& s : layout) now.emplace(s.addr, s.size);
  std::lock_guard<std::mutex> lock(mu_);
  segments_[device] = std::move(now);
}

void History::record_segments(int device, const Layout& layout, const Context& context) {
  std::map<uint64_t, uint64_t> now;
  for (const SegmentLayout& s : layout) now.emplace(s.addr, s.size);
  std::vector<std::pair<uint64_t, uint64_t>> gone, added;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<uint64_t, uint64_t>& before = segments_[device];
    for (const auto& [addr, bytes] : before)
      if (!now.contains(addr)) gone.emplace_back(addr, bytes);
    for (const auto& [addr, bytes] : now)
      if (!before.contains(addr)) added.emplace_back(addr, bytes);
    before = std::move(now);
  }
  for (const auto& [addr, bytes] : gone) record(device, TraceEntry::SEGMENT_FREE, addr, bytes, nullptr, context);
  for (const auto& [addr, bytes] : added) record(device, TraceEntry::SEGMENT_ALLOC, addr, bytes, nullptr, context);
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
