// The per-device Allocator: the lock, block-level accounting, malloc and free
// and what its observers are told (allocator_impl.h says where the other
// concerns live). Where a block lands is the policy's business; segment-level
// statistics are kept by the policy's SegmentSource, segment events reach the
// observers through ObservedBackend.
#include "hbmalloc/allocator.hpp"

#include <algorithm>
#include <mutex>
#include <string>
#include <vector>

#include "allocator_impl.h"
#include "core/helpers.h"
#include "hbmalloc/recorder.hpp"
#include "record/recording_observer.h"

namespace hbmalloc {

namespace {

// Largest request we accept: far above any device, far below overflow.
constexpr uint64_t kMaxRequest = kMaxDeviceBytes;

}  // namespace

Allocator::Impl::Impl(const Config& c, std::unique_ptr<Backend> b)
    : config(c),
      backend(std::make_unique<ObservedBackend>(std::move(b), observers)),
      device(backend->device()),
      pools(config, *backend, stats) {
  policy = make_policy(config, *backend, stats);
  apply_fraction(config.memory_fraction);
}

// Observers hear of nothing past this: the policy's teardown gives memory
// back to a device no one watches any more.
Allocator::Impl::~Impl() {
  for (const auto& o : observers) o->detached(device);
  observers.clear();
  observed = false;
}

void* Allocator::Impl::malloc(uint64_t size, StreamId stream) {
  if (size == 0) return nullptr;
  if (size > kMaxRequest)
    throw Error(ErrorCode::kInvalidArgument, "request of " + std::to_string(size) +
                                                 " bytes is more than the largest device hbmalloc models (1 PiB)");
  {
    std::lock_guard<SpinLock> lock(mu);
    if (!pending.empty() && !pools.routing()) drain_pending();
    PrivatePool* pool = route(stream);
    Allocation a = policy_of(pool).allocate(size, stream);
    if (a.ptr != nullptr) [[likely]] return handed_out(a, size, stream, pool);
  }
  return malloc_after_release(size, stream);
}

void* Allocator::Impl::handed_out(const Allocation& a, uint64_t size, StreamId stream, PrivatePool* pool) {
  count_alloc(a, size);
  if (pool != nullptr) pools.handed_out(*pool);
  if (observed) [[unlikely]]
    tell([&](AllocatorObserver& o) { o.allocated(device, address(a.ptr), size, a.allocated, a.pool, stream); });
  debug_check();
  return a.ptr;
}

void Allocator::Impl::free(void* ptr, int64_t expected_size) {
  if (ptr == nullptr) return;
  if (expected_size < -1)
    throw Error(ErrorCode::kInvalidArgument, "free of " + hex(ptr) + " with negative size " + std::to_string(expected_size));
  std::lock_guard<SpinLock> lock(mu);
  if (!pending.empty() && pending.contains(ptr))
    throw Error(ErrorCode::kDoubleFree, hex(ptr) + " was already freed (its stream uses are still pending)");
  if (!stream_uses.empty()) {
    auto it = stream_uses.find(ptr);
    if (it != stream_uses.end()) return free_used_elsewhere(ptr, expected_size, it);
  }
  LiveBlock b;
  FreeStatus status = policy->free(ptr, expected_size, b);
  PrivatePool* pool = nullptr;
  if (status == FreeStatus::kNotLive && !pools.empty()) [[unlikely]] status = pools.free(ptr, expected_size, b, pool);
  if (status != FreeStatus::kOk) bad_free(ptr, expected_size, status, b);
  count_release(b);
  count_inactive(b);
  if (pool != nullptr) pools.returned(*pool);
  if (observed) [[unlikely]] tell([&](AllocatorObserver& o) { o.freed(device, address(ptr)); });
  debug_check();
}

void Allocator::Impl::bad_free(void* ptr, int64_t expected_size, FreeStatus status, const LiveBlock& b) {
  if (status == FreeStatus::kSizeMismatch)
    throw Error(ErrorCode::kSizeMismatch, "free of " + hex(ptr) + " with size " + std::to_string(expected_size) +
                                              " but it was allocated with size " + std::to_string(b.requested));
  ErrorCode code = policy->classify_bad_pointer(ptr);
  if (code != ErrorCode::kDoubleFree && !pools.empty()) code = pools.classify_bad_pointer(ptr);
  if (code == ErrorCode::kDoubleFree) throw Error(code, hex(ptr) + " was already freed");
  throw Error(code, hex(ptr) + " was not returned by hbmalloc on device " + std::to_string(backend->device()));
}

Stats Allocator::Impl::stats_now() const {
  Stats s = stats.snapshot();
  // Over the private pools too, as the cached free bytes below count theirs.
  s.largest_free_block = int64_t(std::max(policy->largest_free_block(), pools.largest_free_block()));
  int64_t cached_free = s.reserved_bytes.all.current - s.allocated_bytes.all.current;
  s.external_fragmentation = cached_free > 0 ? 1.0 - double(s.largest_free_block) / double(cached_free) : 0.0;
  if (s.external_fragmentation < 0) s.external_fragmentation = 0;
  return s;
}

void Allocator::Impl::add_observer(std::shared_ptr<AllocatorObserver> o) {
  if (o == nullptr) throw Error(ErrorCode::kInvalidArgument, "add_observer: no observer given");
  if (std::find(observers.begin(), observers.end(), o) != observers.end()) return;
  ObservedStart start;
  start.device = device;
  start.capacity = backend->capacity();
  start.settings = config.items();
  start.layout = full_layout();
  for (const auto& [ptr, p] : pending) start.pending_frees.push_back(address(ptr));
  o->attached(start);
  observers.push_back(std::move(o));
  observed = true;
}

void Allocator::Impl::remove_observer(const AllocatorObserver* o) {
  auto it = std::find_if(observers.begin(), observers.end(), [&](const auto& x) { return x.get() == o; });
  if (it == observers.end()) return;
  std::shared_ptr<AllocatorObserver> gone = std::move(*it);
  observers.erase(it);
  observed = !observers.empty();
  if (recording == gone) recording.reset();
  gone->detached(device);
}

Allocator::Allocator(const Config& config, int device)
    : impl_(std::make_unique<Impl>(config, make_backend(config, device))) {}
Allocator::Allocator(const Config& config, std::unique_ptr<Backend> backend)
    : impl_(std::make_unique<Impl>(config, std::move(backend))) {}
Allocator::~Allocator() = default;

void* Allocator::malloc(uint64_t size, StreamId stream) { return impl_->malloc(size, stream); }
void Allocator::free(void* ptr, int64_t expected_size) { impl_->free(ptr, expected_size); }
void Allocator::record_stream(void* ptr, StreamId stream) { impl_->record_stream(ptr, stream); }

void Allocator::empty_cache() {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->sync_and_drain();
  // After the drained frees and before the segments go, so a replay of the
  // trace empties the same cache.
  impl_->tell([&](AllocatorObserver& o) { o.cache_emptied(impl_->device); });
  impl_->release_cached();
}

void Allocator::set_memory_fraction(double fraction) {
  if (!(fraction > 0.0 && fraction <= 1.0))
    throw Error(ErrorCode::kInvalidArgument, "memory fraction " + std::to_string(fraction) + " is not in (0, 1]");
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->apply_fraction(fraction);
}

void Allocator::create_pool(PoolId pool) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->pools.add_use(pool);
}

