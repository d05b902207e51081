// A Backend that hands every call to the backend it wraps: decorators derive
// from it and override only the calls they change.
#pragma once

#include <memory>

#include "backend/backend.h"

namespace hbmalloc {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}

  std::string_view name() const override { return inner_->name(); }
  int device() const override { return inner_->device(); }
  uint64_t capacity() const override { return inner_->capacity(); }
  void* malloc_segment(uint64_t bytes) override { return inner_->malloc_segment(bytes); }
  void free_segment(void* ptr, uint64_t bytes) override { inner_->free_segment(ptr, bytes); }
  EventId record_event(StreamId stream) override { return inner_->record_event(stream); }
  bool event_done(EventId event) override { return inner_->event_done(event); }
  void release_event(EventId event) override { inner_->release_event(event); }
  void synchronize() override { inner_->synchronize(); }
  std::optional<int64_t> now_us() const override { return inner_->now_us(); }
  void grant_peer(int peer) override { inner_->grant_peer(peer); }
  uint64_t vmm_granularity() const override { return inner_->vmm_granularity(); }
  void* reserve_range(uint64_t bytes) override { return inner_->reserve_range(bytes); }
  void release_range(void* base, uint64_t bytes) override { inner_->release_range(base, bytes); }
  GranuleId create_granule(uint64_t bytes) override { return inner_->create_granule(bytes); }
  void release_granule(GranuleId granule) override { inner_->release_granule(granule); }
  void map(void* addr, GranuleId granule) override { inner_->map(addr, granule); }
  void set_access(void* addr, uint64_t bytes) override { inner_->set_access(addr, bytes); }
  void unmap(void* addr, uint64_t bytes) override { inner_->unmap(addr, bytes); }
  GranuleRun create_granules(uint64_t bytes, size_t n) override { return inner_->create_granules(bytes, n); }
  void release_granules(GranuleRun run) override { inner_->release_granules(run); }
  void map_granules(void* addr, GranuleRun run, uint64_t bytes) override { inner_->map_granules(addr, run, bytes); }
  IpcBlock share_range(void* addr, uint64_t bytes) override { return inner_->share_range(addr, bytes); }
  void* open_shared(const IpcBlock& block) override { return inner_->open_shared(block); }
  void close_shared(void* ptr) override { inner_->close_shared(ptr); }

 protected:
  Backend& inner() { return *inner_; }

 private:
  std::unique_ptr<Backend> inner_;
};

}  // namespace hbmalloc
