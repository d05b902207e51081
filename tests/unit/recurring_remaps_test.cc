// When remapping that recurs is bought out (RecurringRemaps, remap_overhead):
// a request size remapped at a peak already reached as often as creating its
// granules would have cost, once remapping has passed its share of the time
// creating granules took.
#include <gtest/gtest.h>

#include <cmath>

#include "policy/hbm/recurring_remaps.h"

namespace hbmalloc::hbm {
namespace {

constexpr uint64_t MiB = 1ull << 20;
constexpr uint64_t kPeak = 1000 * MiB;

constexpr uint64_t kInUse = 600 * MiB;  // before the request: its point of the step

// Remapping has cost 10% of creating: past a 5% overhead.
bool Buy(RecurringRemaps& r, uint64_t size, uint64_t peak = kPeak, bool flat = true, uint64_t in_use = kInUse) {
  return r.buy(size, in_use, peak, flat, 0.010, 0.100, 0.05);
}

TEST(RecurringRemaps, RentalsAreCreatingOverRemappingByThePriceTable) {
  // create + map + set_access over unmap + map + set_access.
  EXPECT_NEAR(RecurringRemaps::rentals(), (200e-6 + 1.5e-6 + 36e-6) / (26e-6 + 1.5e-6 + 36e-6), 1e-12);
  DevicePrices cheap_create;
  cheap_create.create = 26e-6;
  EXPECT_NEAR(RecurringRemaps::rentals(cheap_create), 1.0, 1e-12);
}

TEST(RecurringRemaps, ASizeIsBoughtAfterItsRentals) {
  RecurringRemaps r;
  const int rentals = int(std::ceil(RecurringRemaps::rentals()));  // 4
  ASSERT_EQ(rentals, 4);
  for (int i = 0; i < rentals; ++i) EXPECT_FALSE(Buy(r, 56 * MiB)) << "rental " << i;
  EXPECT_TRUE(Buy(r, 56 * MiB));
  EXPECT_TRUE(Buy(r, 56 * MiB)) << "it still recurs: bought again";
  // Another size has its own count.
  EXPECT_FALSE(Buy(r, 20 * MiB));
}

TEST(RecurringRemaps, RemappingWithinTheOverheadIsNeverBoughtOut) {
  RecurringRemaps r;
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(r.buy(56 * MiB, kInUse, kPeak, true, 0.004, 0.100, 0.05)) << i;
  // Past the share, the count kept meanwhile decides at once.
  EXPECT_TRUE(r.buy(56 * MiB, kInUse, kPeak, true, 0.006, 0.100, 0.05));
}

// The same size at another point of the step (the next layer's block, the
// bytes in use a few blocks apart) is another need; a little shift of the
// point (the step's other requests) is the same.
TEST(RecurringRemaps, ANeedIsOneSizeAtOnePointOfTheStep) {
  RecurringRemaps r;
  for (int layer = 0; layer < 10; ++layer)
    EXPECT_FALSE(Buy(r, 2 * MiB, kPeak, true, kInUse - uint64_t(layer) * 64 * MiB)) << "layer " << layer;
  for (int step = 0; step < 3; ++step) EXPECT_FALSE(Buy(r, 2 * MiB)) << "step " << step;  // layer 0 again
  EXPECT_TRUE(Buy(r, 2 * MiB, kPeak, true, kInUse + 3 * MiB)) << "a point shifted by a block and a half";
  EXPECT_FALSE(Buy(r, 2 * MiB, kPeak, true, kInUse + 9 * MiB)) << "four blocks away: another need";
}

TEST(RecurringRemaps, ANewPeakStartsTheCountAfresh) {
  RecurringRemaps r;
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(Buy(r, 56 * MiB));
  // A request raising the peak is never bought out (the job still grows)...
  EXPECT_FALSE(Buy(r, 56 * MiB, kPeak, /*flat=*/false));
  // ...and once the peak has moved the count starts again.
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(Buy(r, 56 * MiB, kPeak + MiB)) << i;
  EXPECT_TRUE(Buy(r, 56 * MiB, kPeak + MiB));
  // A peak reset lower (reset_peak_memory_stats) is a new phase too.
  EXPECT_FALSE(Buy(r, 56 * MiB, kPeak / 2));
}

}  // namespace
}  // namespace hbmalloc::hbm
