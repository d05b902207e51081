// Unit tests for allocator/backend/host_backend.h: granules are real memory
// whose bytes follow them to wherever they are mapped.
#include "backend/host_backend.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>

#include "hbmalloc/error.hpp"

namespace hbmalloc {
namespace {

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kG = 64 * kKiB;  // a small granule: many of them, little memory

char* At(void* base, uint64_t offset) { return static_cast<char*>(base) + offset; }
uint64_t Addr(const void* p) { return reinterpret_cast<uint64_t>(p); }

TEST(HostBackend, BytesFollowTheirGranuleToANewAddress) {
  HostBackend host(0, 0, kG);
  EXPECT_EQ(host.name(), "host");
  void* range = host.reserve_range(8 * kG);
  ASSERT_NE(range, nullptr);
  GranuleId a = host.create_granule(kG), b = host.create_granule(kG);
  host.map(At(range, 0), a);
  host.map(At(range, kG), b);
  host.set_access(range, 2 * kG);
  std::memset(At(range, 0), 0xA5, kG);
  std::memset(At(range, kG), 0x5A, kG);
  // Physically distinct although virtually adjacent.
  EXPECT_NE(host.physical_offset(Addr(range)), host.physical_offset(Addr(range) + kG));
  EXPECT_EQ(host.physical_offset(Addr(range) + 10), host.physical_offset(Addr(range)) + 10);
  uint64_t a_offset = host.physical_offset(Addr(range));
  host.unmap(range, 2 * kG);
  EXPECT_EQ(host.physical_offset(Addr(range)), HostBackend::kNotPhysical);
  // Swapped and moved: each keeps its bytes.
  host.map(At(range, 6 * kG), a);
  host.map(At(range, 3 * kG), b);
  host.set_access(At(range, 6 * kG), kG);
  host.set_access(At(range, 3 * kG), kG);
  EXPECT_EQ(host.physical_offset(Addr(range) + 6 * kG), a_offset);
  for (uint64_t i = 0; i < kG; i += 4093) {
    EXPECT_EQ(uint8_t(*At(range, 6 * kG + i)), 0xA5) << i;
    EXPECT_EQ(uint8_t(*At(range, 3 * kG + i)), 0x5A) << i;
  }
  host.unmap(At(range, 6 * kG), kG);
  host.unmap(At(range, 3 * kG), kG);
  host.release_granule(a);
  host.release_granule(b);
  host.release_range(range, 8 * kG);
  EXPECT_EQ(host.used_bytes(), 0u);
}

TEST(HostBackend, ReleasedGranulesComeBackZeroed) {
  HostBackend host(0, 0, kG);
  void* range = host.reserve_range(kG);
  GranuleId a = host.create_granule(kG);
  host.map(range, a);
  host.set_access(range, kG);
  std::memset(range, 0xFF, kG);
  host.unmap(range, kG);
  host.release_granule(a);
  GranuleId b = host.create_granule(kG);  // reuses the file range
  host.map(range, b);
  host.set_access(range, kG);
  for (uint64_t i = 0; i < kG; i += 997) EXPECT_EQ(*At(range, i), 0) << i;
  host.unmap(range, kG);
  host.release_granule(b);
  host.release_range(range, kG);
}

TEST(HostBackend, SegmentsAreRealMemoryUnderTheCapacity) {
  HostBackend host(0, 4 * kG, kG);
  void* s = host.malloc_segment(3 * kG);
  ASSERT_NE(s, nullptr);
  std::memset(s, 1, 3 * kG);
  EXPECT_EQ(host.physical_offset(Addr(s)), HostBackend::kNotPhysical);
  EXPECT_EQ(host.create_granule(2 * kG), 0u);  // 5 granules' worth would pass the capacity
  GranuleId g = host.create_granule(kG);
  EXPECT_NE(g, 0u);
  EXPECT_EQ(host.malloc_segment(1), nullptr);
  EXPECT_THROW(host.free_segment(s, 2 * kG), Error);  // wrong size: refused, nothing freed
  host.free_segment(s, 3 * kG);
  host.release_granule(g);
  EXPECT_EQ(host.used_bytes(), 0u);
}

TEST(HostBackend, EventsCompleteUnlessTheStreamIsHeld) {
  HostBackend host(0, 0, kG);
  EventId e = host.record_event(1);
  EXPECT_TRUE(host.event_done(e));
  host.hold_stream(1);
  EventId f = host.record_event(1);
  EXPECT_FALSE(host.event_done(f));
  host.complete_stream(1);
  EXPECT_TRUE(host.event_done(f));
  host.release_event(e);
  host.release_event(f);
  EXPECT_THROW(host.event_done(e), Error);
}

// As cudaFree: a plain segment's free returns once queued work is done, so
// its address can be handed to any stream at once. Unmapping a granule does
// not wait (the allocator waits on events for that).
TEST(HostBackend, FreeingASegmentCompletesQueuedWorkUnmappingDoesNot) {
  HostBackend host(0, 0, kG);
  void* range = host.reserve_range(kG);
  const GranuleId g = host.create_granule(kG);
  host.map(range, g);
  host.set_access(range, kG);
  void* seg = host.malloc_segment(kG);
  host.hold_stream(1);
  EventId e = host.record_event(1);
  host.unmap(range, kG);
  EXPECT_FALSE(host.event_done(e));
  host.free_segment(seg, kG);
  EXPECT_TRUE(host.event_done(e));
  host.release_event(e);
  host.release_granule(g);
  host.release_range(range, kG);
  EXPECT_EQ(host.used_bytes(), 0u);
}

TEST(HostBackend, GranularityBelowThePageIsRefused) {
  EXPECT_THROW(HostBackend(0, 0, 1024), Error);
  EXPECT_THROW(HostBackend(0, 0, 3 * kG), Error);
}

}  // namespace
}  // namespace hbmalloc
