// The out-of-memory path: everything cached goes back to the device, one more
// try, then a clean failure that names the figures, with an OOM dump of the
// recent past when one is asked for. The allocator stays usable.
#include <mutex>
#include <optional>
#include <string>

#include "allocator_impl.h"
#include "core/helpers.h"
#include "hbmalloc/config.hpp"

namespace hbmalloc {

// Slow path: everything cached goes back to the device, then one more try.
// A failure throws; the OOM dump is written after the lock is let go, from
// what was copied under it.
// While a graph is being captured (a pool is routed to) nothing here may
// query events, synchronize or free device memory: CUDA forbids it during
// capture, so pending frees wait for the capture to end, and an allocation
// that does not fit fails at once, as in PyTorch.
void* Allocator::Impl::malloc_after_release(uint64_t size, StreamId stream) {
  std::string message;
  std::optional<trace::Trace> recent;
  trace::OomFacts facts;
  std::string dump_dir;
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
    if (recorder != nullptr) {
      recorder->oom(device, size, device_free());
      dump_dir = recorder_owner->options().oom_dump_dir;
      if (!dump_dir.empty()) {
        recent = recorder->recent(device);
        facts = trace::OomFacts{device,         std::string(backend->name()), size, stream, backend->capacity(),
                                stats_now(),    full_layout()};
      }
    }
  }
  if (recent) message += dump_note(dump_dir, std::move(*recent), facts);
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

// Never throws: a failed dump is told in the error text instead.
std::string Allocator::Impl::dump_note(const std::string& dir, trace::Trace recent, const trace::OomFacts& facts) noexcept {
  try {
    trace::OomDumpFiles files = trace::write_oom_dump(dir, std::move(recent), facts);
    return "; OOM dump: trace " + files.trace + ", summary " + files.summary;
  } catch (const std::exception& e) {
    return std::string("; OOM dump failed: ") + e.what();
  } catch (...) {
    return "; OOM dump failed";
  }
}

}  // namespace hbmalloc
