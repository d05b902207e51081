// Where memory comes from. The only layer that touches a device.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>

#include "hbmalloc/allocator.hpp"

namespace hbmalloc {

using EventId = std::uintptr_t;

class Backend {
 public:
  virtual ~Backend() = default;

  virtual std::string_view name() const = 0;
  virtual int device() const = 0;
  // Bytes the device can hold in all (the capacity a memory fraction applies to).
  virtual uint64_t capacity() const = 0;

  // A device segment of `bytes`, or nullptr when the device is out of memory.
  // Other failures throw Error(kBackend).
  virtual void* malloc_segment(uint64_t bytes) = 0;
  virtual void free_segment(void* ptr, uint64_t bytes) = 0;

  // Marks the point the work queued on `stream` has reached.
  virtual EventId record_event(StreamId stream) = 0;
  // Whether the work before the event has completed; the event stays valid.
  virtual bool event_done(EventId event) = 0;
  virtual void release_event(EventId event) = 0;
  // Waits for all work on the device.
  virtual void synchronize() = 0;
};

// The backend named by config.backend for `device`. Throws Error(kConfig) for
// an unknown backend or one this build lacks, Error(kBackend) when the device
// cannot be used (no GPU, no driver, index out of range).
std::unique_ptr<Backend> make_backend(const Config& config, int device);

}  // namespace hbmalloc
