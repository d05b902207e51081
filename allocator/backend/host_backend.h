// A device made of host memory, so tests can write into blocks and read them
// back: physical granules are ranges of one memfd, mapped into reserved
// address space with mmap(MAP_FIXED); set_access is mprotect. Remapping a
// granule elsewhere keeps its bytes, so a test can prove that defragmentation
// never corrupts or aliases live data. Plain segments are anonymous mappings.
// Work is synchronous: events are done at once unless a stream is held.
#pragma once

#include <cstdint>

#include "backend/emulated_backend.h"
#include "backend/range_allocator.h"
#include "backend/vmm_table.h"
#include "core/pointer_map.h"

namespace hbmalloc {

class HostBackend final : public EmulatedBackend {
 public:
  static constexpr uint64_t kDefaultGranularity = 2ull << 20;

  // capacity 0 means unlimited (host memory is the limit); granularity is a
  // power of two, at least the page size. Throws Error(kBackend) when the
  // memory file cannot be made.
  HostBackend(int device, uint64_t capacity, uint64_t granularity = kDefaultGranularity);
  ~HostBackend() override;
  HostBackend(const HostBackend&) = delete;
  HostBackend& operator=(const HostBackend&) = delete;

  std::string_view name() const override { return "host"; }
  void* malloc_segment(uint64_t bytes) override;
  void free_segment(void* ptr, uint64_t bytes) override;

  uint64_t vmm_granularity() const override { return vmm_.granularity(); }
  void* reserve_range(uint64_t bytes) override;
  void release_range(void* base, uint64_t bytes) override;
  GranuleId create_granule(uint64_t bytes) override;
  void release_granule(GranuleId granule) override;
  void map(void* addr, GranuleId granule) override;
  void set_access(void* addr, uint64_t bytes) override;
  void unmap(void* addr, uint64_t bytes) override;

  // Test hooks.
  const VmmTable& vmm() const { return vmm_; }
  // Where the byte at addr lives: its offset in the memory file, or
  // kNotPhysical when addr is not in a mapped granule (segments included).
  static constexpr uint64_t kNotPhysical = UINT64_MAX;
  uint64_t physical_offset(uint64_t addr) const;

 private:
  int fd_ = -1;                 // the memfd holding every granule
  RangeAllocator offsets_;      // free ranges of the file
  uint64_t file_size_ = 0;
  PointerMap<uint64_t> live_;   // segment addr -> size
  VmmTable vmm_;
};

}  // namespace hbmalloc