void Allocator::begin_allocate_to_pool(PoolId pool, std::function<bool(StreamId)> route) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->pools.begin_routing(pool, std::move(route));
  impl_->policy->set_capturing(true);
}

void Allocator::end_allocate_to_pool(PoolId pool) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->pools.end_routing(pool);
  impl_->policy->set_capturing(impl_->pools.routing());
}

void Allocator::release_pool(PoolId pool) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->pools.release(pool);
}

int Allocator::pool_use_count(PoolId pool) const {
  std::lock_guard<SpinLock> lock(impl_->mu);
  return impl_->pools.use_count(pool);
}

Stats Allocator::stats() const {
  std::lock_guard<SpinLock> lock(impl_->mu);
  return impl_->stats_now();
}

bool Allocator::owns(const void* ptr) const noexcept {
  void* p = const_cast<void*>(ptr);
  std::lock_guard<SpinLock> lock(impl_->mu);
  LiveBlock b;
  PrivatePool* pool = nullptr;
  return p != nullptr && (impl_->find(p, b, pool) || impl_->pending.contains(p));
}

IpcBlock Allocator::share(void* ptr) const {
  std::lock_guard<SpinLock> lock(impl_->mu);
  LiveBlock b;
  PrivatePool* pool = nullptr;
  if (ptr == nullptr || !impl_->find(ptr, b, pool))
    throw Error(ErrorCode::kUnknownPointer, "share: " + hex(ptr) + " is not a live block of device " +
                                                std::to_string(impl_->device));
  return impl_->backend->share_range(ptr, b.requested);
}

// Another process's memory: not reserved here, so the observers and the
// statistics hear nothing of it (the unobserved backend maps it).
void* Allocator::open_shared(const IpcBlock& block) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  return impl_->backend->unobserved().open_shared(block);
}

void Allocator::close_shared(void* ptr) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->backend->unobserved().close_shared(ptr);
}

void Allocator::enable_peer_access(int peer) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->backend->grant_peer(peer);
}

Usage Allocator::usage() const {
  std::lock_guard<SpinLock> lock(impl_->mu);
  const LiveStats& st = impl_->stats;
  return Usage{uint64_t(st.requested_bytes.current_all()), uint64_t(st.allocated_bytes.current_all()),
               uint64_t(st.reserved_bytes.current_all())};
}

void Allocator::reset_peak_stats() {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->stats.reset_peak();
}

void Allocator::check_invariants() const {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->check();
}

Layout Allocator::layout() const {
  std::lock_guard<SpinLock> lock(impl_->mu);
  return impl_->full_layout();
}

void Allocator::attach_recorder(std::shared_ptr<Recorder> recorder) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  // The new one first: when the recorder refuses, the old one stays.
  std::shared_ptr<AllocatorObserver> next;
  if (recorder != nullptr) {
    next = std::make_shared<trace::RecordingObserver>(std::move(recorder));
    impl_->add_observer(next);
  }
  impl_->remove_observer(impl_->recording.get());
  impl_->recording = std::move(next);
}

void Allocator::add_observer(std::shared_ptr<AllocatorObserver> observer) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->add_observer(std::move(observer));
}

void Allocator::remove_observer(const AllocatorObserver* observer) {
  std::lock_guard<SpinLock> lock(impl_->mu);
  impl_->remove_observer(observer);
}

int Allocator::device() const { return impl_->device; }
const Config& Allocator::config() const { return impl_->config; }

}  // namespace hbmalloc
