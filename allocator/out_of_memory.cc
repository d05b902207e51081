// The out-of-memory path: everything cached goes back to the device, one more
// try, then a clean failure that names the figures; observers are told (the
// recorder writes its OOM dump then). The allocator stays usable.
#include <mutex>
#include <string>

#include "allocator_impl.h"
#include "core/helpers.h"
#include "hbmalloc/config.hpp"

namespace hbmalloc {

// Slow path: everything cached goes back to the device, then one more try.
// A failure throws; observers' slow work (the OOM dump) is done after the
// lock is let go, from what they copied under it.
// While a graph is being captured (a pool is routed to) nothing here may
// query events, synchronize or free device memory: CUDA forbids it during
// capture, so pending frees wait for the capture to end, and an allocation
// that does not fit fails at once, as in PyTorch.
void* Allocator::Impl::malloc_after_release(uint64_t size, StreamId stream) {
  std::string message;
  // Observers told of the failure, to ask for their notes once the lock is let go.
  ObservedBackend::Observers told;
  {
    std::lock_guard<SpinLock> lock(mu);
    if (!pools.routing()) {  // no pool is routed to: the retry is the default policy's
      sync_and_drain();
      release_cached();
      ++stats.num_alloc_retries;
      Allocation a = policy->allocate_after_release(size, stream);
      if (a.ptr != nullptr) return handed_out(a, size, stream, nullptr);
    }
    ++stats.num_ooms;
    message = oom_message(size);
    if (!observers.empty()) {
      const ObservedOom oom{device,          size, stream, device_free(), backend->capacity(), backend->name(),
                            [this] { return stats_now(); }, [this] { return full_layout(); }};
      tell([&](AllocatorObserver& o) { o.out_of_memory(oom); });
      told = observers;
    }
  }
  for (const auto& o : told) message += o->out_of_memory_note(device);
  throw Error(ErrorCode::kOutOfMemory, message);
}

std::string Allocator::Impl::oom_message(uint64_t size) const {
  uint64_t capacity = backend->capacity();
  return "tried to allocate " + format_bytes(size) + " on device " + std::to_string(device) + " (" +
         std::string(backend->name()) + "): " + format_bytes(uint64_t(stats.reserved_bytes.current_all())) +
         " reserved, " + format_bytes(uint64_t(stats.allocated_bytes.current_all())) + " allocated, " +
         format_bytes(policy->largest_free_block()) + " largest free block, limit " +
         (stats.memory_limit ? format_bytes(uint64_t(stats.memory_limit)) : std::string("none")) + ", capacity " +
         (capacity ? format_bytes(capacity) : std::string("unlimited"));
}

// What the device had left, as far as hbmalloc knows (0: unknown).
uint64_t Allocator::Impl::device_free() const {
  const uint64_t capacity = backend->capacity();
  const uint64_t reserved = uint64_t(stats.reserved_bytes.current_all());
  return capacity > reserved ? capacity - reserved : 0;
}

}  // namespace hbmalloc
