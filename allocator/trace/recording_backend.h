// A Backend decorator that tells the attached recorder what the allocator
// reserves: every segment handed out and given back. Policies stay unaware of
// recording. The Allocator wraps every backend in one, and sets the recorder
// under its lock, where the policy also calls the backend.
#pragma once

#include <memory>

#include "backend/backend.h"
#include "trace/recorder.h"

namespace hbmalloc::trace {

class RecordingBackend final : public Backend {
 public:
  explicit RecordingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  void set_recorder(TraceRecorder* recorder) { recorder_ = recorder; }

  std::string_view name() const override { return inner_->name(); }
  int device() const override { return inner_->device(); }
  uint64_t capacity() const override { return inner_->capacity(); }
  void* malloc_segment(uint64_t bytes) override {
    void* ptr = inner_->malloc_segment(bytes);
    if (recorder_ != nullptr && ptr != nullptr) recorder_->segment_alloc(device(), address(ptr), bytes);
    return ptr;
  }
  void free_segment(void* ptr, uint64_t bytes) override {
    inner_->free_segment(ptr, bytes);
    if (recorder_ != nullptr) recorder_->segment_free(device(), address(ptr), bytes);
  }
  EventId record_event(StreamId stream) override { return inner_->record_event(stream); }
  bool event_done(EventId event) override { return inner_->event_done(event); }
  void release_event(EventId event) override { inner_->release_event(event); }
  void synchronize() override { inner_->synchronize(); }
  uint64_t vmm_granularity() const override { return inner_->vmm_granularity(); }
  void* reserve_range(uint64_t bytes) override { return inner_->reserve_range(bytes); }
  void release_range(void* base, uint64_t bytes) override { inner_->release_range(base, bytes); }
  GranuleId create_granule(uint64_t bytes) override { return inner_->create_granule(bytes); }
  void release_granule(GranuleId granule) override { inner_->release_granule(granule); }
  void map(void* addr, GranuleId granule) override { inner_->map(addr, granule); }
  void set_access(void* addr, uint64_t bytes) override { inner_->set_access(addr, bytes); }
  void unmap(void* addr, uint64_t bytes) override { inner_->unmap(addr, bytes); }

 private:
  static uint64_t address(void* ptr) { return reinterpret_cast<uintptr_t>(ptr); }

  std::unique_ptr<Backend> inner_;
  TraceRecorder* recorder_ = nullptr;
};

}  // namespace hbmalloc::trace
