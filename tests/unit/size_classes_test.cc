// Unit tests for allocator/core/size_classes.h: the TLSF-style size classes
// used by the small-object slabs.
#include "core/size_classes.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <random>

#include "hbmalloc/error.hpp"

namespace hbmalloc {
namespace {

constexpr uint64_t kMiB = uint64_t(1) << 20;

// Checks one request against the class it maps to. Returns false (after
// recording a failure) so that loops can stop at the first bad size.
bool CheckRequest(uint64_t size) {
  int idx = SizeClasses::index_of(size);
  uint64_t cls = SizeClasses::size_of(idx);
  if (idx < 0) {
    ADD_FAILURE() << "size " << size << " maps to negative index " << idx;
    return false;
  }
  if (cls < size) {
    ADD_FAILURE() << "size " << size << " maps to class " << idx << " of only " << cls << " bytes";
    return false;
  }
  if (size <= SizeClasses::kMinSize) {
    if (idx != 0) {
      ADD_FAILURE() << "size " << size << " (<= 512) maps to class " << idx;
      return false;
    }
    return true;
  }
  if (cls - size > size / 8) {
    ADD_FAILURE() << "size " << size << " -> class " << idx << " (" << cls << " B) wastes " << cls - size
                  << " B, more than size/8 = " << size / 8;
    return false;
  }
  // The class is the smallest that fits: the previous one is too small.
  if (idx > 0 && SizeClasses::size_of(idx - 1) >= size) {
    ADD_FAILURE() << "size " << size << " -> class " << idx << " but class " << idx - 1 << " ("
                  << SizeClasses::size_of(idx - 1) << " B) already fits";
    return false;
  }
  return true;
}

TEST(SizeClassesTest, ClassZeroIs512Bytes) {
  EXPECT_EQ(SizeClasses::size_of(0), 512u);
  EXPECT_EQ(SizeClasses::kMinSize, 512u);
}

TEST(SizeClassesTest, SmallRequestsMapToClassZero) {
  for (uint64_t size = 1; size <= 512; ++size) ASSERT_EQ(SizeClasses::index_of(size), 0) << "size " << size;
  EXPECT_EQ(SizeClasses::index_of(513), 1);
  EXPECT_EQ(SizeClasses::size_of(1), 576u);
}

TEST(SizeClassesTest, IndexSizeRoundTripForEveryClassUpTo1MiB) {
  SizeClasses classes(kMiB);
  for (int i = 0; i < classes.count(); ++i) {
    uint64_t size = SizeClasses::size_of(i);
    ASSERT_LE(size, kMiB) << "class " << i;
    EXPECT_EQ(SizeClasses::index_of(size), i) << "class " << i << " of " << size << " bytes";
    // One byte past the previous class already maps to this one.
    if (i > 0) {
      EXPECT_EQ(SizeClasses::index_of(SizeClasses::size_of(i - 1) + 1), i) << "class " << i;
    }
  }
}

TEST(SizeClassesTest, ClassesStrictlyIncreasing) {
  SizeClasses classes(kMiB);
  for (int i = 1; i < classes.count(); ++i)
    EXPECT_LT(SizeClasses::size_of(i - 1), SizeClasses::size_of(i)) << "class " << i;
  // And within a power of two, the 8 classes are evenly spaced by 1/8 of it.
  for (int i = 0; i + 1 < classes.count(); ++i) {
    uint64_t a = SizeClasses::size_of(i), b = SizeClasses::size_of(i + 1);
    uint64_t pow2 = uint64_t(1) << (63 - __builtin_clzll(a));
    EXPECT_EQ(b - a, pow2 / 8) << "class " << i;
  }
}

TEST(SizeClassesTest, EverySizeUpTo64KiBFitsWithBoundedWaste) {
  for (uint64_t size = 1; size <= (64u << 10); ++size)
    if (!CheckRequest(size)) return;
}

TEST(SizeClassesTest, RandomSizesUpTo1MiBFitWithBoundedWaste) {
  std::mt19937_64 rng(0x5eed5eedULL);
  std::uniform_int_distribution<uint64_t> dist((64u << 10) + 1, kMiB);
  for (int n = 0; n < 500000; ++n)
    if (!CheckRequest(dist(rng))) return;
  // And the edges around every class boundary above 64 KiB.
  SizeClasses classes(kMiB);
  for (int i = 0; i < classes.count(); ++i) {
    uint64_t s = SizeClasses::size_of(i);
    if (s <= (64u << 10)) continue;
    if (!CheckRequest(s - 1) || !CheckRequest(s)) return;
    if (s < kMiB && !CheckRequest(s + 1)) return;
  }
  EXPECT_TRUE(CheckRequest(kMiB));
}

TEST(SizeClassesTest, OneMiBCountAndMaxSize) {
  SizeClasses classes(kMiB);
  // 512 B .. 1 MiB: 11 powers of two (2^9 .. 2^19) with 8 classes each, plus
  // the class of exactly 2^20.
  EXPECT_EQ(classes.count(), 11 * 8 + 1);
  EXPECT_EQ(classes.max_size(), kMiB);
  EXPECT_EQ(SizeClasses::size_of(classes.count() - 1), kMiB);
  EXPECT_EQ(SizeClasses::index_of(kMiB), classes.count() - 1);
}

TEST(SizeClassesTest, MaxSizeRoundsUpToAClass) {
  SizeClasses classes(kMiB + 1);
  EXPECT_EQ(classes.max_size(), kMiB + kMiB / 8);
  EXPECT_EQ(classes.count(), 11 * 8 + 2);
  EXPECT_GE(classes.max_size(), kMiB + 1);

  SizeClasses minimal(512);
  EXPECT_EQ(minimal.count(), 1);
  EXPECT_EQ(minimal.max_size(), 512u);
}

TEST(SizeClassesTest, ConstructorRejectsTooSmallMaxSize) {
  for (uint64_t bad : {uint64_t(0), uint64_t(1), uint64_t(256), uint64_t(511)}) {
    try {
      SizeClasses classes(bad);
      ADD_FAILURE() << "SizeClasses(" << bad << ") did not throw";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kConfig) << "max_size " << bad;
    }
  }
  EXPECT_NO_THROW(SizeClasses(512));
}

TEST(SizeClassesTest, ConstructorRejectsMoreThan1TiB) {
  EXPECT_NO_THROW(SizeClasses(uint64_t(1) << 40));
  EXPECT_THROW(SizeClasses((uint64_t(1) << 40) + 1), Error);
}

}  // namespace
}  // namespace hbmalloc
