// Unit tests for allocator/core/pointer_map.h: the open-addressing live
// pointer table (linear probing, backward-shift deletion).
#include "core/pointer_map.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace hbmalloc {
namespace {

struct Value {
  uint64_t a = 0;
  uint32_t b = 0;
  bool operator==(const Value& o) const { return a == o.a && b == o.b; }
};

// Keys (multiples of 512) whose Fibonacci hash has the same top `bits` bits,
// so they share a home slot in every table of up to 2^bits slots. Mirrors
// PointerMap::slot_of's multiplier.
std::vector<uintptr_t> CollidingKeys(size_t count, int bits, uint64_t base) {
  std::vector<uintptr_t> keys;
  uint64_t want = ~uint64_t(0);
  for (uint64_t k = base; keys.size() < count; k += 512) {
    uint64_t home = (k * 0x9E3779B97F4A7C15ull) >> (64 - bits);
    if (want == ~uint64_t(0)) want = home;
    if (home == want) keys.push_back(uintptr_t(k));
  }
  return keys;
}

// `count` keys (multiples of 512) homed at slot `home` of a 2^bits-slot table.
std::vector<uintptr_t> KeysWithHome(size_t count, int bits, uint64_t home, uint64_t base) {
  std::vector<uintptr_t> keys;
  for (uint64_t k = base; keys.size() < count; k += 512)
    if (((k * 0x9E3779B97F4A7C15ull) >> (64 - bits)) == home) keys.push_back(uintptr_t(k));
  return keys;
}

// Every key of `ref` is found with its value, and the map has no other keys.
void ExpectSameContents(const PointerMap<Value>& map, const std::unordered_map<uintptr_t, Value>& ref) {
  ASSERT_EQ(map.size(), ref.size());
  ASSERT_EQ(map.empty(), ref.empty());
  for (const auto& [k, v] : ref) {
    const Value* found = map.find(k);
    ASSERT_NE(found, nullptr) << "key " << k;
    ASSERT_EQ(*found, v) << "key " << k;
  }
  size_t visited = 0;
  std::unordered_set<uintptr_t> seen;
  map.for_each([&](uintptr_t k, const Value& v) {
    ++visited;
    EXPECT_TRUE(seen.insert(k).second) << "for_each visited key " << k << " twice";
    auto it = ref.find(k);
    if (it == ref.end()) {
      ADD_FAILURE() << "for_each visited key " << k << " that is not live";
    } else {
      EXPECT_EQ(v, it->second) << "key " << k;
    }
  });
  EXPECT_EQ(visited, ref.size());
}

TEST(PointerMapTest, EmptyMap) {
  PointerMap<Value> map;
  EXPECT_TRUE(map.empty());
  EXPECT_EQ(map.size(), 0u);
  EXPECT_EQ(map.find(512), nullptr);
  EXPECT_FALSE(map.erase(512));
  int visits = 0;
  map.for_each([&](uintptr_t, const Value&) { ++visits; });
  EXPECT_EQ(visits, 0);
}

TEST(PointerMapTest, InsertFindOverwriteErase) {
  PointerMap<Value> map;
  map.insert(0x1000, {1, 2});
  ASSERT_NE(map.find(0x1000), nullptr);
  EXPECT_EQ(*map.find(0x1000), (Value{1, 2}));
  EXPECT_EQ(map.size(), 1u);
  EXPECT_FALSE(map.empty());

  map.insert(0x1000, {3, 4});  // overwrite keeps the size
  EXPECT_EQ(map.size(), 1u);
  EXPECT_EQ(*map.find(0x1000), (Value{3, 4}));

  // The returned pointer allows in-place updates.
  map.find(0x1000)->b = 9;
  EXPECT_EQ(map.find(0x1000)->b, 9u);

  EXPECT_EQ(map.find(0x1200), nullptr);
  EXPECT_FALSE(map.erase(0x1200));
  EXPECT_EQ(map.size(), 1u);

  EXPECT_TRUE(map.erase(0x1000));
  EXPECT_EQ(map.size(), 0u);
  EXPECT_TRUE(map.empty());
  EXPECT_EQ(map.find(0x1000), nullptr);
  EXPECT_FALSE(map.erase(0x1000));  // already gone
}

TEST(PointerMapTest, ConstFind) {
  PointerMap<Value> map;
  map.insert(0x2000, {7, 8});
  const PointerMap<Value>& cmap = map;
  ASSERT_NE(cmap.find(0x2000), nullptr);
  EXPECT_EQ(cmap.find(0x2000)->a, 7u);
  EXPECT_EQ(cmap.find(0x2200), nullptr);
}

TEST(PointerMapTest, GrowthPastManyRehashes) {
  PointerMap<Value> map;
  std::unordered_map<uintptr_t, Value> ref;
  // 64 initial slots; 300k keys take the table through 13 doublings.
  constexpr uint64_t kKeys = 300000;
  for (uint64_t i = 1; i <= kKeys; ++i) {
    uintptr_t key = uintptr_t(0x7f0000000000ull + i * 512);
    map.insert(key, {i, uint32_t(i * 3)});
    ref[key] = {i, uint32_t(i * 3)};
    ASSERT_EQ(map.size(), i);
    // Spot-check earlier keys survive every rehash.
    if ((i & (i - 1)) == 0) {
      for (uint64_t j = 1; j <= i; j += 1 + i / 64) {
        const Value* v = map.find(uintptr_t(0x7f0000000000ull + j * 512));
        ASSERT_NE(v, nullptr) << "key #" << j << " lost after " << i << " inserts";
        ASSERT_EQ(v->a, j);
      }
    }
  }
  ExpectSameContents(map, ref);
  // Erase every other key, then the rest.
  for (uint64_t i = 1; i <= kKeys; i += 2) {
    ASSERT_TRUE(map.erase(uintptr_t(0x7f0000000000ull + i * 512)));
    ref.erase(uintptr_t(0x7f0000000000ull + i * 512));
  }
  ExpectSameContents(map, ref);
  for (uint64_t i = 2; i <= kKeys; i += 2) ASSERT_TRUE(map.erase(uintptr_t(0x7f0000000000ull + i * 512)));
  EXPECT_TRUE(map.empty());
  for (uint64_t i = 1; i <= kKeys; i += 997) EXPECT_EQ(map.find(uintptr_t(0x7f0000000000ull + i * 512)), nullptr);
}

// Keys that share a home slot (differ only in bits above the hash's window)
// build long probe runs; erasing from the middle of a run must not lose the
// members after it.
TEST(PointerMapTest, CollidingProbeRuns) {
  PointerMap<Value> map;
  std::unordered_map<uintptr_t, Value> ref;
  // 20 keys with one home in the initial 64-slot table (20 stays under the
  // 7/8 load limit, so no rehash breaks the run up), plus keys homed just
  // after it so runs from different homes merge.
  std::vector<uintptr_t> keys = CollidingKeys(20, 6, 0x10000000);
  std::vector<uintptr_t> next_home;
  {
    uint64_t home = (uint64_t(keys[0]) * 0x9E3779B97F4A7C15ull) >> 58;
    for (uint64_t k = 0x20000000; next_home.size() < 5; k += 512)
      if (((k * 0x9E3779B97F4A7C15ull) >> 58) == ((home + 1) & 63)) next_home.push_back(uintptr_t(k));
  }
  for (uintptr_t k : next_home) {
    map.insert(k, {k, 2});
    ref[k] = {k, 2};
  }
  for (uintptr_t k : keys) {
    map.insert(k, {k, 1});
    ref[k] = {k, 1};
  }
  ExpectSameContents(map, ref);
  // Erase from the middle, the front and the back of the run.
  for (size_t idx : {size_t(10), size_t(0), size_t(19), size_t(5), size_t(6), size_t(15)}) {
    ASSERT_TRUE(map.erase(keys[idx]));
    ref.erase(keys[idx]);
    ExpectSameContents(map, ref);
  }
  for (uintptr_t k : keys) {
    map.erase(k);
    ref.erase(k);
    ExpectSameContents(map, ref);
  }
  for (uintptr_t k : next_home) {
    ASSERT_TRUE(map.erase(k));
    ref.erase(k);
    ExpectSameContents(map, ref);
  }
  EXPECT_TRUE(map.empty());
}

// A probe run that starts at the last slot wraps around to slot 0; erasing
// from it must handle the cyclic (i > j) case of the backward shift.
TEST(PointerMapTest, ProbeRunWrapsAroundTheTable) {
  PointerMap<Value> map;
  std::unordered_map<uintptr_t, Value> ref;
  std::vector<uintptr_t> at62 = KeysWithHome(3, 6, 62, 0x40000000);
  std::vector<uintptr_t> at63 = KeysWithHome(4, 6, 63, 0x50000000);
  std::vector<uintptr_t> at0 = KeysWithHome(3, 6, 0, 0x60000000);
  std::vector<uintptr_t> at1 = KeysWithHome(2, 6, 1, 0x70000000);
  std::vector<uintptr_t> all;
  for (const auto* group : {&at62, &at63, &at0, &at1})
    for (uintptr_t k : *group) all.push_back(k);
  for (uintptr_t k : all) {
    map.insert(k, {k, 3});
    ref[k] = {k, 3};
  }
  ExpectSameContents(map, ref);
  // Erase in an order that opens holes before, inside and after the wrap.
  std::mt19937 rng(99);
  for (int round = 0; round < 50; ++round) {
    std::vector<uintptr_t> order = all;
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t n = 0; n < order.size(); ++n) {
      ASSERT_TRUE(map.erase(order[n]));
      ref.erase(order[n]);
      ExpectSameContents(map, ref);
      if (HasFatalFailure()) return;
    }
    for (uintptr_t k : order) {
      map.insert(k, {k, uint32_t(round)});
      ref[k] = {k, uint32_t(round)};
    }
    ExpectSameContents(map, ref);
  }
}

