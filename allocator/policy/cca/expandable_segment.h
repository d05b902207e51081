// One of PyTorch's expandable segments: an address range reserved once
// (room for 9/8 of the device) into which fixed-size pages (2 MiB for the
// small pool, large_segment_size for the large one) are mapped on demand,
// one physical granule each, and unmapped when wholly free. Built on the
// backend's virtual-memory operations (GranuleSource).
#pragma once

#include <cstdint>
#include <vector>

#include "policy/granule_source.h"
#include "policy/page_table.h"

namespace hbmalloc::cca {

struct PageRange {
  uintptr_t addr = 0;
  uint64_t bytes = 0;  // 0: nothing (mapped or unmapped)
};

class ExpandableSegment {
 public:
  // Reserves pages * page_size bytes of address space; base() is 0 when
  // the backend has none left.
  ExpandableSegment(GranuleSource& granules, uint64_t page_size, uint64_t pages, Pool pool);
  ~ExpandableSegment();  // unmaps and releases everything, then the range
  ExpandableSegment(const ExpandableSegment&) = delete;
  ExpandableSegment& operator=(const ExpandableSegment&) = delete;

  uintptr_t base() const { return base_; }
  uint64_t page() const { return page_; }
  uint64_t size() const { return page_ * pages_; }
  uint64_t mapped_bytes() const { return table_.mapped_pages() * page_; }

  // Maps every page that [addr, addr + bytes) touches; addr must start a
  // page. All or nothing: bytes 0 when the device ran out of memory.
  PageRange map(uintptr_t addr, uint64_t bytes);
  // Unmaps the pages wholly inside [addr, addr + bytes) and frees their
  // memory; bytes 0 when none is.
  PageRange unmap(uintptr_t addr, uint64_t bytes);

 private:
  GranuleSource& granules_;
  const uint64_t page_;
  const uint64_t pages_;
  const Pool pool_;
  uintptr_t base_ = 0;
  PageTable table_;  // the granule behind each mapped page
};

}  // namespace hbmalloc::cca
