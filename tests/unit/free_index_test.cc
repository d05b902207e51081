// The large pool's free index against a plain ordered set: the same best fit
// (smallest size, then lowest address) for every request, over long random
// sequences of inserts, erases and takes on several streams.
#include "policy/hbm/free_index.h"

#include <gtest/gtest.h>

#include <cmath>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <utility>

namespace hbmalloc::hbm {
namespace {

TEST(FreeIndexBins, AreMonotoneAndCoverEverySize) {
  EXPECT_EQ(FreeIndex::bin_of(0), 0u);
  EXPECT_EQ(FreeIndex::bin_of(512), 1u);
  EXPECT_EQ(FreeIndex::bin_of(8191), 15u);
  EXPECT_EQ(FreeIndex::bin_of(8192), 16u);
  EXPECT_LT(FreeIndex::bin_of(~uint64_t(0)), FreeIndex::kBins);
  uint32_t previous = 0;
  for (uint64_t size = 512; size < (uint64_t(1) << 62); size += size / 7 + 512) {
    uint32_t bin = FreeIndex::bin_of(size);
    EXPECT_GE(bin, previous) << size;
    previous = bin;
  }
  // Above 8 KiB a bin spans less than 1/16 of its sizes: 1/16 more is a later bin.
  for (uint64_t size = 8192; size < (uint64_t(1) << 40); size = size * 3 / 2 + 512)
    EXPECT_GT(FreeIndex::bin_of(size + size / 16), FreeIndex::bin_of(size)) << size;
}

TEST(FreeIndex, EmptyIndexHasNoFit) {
  FreeIndex index;
  EXPECT_EQ(index.take_best_fit(0, 512), nullptr);
  EXPECT_EQ(index.size(), 0u);
  EXPECT_EQ(index.largest(), 0u);
}

TEST(FreeIndex, PrefersSmallestThenLowestAddress) {
  std::deque<Block> blocks;
  auto make = [&](uintptr_t addr, uint64_t size) {
    blocks.push_back(Block{addr, size});
    return &blocks.back();
  };
  FreeIndex index;
  Block* big = make(0x1000000, 64 << 20);
  Block* exact_high = make(0x9000000, 3 << 20);
  Block* exact_low = make(0x5000000, 3 << 20);
  Block* small = make(0x2000000, 1 << 20);
  for (Block* b : {big, exact_high, exact_low, small}) index.insert(b);
  EXPECT_EQ(index.largest(), uint64_t(64) << 20);
  EXPECT_EQ(index.take_best_fit(0, (2 << 20) + 512), exact_low);
  EXPECT_EQ(index.take_best_fit(0, (2 << 20) + 512), exact_high);
  EXPECT_EQ(index.take_best_fit(0, (2 << 20) + 512), big);
  EXPECT_EQ(index.take_best_fit(0, (2 << 20) + 512), nullptr);
  EXPECT_EQ(index.take_best_fit(1, 512), nullptr) << "another stream's blocks are not offered";
  EXPECT_EQ(index.take_best_fit(0, 512), small);
  EXPECT_TRUE(index.consistent());
}

// A bin past FreeBin::kFlatLimit entries becomes a tree and must keep the
// same order; emptied, it is a vector again.
TEST(FreeIndex, LongBinKeepsBestFitOrder) {
  std::deque<Block> blocks;
  FreeIndex index;
  const size_t n = FreeBin::kFlatLimit * 3;
  for (size_t i = 0; i < n; ++i) {
    // Equal sizes at falling addresses, plus one slightly larger block per ten.
    uint64_t size = (uint64_t(4) << 20) + (i % 10 == 0 ? 512 : 0);
    blocks.push_back(Block{(uintptr_t(1) << 40) - i * (8 << 20), size});
    index.insert(&blocks.back());
  }
  EXPECT_TRUE(index.consistent());
  uint64_t last_size = 0;
  uintptr_t last_addr = 0;
  for (size_t i = 0; i < n; ++i) {
    Block* b = index.take_best_fit(0, 4 << 20);
    ASSERT_NE(b, nullptr);
    ASSERT_TRUE(b->size > last_size || (b->size == last_size && b->addr > last_addr)) << "take " << i;
    last_size = b->size;
    last_addr = b->addr;
  }
  EXPECT_EQ(index.take_best_fit(0, 512), nullptr);
  EXPECT_TRUE(index.consistent());
  index.insert(&blocks.front());
  EXPECT_EQ(index.take_best_fit(0, 512), &blocks.front());
}

TEST(FreeIndex, MatchesAnOrderedSetOverRandomOperations) {
  std::mt19937_64 rng(7);
  std::deque<Block> storage;
  std::vector<Block*> out_of_index;
  using Key = std::pair<uint64_t, uintptr_t>;
  std::set<Key> reference[3];
  std::map<Key, Block*> by_key[3];
  FreeIndex index;
  uintptr_t next_addr = 1 << 20;

  auto random_size = [&] {
    // Log-uniform 512 B .. 4 GiB, multiples of 512, with many exact repeats.
    if (rng() % 4 == 0) return uint64_t(2) << 20;
    std::uniform_real_distribution<double> exp(9, 32);
    return (uint64_t(std::pow(2.0, exp(rng))) + 511) / 512 * 512;
  };
  for (int op = 0; op < 200000; ++op) {
    StreamId stream = rng() % 3;
    switch (rng() % 3) {
      case 0: {  // insert a new or a previously taken block
        Block* b;
        if (!out_of_index.empty() && rng() % 2) {
          b = out_of_index.back();
          out_of_index.pop_back();
        } else {
          storage.push_back(Block{next_addr, random_size(), stream});
          next_addr += storage.back().size;
          b = &storage.back();
        }
        index.insert(b);
        reference[b->stream].insert({b->size, b->addr});
        by_key[b->stream][{b->size, b->addr}] = b;
        break;
      }
      case 1: {  // take the best fit
        uint64_t want = random_size();
        Block* got = index.take_best_fit(stream, want);
        auto it = reference[stream].lower_bound({want, 0});
        if (it == reference[stream].end()) {
          ASSERT_EQ(got, nullptr) << "op " << op;
          break;
        }
        ASSERT_EQ(got, by_key[stream][*it]) << "op " << op << " want " << want;
        by_key[stream].erase(*it);
        reference[stream].erase(it);
        out_of_index.push_back(got);
        break;
      }
      case 2: {  // erase a random indexed block
        if (reference[stream].empty()) break;
        auto it = reference[stream].lower_bound({random_size(), 0});
        if (it == reference[stream].end()) it = reference[stream].begin();
        Block* b = by_key[stream][*it];
        ASSERT_TRUE(index.contains(b));
        index.erase(b);
        ASSERT_FALSE(index.contains(b));
        by_key[stream].erase(*it);
        reference[stream].erase(it);
        out_of_index.push_back(b);
        break;
      }
    }
    if (op % 20000 == 0) {
      ASSERT_TRUE(index.consistent());
    }
  }
  size_t total = 0;
  uint64_t largest = 0;
  for (auto& r : reference) {
    total += r.size();
    if (!r.empty()) largest = std::max(largest, r.rbegin()->first);
  }
  EXPECT_EQ(index.size(), total);
  EXPECT_EQ(index.largest(), largest);
  EXPECT_TRUE(index.consistent());
}

}  // namespace
}  // namespace hbmalloc::hbm
