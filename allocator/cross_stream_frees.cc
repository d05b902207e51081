// Blocks used on streams other than their own (record_stream): a free waits
// until the work queued on those streams at free time is done, as PyTorch's
// allocator does with its events, before the block can be reused.
#include <mutex>
#include <string>

#include "allocator_impl.h"
#include "core/helpers.h"

namespace hbmalloc {

void Allocator::Impl::record_stream(void* ptr, StreamId stream) {
  if (ptr == nullptr) return;
  std::lock_guard<SpinLock> lock(mu);
  LiveBlock b;
  PrivatePool* pool = nullptr;
  if (!find(ptr, b, pool) || pending.contains(ptr))
    throw Error(ErrorCode::kUnknownPointer, "record_stream on " + hex(ptr) + ", which is not a live hbmalloc block");
  if (observed) [[unlikely]]
    tell([&](AllocatorObserver& o) { o.stream_recorded(device, address(ptr), stream); });
  if (stream == b.stream) return;  // its own stream orders its uses already
  std::vector<StreamId>& uses = stream_uses[ptr];
  for (StreamId s : uses)
    if (s == stream) return;
  uses.push_back(stream);
}

void Allocator::Impl::free_used_elsewhere(void* ptr, int64_t expected_size, StreamUses::iterator it) {
  LiveBlock b;
  PrivatePool* pool = nullptr;
  if (!find(ptr, b, pool)) bad_free(ptr, expected_size, FreeStatus::kNotLive, b);
  if (expected_size >= 0 && uint64_t(expected_size) != b.requested)
    bad_free(ptr, expected_size, FreeStatus::kSizeMismatch, b);
  PendingFree p{b, {}, pool};
  for (StreamId s : it->second) p.events.push_back(backend->record_event(s));
  stream_uses.erase(it);
  count_release(b);
  pending.emplace(ptr, std::move(p));
  if (observed) [[unlikely]] tell([&](AllocatorObserver& o) { o.free_requested(device, address(ptr)); });
  if (!pools.routing()) drain_pending();  // events on idle streams are done at once
}

void Allocator::Impl::drain_pending() {
  for (auto it = pending.begin(); it != pending.end();) {
    auto& [ptr, p] = *it;
    bool done = true;
    for (EventId e : p.events) done = done && backend->event_done(e);
    if (!done) {
      ++it;
      continue;
    }
    for (EventId e : p.events) backend->release_event(e);
    LiveBlock b;
    policy_of(p.pool).free(ptr, -1, b);
    count_inactive(b);
    if (p.pool != nullptr) pools.returned(*p.pool);
    if (observed) [[unlikely]] {
      const uint64_t addr = address(ptr);  // a lambda may not capture a structured binding (clang)
      tell([&](AllocatorObserver& o) { o.free_completed(device, addr); });
    }
    it = pending.erase(it);
  }
}
void Allocator::Impl::sync_and_drain() {
  if (pending.empty()) return;
  backend->synchronize();
  ++stats.num_sync_all_streams;
  drain_pending();
}

}  // namespace hbmalloc
