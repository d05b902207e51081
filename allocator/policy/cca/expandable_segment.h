// One of PyTorch's expandable segments: an address range reserved once
// (room for 9/8 of the device) into which fixed-size pages (2 MiB for the
// small pool, large_segment_size for the large one) are mapped on demand and
// unmapped when wholly free.
//
// The backend has no virtual-memory operations yet, so the policy keeps the
// page accounting itself: each mapped page holds one backend segment of the
// page's size (the device's memory, as capacity sees it), and the range's
// addresses come from a region no backend hands out. That is exact for the
// sim backend, which never touches memory; real devices are refused.
#pragma once

#include <cstdint>
#include <vector>

#include "policy/segment_source.h"

namespace hbmalloc::cca {

struct PageRange {
  uintptr_t addr = 0;
  uint64_t bytes = 0;  // 0: nothing (mapped or unmapped)
};

struct ExpandableSegment {
  ExpandableSegment(uintptr_t base, uint64_t page_size, uint64_t pages) : base(base), page(page_size), pages(pages) {}

  uint64_t size() const { return page * pages; }
  uint64_t mapped_bytes() const { return mapped * page; }

  // Maps every page that [addr, addr + bytes) touches; addr must start a
  // page. All or nothing: bytes 0 when the device ran out of memory.
  PageRange map(uintptr_t addr, uint64_t bytes, SegmentSource& source);
  // Unmaps the pages wholly inside [addr, addr + bytes); bytes 0 when none is.
  PageRange unmap(uintptr_t addr, uint64_t bytes, SegmentSource& source);
  // Gives every mapped page back (the policy is going away).
  void release_all(SegmentSource& source);

  const uintptr_t base;
  const uint64_t page;
  const uint64_t pages;

 private:
  std::vector<void*> handles_;  // per page: the backend segment holding it, or nullptr
  uint64_t mapped = 0;
};

// Where expandable segments' addresses come from: far above any backend's
// (the sim's windows end below 2^60; device pointers are below 2^57).
constexpr uintptr_t kExpandableBase = uintptr_t(1) << 61;

}  // namespace hbmalloc::cca
