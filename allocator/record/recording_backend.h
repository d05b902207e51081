// A Backend decorator that tells the attached recorder what the allocator
// reserves: every segment handed out and given back, every range of granules
// mapped and unmapped. Policies stay unaware of
// recording. The Allocator wraps every backend in one, and sets the recorder
// under its lock, where the policy also calls the backend.
#pragma once

#include <memory>

#include "backend/forwarding_backend.h"
#include "record/recorder.h"

namespace hbmalloc::trace {

class RecordingBackend final : public ForwardingBackend {
 public:
  explicit RecordingBackend(std::unique_ptr<Backend> inner) : ForwardingBackend(std::move(inner)) {}

  void set_recorder(TraceRecorder* recorder) { recorder_ = recorder; }

  void* malloc_segment(uint64_t bytes) override {
    void* ptr = inner().malloc_segment(bytes);
    if (recorder_ != nullptr && ptr != nullptr) recorder_->segment_alloc(device(), address(ptr), bytes);
    return ptr;
  }
  void free_segment(void* ptr, uint64_t bytes) override {
    inner().free_segment(ptr, bytes);
    if (recorder_ != nullptr) recorder_->segment_free(device(), address(ptr), bytes);
  }
  // Mapped memory counts once it is usable: every policy sets access on what
  // it maps, and the range is what a map alone does not tell.
  void set_access(void* addr, uint64_t bytes) override {
    inner().set_access(addr, bytes);
    if (recorder_ != nullptr) recorder_->segment_map(device(), address(addr), bytes);
  }
  void unmap(void* addr, uint64_t bytes) override {
    inner().unmap(addr, bytes);
    if (recorder_ != nullptr) recorder_->segment_unmap(device(), address(addr), bytes);
  }

 private:
  static uint64_t address(void* ptr) { return reinterpret_cast<uintptr_t>(ptr); }

  TraceRecorder* recorder_ = nullptr;
};

}  // namespace hbmalloc::trace
