// A device without virtual memory management, for the paths that must do
// without it: a sim device's segments and events, while the VMM operations
// are the Backend's defaults (granularity 0, each one throws).
#pragma once

#include <cstdint>
#include <string_view>

#include "backend/sim_backend.h"

namespace hbmalloc::testing {

class NoVmmBackend final : public Backend {
 public:
  std::string_view name() const override { return "no-vmm"; }
  int device() const override { return sim_.device(); }
  uint64_t capacity() const override { return sim_.capacity(); }
  void* malloc_segment(uint64_t bytes) override { return sim_.malloc_segment(bytes); }
  void free_segment(void* ptr, uint64_t bytes) override { sim_.free_segment(ptr, bytes); }
  EventId record_event(StreamId stream) override { return sim_.record_event(stream); }
  bool event_done(EventId event) override { return sim_.event_done(event); }
  void release_event(EventId event) override { sim_.release_event(event); }
  void synchronize() override { sim_.synchronize(); }

 private:
  SimBackend sim_{0, 0};
};

}  // namespace hbmalloc::testing
