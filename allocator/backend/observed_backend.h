// A Backend decorator that tells the allocator's observers what it reserves:
// every segment taken and given back, every range of pages made usable and
// unmapped. Policies stay unaware of being watched. The Allocator wraps every
// backend in one; the observers are the Allocator's, read under its lock,
// where the policy also calls the backend.
#pragma once

#include <memory>
#include <vector>

#include "backend/forwarding_backend.h"
#include "hbmalloc/observer.hpp"

namespace hbmalloc {

class ObservedBackend final : public ForwardingBackend {
 public:
  using Observers = std::vector<std::shared_ptr<AllocatorObserver>>;

  ObservedBackend(std::unique_ptr<Backend> inner, const Observers& observers)
      : ForwardingBackend(std::move(inner)), observers_(observers) {}

  void* malloc_segment(uint64_t bytes) override {
    void* ptr = inner().malloc_segment(bytes);
    if (!observers_.empty() && ptr != nullptr) [[unlikely]]
      tell({SegmentAction::kAlloc, address(ptr), bytes});
    return ptr;
  }
  void free_segment(void* ptr, uint64_t bytes) override {
    inner().free_segment(ptr, bytes);
    if (!observers_.empty()) [[unlikely]] tell({SegmentAction::kFree, address(ptr), bytes});
  }
  // Mapped memory counts once it is usable: every policy sets access on what
  // it maps, and the range is what a map alone does not tell.
  void set_access(void* addr, uint64_t bytes) override {
    inner().set_access(addr, bytes);
    if (!observers_.empty()) [[unlikely]] tell({SegmentAction::kMap, address(addr), bytes});
  }
  void unmap(void* addr, uint64_t bytes) override {
    inner().unmap(addr, bytes);
    if (!observers_.empty()) [[unlikely]] tell({SegmentAction::kUnmap, address(addr), bytes});
  }
  // For what the allocator does that reserves nothing (another process's memory).
  Backend& unobserved() { return inner(); }

 private:
  static uint64_t address(void* ptr) { return reinterpret_cast<uintptr_t>(ptr); }
  void tell(const SegmentEvent& e) {
    const int number = device();
    for (const auto& o : observers_) o->segment_changed(number, e);
  }

  const Observers& observers_;
};

}  // namespace hbmalloc
