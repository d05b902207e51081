// Unit tests for allocator/core/slot_bitmap.h: the two-level free-slot bitmap
// of a slab.
#include "core/slot_bitmap.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace hbmalloc {
namespace {

class SlotBitmapSizes : public ::testing::TestWithParam<uint32_t> {};

TEST_P(SlotBitmapSizes, ResetThenTakeAllInOrder) {
  const uint32_t n = GetParam();
  SlotBitmap bm;
  bm.reset(n);
  EXPECT_TRUE(bm.consistent());
  EXPECT_TRUE(bm.any());
  EXPECT_EQ(bm.count_free(), n);
  for (uint32_t s = 0; s < n; ++s) ASSERT_TRUE(bm.is_free(s)) << "slot " << s;
  // Slots past n (within the bitmap) are not free.
  for (uint32_t s = n; s < SlotBitmap::kMaxSlots; ++s) ASSERT_FALSE(bm.is_free(s)) << "slot " << s;

  for (uint32_t s = 0; s < n; ++s) {
    ASSERT_TRUE(bm.any()) << "after taking " << s;
    ASSERT_EQ(bm.take_first(), s);
    ASSERT_FALSE(bm.is_free(s));
    ASSERT_EQ(bm.count_free(), n - s - 1);
    ASSERT_TRUE(bm.consistent()) << "after taking " << s;
  }
  EXPECT_FALSE(bm.any());
  EXPECT_EQ(bm.count_free(), 0u);
  EXPECT_TRUE(bm.consistent());
}

TEST_P(SlotBitmapSizes, PutMakesSlotsTakeableAgain) {
  const uint32_t n = GetParam();
  SlotBitmap bm;
  bm.reset(n);
  for (uint32_t s = 0; s < n; ++s) bm.take_first();
  ASSERT_FALSE(bm.any());

  // Put back the last slot: it is the only one free, and take_first finds it.
  bm.put(n - 1);
  EXPECT_TRUE(bm.any());
  EXPECT_TRUE(bm.is_free(n - 1));
  EXPECT_EQ(bm.count_free(), 1u);
  EXPECT_TRUE(bm.consistent());
  EXPECT_EQ(bm.take_first(), n - 1);
  EXPECT_FALSE(bm.any());
  EXPECT_TRUE(bm.consistent());

  // Put back every third slot in descending order; they come out ascending.
  std::vector<uint32_t> put;
  for (uint32_t s = n; s-- > 0;)
    if (s % 3 == 0) {
      bm.put(s);
      put.push_back(s);
      ASSERT_TRUE(bm.consistent());
    }
  EXPECT_EQ(bm.count_free(), put.size());
  for (auto it = put.rbegin(); it != put.rend(); ++it) ASSERT_EQ(bm.take_first(), *it);
  EXPECT_FALSE(bm.any());
  EXPECT_TRUE(bm.consistent());
}

INSTANTIATE_TEST_SUITE_P(Sizes, SlotBitmapSizes, ::testing::Values(1u, 63u, 64u, 65u, 4095u, 4096u),
                         [](const ::testing::TestParamInfo<uint32_t>& info) {
                           std::string name = "n";
                           name += std::to_string(info.param);
                           return name;
                         });

TEST(SlotBitmapTest, DefaultIsEmpty) {
  SlotBitmap bm;
  EXPECT_FALSE(bm.any());
  EXPECT_EQ(bm.count_free(), 0u);
  EXPECT_TRUE(bm.consistent());
}

TEST(SlotBitmapTest, ResetClearsPreviousState) {
  SlotBitmap bm;
  bm.reset(4096);
  bm.reset(10);
  EXPECT_EQ(bm.count_free(), 10u);
  EXPECT_FALSE(bm.is_free(10));
  EXPECT_FALSE(bm.is_free(4095));
  EXPECT_TRUE(bm.consistent());
  bm.reset(0);
  EXPECT_FALSE(bm.any());
  EXPECT_EQ(bm.count_free(), 0u);
  EXPECT_TRUE(bm.consistent());
}

TEST(SlotBitmapTest, EmptyingAWordClearsItsSummaryBit) {
  SlotBitmap bm;
  bm.reset(128);
  for (int i = 0; i < 64; ++i) bm.take_first();  // word 0 now empty
  EXPECT_TRUE(bm.consistent());
  EXPECT_EQ(bm.take_first(), 64u);  // found through the summary, in word 1
  bm.put(5);
  EXPECT_TRUE(bm.consistent());
  EXPECT_EQ(bm.take_first(), 5u);
  EXPECT_EQ(bm.take_first(), 65u);
}

TEST(SlotBitmapTest, RandomTakePutMatchesSet) {
  std::mt19937 rng(42);
  SlotBitmap bm;
  bm.reset(SlotBitmap::kMaxSlots);
  std::set<uint32_t> free_slots;
  for (uint32_t s = 0; s < SlotBitmap::kMaxSlots; ++s) free_slots.insert(s);
  std::vector<uint32_t> taken;
  for (int op = 0; op < 100000; ++op) {
    bool take = !free_slots.empty() && (taken.empty() || rng() % 2 == 0);
    if (take) {
      uint32_t s = bm.take_first();
      ASSERT_EQ(s, *free_slots.begin()) << "op " << op;
      free_slots.erase(free_slots.begin());
      taken.push_back(s);
    } else {
      size_t i = rng() % taken.size();
      uint32_t s = taken[i];
      taken[i] = taken.back();
      taken.pop_back();
      ASSERT_FALSE(bm.is_free(s));
      bm.put(s);
      free_slots.insert(s);
    }
    ASSERT_EQ(bm.any(), !free_slots.empty()) << "op " << op;
    ASSERT_EQ(bm.count_free(), free_slots.size()) << "op " << op;
    if (op % 97 == 0) {
      ASSERT_TRUE(bm.consistent()) << "op " << op;
    }
  }
  for (uint32_t s = 0; s < SlotBitmap::kMaxSlots; ++s) ASSERT_EQ(bm.is_free(s), free_slots.count(s) == 1);
}

}  // namespace
}  // namespace hbmalloc
