// Unit tests for allocator/policy/granule_source.h: the memory limit applies to
// granules, reserved bytes follow physical granules held, and every VMM
// operation is counted in device granules.
#include "policy/granule_source.h"

#include <gtest/gtest.h>

#include "backend/sim_backend.h"
#include "core/live_stats.h"
#include "policy/segment_source.h"
#include "support/no_vmm_backend.h"

namespace hbmalloc {
namespace {

constexpr uint64_t kMiB = uint64_t(1) << 20;

struct Fixture {
  SimBackend sim{0, 0};
  LiveStats stats;
  SegmentSource segments{sim, stats};
  GranuleSource granules{sim, segments};
};

TEST(GranuleSource, CountsEveryOperationInDeviceGranules) {
  Fixture f;
  EXPECT_EQ(f.granules.granularity(), 2 * kMiB);
  void* range = f.granules.reserve_range(16 * kMiB);
  ASSERT_NE(range, nullptr);
  GranuleId a = f.granules.create(2 * kMiB, Pool::kLarge);
  GranuleId b = f.granules.create(6 * kMiB, Pool::kLarge);  // one handle, three granules
  ASSERT_NE(a, 0u);
  ASSERT_NE(b, 0u);
  f.granules.map(range, a, 2 * kMiB);
  f.granules.map(static_cast<char*>(range) + 2 * kMiB, b, 6 * kMiB);
  f.granules.set_access(range, 8 * kMiB);
  f.granules.unmap(range, 8 * kMiB);
  f.granules.release(a, 2 * kMiB, Pool::kLarge);
  VmmCounts c = f.stats.vmm;
  EXPECT_EQ(c.create, 4);
  EXPECT_EQ(c.map, 4);
  EXPECT_EQ(c.set_access, 4);
  EXPECT_EQ(c.unmap, 4);
  EXPECT_EQ(c.release, 1);
  EXPECT_DOUBLE_EQ(c.modeled_seconds(), 4 * 200e-6 + 4 * 1.5e-6 + 4 * 36e-6 + 4 * 26e-6 + 1 * 26e-6);
  // Reserved is physical memory held, mapped or not.
  EXPECT_EQ(f.stats.reserved_bytes.current(Pool::kLarge), int64_t(6 * kMiB));
  EXPECT_EQ(f.sim.used_bytes(), 6 * kMiB);
}

TEST(GranuleSource, TheLimitAppliesToGranulesAndSegmentsTogether) {
  Fixture f;
  f.segments.set_limit(8 * kMiB);
  void* seg = f.segments.grow(4 * kMiB, Pool::kLarge);
  ASSERT_NE(seg, nullptr);
  EXPECT_EQ(f.granules.room(2 * kMiB), 2u);
  EXPECT_EQ(f.granules.room(6 * kMiB), 0u);
  GranuleId a = f.granules.create(2 * kMiB, Pool::kSmall);
  GranuleId b = f.granules.create(2 * kMiB, Pool::kLarge);
  ASSERT_NE(a, 0u);
  ASSERT_NE(b, 0u);
  EXPECT_EQ(f.granules.create(2 * kMiB, Pool::kLarge), 0u);  // refused: nothing counted
  EXPECT_EQ(f.stats.vmm.create, 2);
  EXPECT_EQ(f.stats.reserved_bytes.current_all(), int64_t(8 * kMiB));
  EXPECT_EQ(f.segments.grow(2 * kMiB, Pool::kLarge), nullptr);
  f.granules.release(b, 2 * kMiB, Pool::kLarge);
  EXPECT_NE(f.granules.create(2 * kMiB, Pool::kLarge), 0u);
}

TEST(GranuleSource, TransferMovesReservedBetweenPools) {
  Fixture f;
  GranuleId a = f.granules.create(2 * kMiB, Pool::kLarge);
  ASSERT_NE(a, 0u);
  f.granules.transfer(2 * kMiB, Pool::kLarge, Pool::kSmall);
  EXPECT_EQ(f.stats.reserved_bytes.current(Pool::kLarge), 0);
  EXPECT_EQ(f.stats.reserved_bytes.current(Pool::kSmall), int64_t(2 * kMiB));
  EXPECT_EQ(f.stats.reserved_bytes.current_all(), int64_t(2 * kMiB));
  f.granules.release(a, 2 * kMiB, Pool::kSmall);
  EXPECT_EQ(f.stats.reserved_bytes.current_all(), 0);
}

// All or none: a batch the device cannot finish leaves nothing held or reserved.
TEST(GranuleSource, CreateAllGivesBackAPartBatch) {
  SimBackend sim{0, 6 * kMiB};  // the device has less than the (unlimited) limit
  LiveStats stats;
  SegmentSource segments{sim, stats};
  GranuleSource granules{sim, segments};
  EXPECT_EQ(granules.create_all(4, 2 * kMiB, Pool::kLarge).count, 0u);
  EXPECT_EQ(sim.used_bytes(), 0u);
  EXPECT_EQ(sim.live_granules(), 0u);
  EXPECT_EQ(stats.reserved_bytes.peak_all(), 0);
  EXPECT_EQ(stats.vmm.create, 3);
  EXPECT_EQ(stats.vmm.release, 3);
  const GranuleRun run = granules.create_all(3, 2 * kMiB, Pool::kLarge);
  EXPECT_EQ(run.count, 3u);
  EXPECT_EQ(sim.live_granules(), 3u);  // ids run.first, +1 and +2, each known to the device
  for (uint64_t i = 0; i < 3; ++i) EXPECT_NE(sim.vmm().granule(run.first + i), nullptr);
  EXPECT_EQ(stats.reserved_bytes.current_all(), int64_t(6 * kMiB));
  EXPECT_EQ(stats.vmm.peak_held, 3);
}

// Private pools each have their own sources on the device's statistics: the
// granules held are the device's, whichever source holds them.
TEST(GranuleSource, PeakHeldCountsEverySourceOfTheDevice) {
  Fixture f;
  SegmentSource other_segments{f.sim, f.stats};
  GranuleSource other{f.sim, other_segments};
  GranuleId a = f.granules.create(2 * kMiB, Pool::kLarge);
  GranuleId b = other.create(4 * kMiB, Pool::kLarge);
  ASSERT_NE(a, 0u);
  ASSERT_NE(b, 0u);
  EXPECT_EQ(f.stats.vmm.peak_held, 3);
  f.granules.release(a, 2 * kMiB, Pool::kLarge);
  other.release(b, 4 * kMiB, Pool::kLarge);
  EXPECT_NE(other.create(2 * kMiB, Pool::kLarge), 0u);
  EXPECT_EQ(f.stats.vmm.peak_held, 3);
}

TEST(GranuleSource, WithoutVmmTheGranularityIsZero) {
  testing::NoVmmBackend plain;
  LiveStats stats;
  SegmentSource segments(plain, stats);
  GranuleSource granules(plain, segments);
  EXPECT_EQ(granules.granularity(), 0u);
}

}  // namespace
}  // namespace hbmalloc