TEST(PointerMapTest, RandomOpsMatchUnorderedMap) {
  PointerMap<Value> map;
  std::unordered_map<uintptr_t, Value> ref;
  std::mt19937_64 rng(20240611);

  // Three key populations: a wide scattered range, a dense cluster of
  // consecutive 512-byte blocks, and keys that share one home slot in every
  // table of up to 2^16 slots (long probe runs that erase must repair).
  const std::vector<uintptr_t> colliding = CollidingKeys(96, 16, 0x300000000000ull);
  auto random_key = [&]() -> uintptr_t {
    switch (rng() % 3) {
      case 0: return uintptr_t(0x10000000000ull + (rng() % (1u << 20)) * 512);
      case 1: return uintptr_t(0x7f0000000000ull + (rng() % 4096) * 512);
      default: return colliding[rng() % colliding.size()];
    }
  };
  std::vector<uintptr_t> live;  // may hold stale entries; used to pick likely-present keys

  constexpr int kOps = 300000;
  for (int op = 0; op < kOps; ++op) {
    // Phases: grow for a while, shrink for a while, so the table both fills
    // (rehashing) and empties (long erase chains).
    bool growing = (op / 50000) % 2 == 0;
    uint64_t r = rng() % 100;
    uintptr_t key;
    if (!live.empty() && r < 50) {
      key = live[rng() % live.size()];
    } else {
      key = random_key();
    }
    uint64_t which = rng() % 100;
    if (which < (growing ? 55u : 25u)) {
      Value v{rng(), uint32_t(op)};
      map.insert(key, v);
      ref[key] = v;
      live.push_back(key);
    } else if (which < 85) {
      bool expected = ref.erase(key) == 1;
      ASSERT_EQ(map.erase(key), expected) << "op " << op << " erase " << key;
    } else {
      // lookup only
    }
    // After every op: size, and find() of this key and a random other one.
    ASSERT_EQ(map.size(), ref.size()) << "op " << op;
    for (uintptr_t probe : {key, random_key()}) {
      auto it = ref.find(probe);
      Value* found = map.find(probe);
      if (it == ref.end()) {
        ASSERT_EQ(found, nullptr) << "op " << op << " key " << probe << " should be absent";
      } else {
        ASSERT_NE(found, nullptr) << "op " << op << " key " << probe << " should be present";
        ASSERT_EQ(*found, it->second) << "op " << op << " key " << probe;
      }
    }
    if (live.size() > 200000) {
      std::vector<uintptr_t> fresh;
      for (const auto& [k, v] : ref) fresh.push_back(k);
      live.swap(fresh);
    }
    // A full comparison now and then.
    if (op % 20000 == 0) {
      ExpectSameContents(map, ref);
      if (HasFatalFailure()) return;
    }
  }
  ExpectSameContents(map, ref);
  // Drain everything; erase of each key reports presence exactly once.
  std::vector<uintptr_t> keys;
  for (const auto& [k, v] : ref) keys.push_back(k);
  for (uintptr_t k : keys) {
    ASSERT_TRUE(map.erase(k));
    ASSERT_FALSE(map.erase(k));
  }
  EXPECT_TRUE(map.empty());
  ExpectSameContents(map, {});
}

}  // namespace
}  // namespace hbmalloc
