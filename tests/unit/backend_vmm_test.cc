// The Backend's VMM contract (allocator/backend/backend.h), checked on every
// backend that has it: reserve / create / map / set_access / unmap / release,
// capacity counting granules, misuse refused without changing anything.
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/host_backend.h"
#include "backend/sim_backend.h"
#include "hbmalloc/error.hpp"
#include "support/no_vmm_backend.h"

namespace hbmalloc {
namespace {

constexpr uint64_t kMiB = uint64_t(1) << 20;

struct BackendKind {
  std::string name;
  // A backend of `capacity` bytes (0: unlimited) whose granularity is `granule`.
  std::function<std::unique_ptr<Backend>(uint64_t capacity, uint64_t granule)> make;
};

std::vector<BackendKind> Kinds() {
  return {{"sim",
           [](uint64_t capacity, uint64_t granule) -> std::unique_ptr<Backend> {
             return std::make_unique<SimBackend>(0, capacity, granule);
           }},
          {"host", [](uint64_t capacity, uint64_t granule) -> std::unique_ptr<Backend> {
             return std::make_unique<HostBackend>(0, capacity, granule);
           }}};
}

class BackendVmm : public ::testing::TestWithParam<BackendKind> {
 protected:
  std::unique_ptr<Backend> Make(uint64_t capacity = 0, uint64_t granule = 2 * kMiB) {
    return GetParam().make(capacity, granule);
  }
};

char* At(void* base, uint64_t offset) { return static_cast<char*>(base) + offset; }

template <typename F>
void ExpectRefused(F&& f, const char* what) {
  try {
    f();
    ADD_FAILURE() << what << " was accepted";
  } catch (const Error& e) {
    EXPECT_TRUE(e.code() == ErrorCode::kBackend || e.code() == ErrorCode::kInvalidArgument) << e.what();
  }
}

TEST_P(BackendVmm, GranularityIsAPowerOfTwo) {
  auto b = Make();
  uint64_t g = b->vmm_granularity();
  ASSERT_GT(g, 0u);
  EXPECT_EQ(g & (g - 1), 0u);
}

TEST_P(BackendVmm, MapAccessUnmapRoundTrip) {
  auto b = Make();
  const uint64_t g = b->vmm_granularity();
  void* range = b->reserve_range(8 * g);
  ASSERT_NE(range, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(range) % g, 0u);
  GranuleId a = b->create_granule(g), c = b->create_granule(2 * g);
  ASSERT_NE(a, 0u);
  ASSERT_NE(c, 0u);
  EXPECT_NE(a, c);
  b->map(At(range, 0), a);
  b->map(At(range, g), c);
  b->set_access(range, 3 * g);
  b->unmap(range, 3 * g);  // several whole granules at once
  // Granules survive unmapping and can be mapped elsewhere, in another order.
  b->map(At(range, 5 * g), a);
  b->map(At(range, 2 * g), c);
  b->set_access(At(range, 2 * g), 2 * g);
  b->set_access(At(range, 5 * g), g);
  b->unmap(At(range, 2 * g), 2 * g);
  b->unmap(At(range, 5 * g), g);
  b->release_granule(a);
  b->release_granule(c);
  b->release_range(range, 8 * g);
}

TEST_P(BackendVmm, CapacityCountsGranulesNotAddressSpace) {
  const uint64_t cap = 8 * kMiB;
  auto b = Make(cap);
  const uint64_t g = b->vmm_granularity();
  void* range = b->reserve_range(64 * cap);  // address space is not capacity
  ASSERT_NE(range, nullptr);
  std::vector<GranuleId> held;
  for (uint64_t i = 0; i < cap / g; ++i) {
    held.push_back(b->create_granule(g));
    ASSERT_NE(held.back(), 0u) << "granule " << i;
  }
  EXPECT_EQ(b->create_granule(g), 0u);  // the device is full: no throw
  b->release_granule(held.back());
  held.pop_back();
  GranuleId again = b->create_granule(g);
  EXPECT_NE(again, 0u);
  held.push_back(again);
  for (GranuleId h : held) b->release_granule(h);
  b->release_range(range, 64 * cap);
}

TEST_P(BackendVmm, MisuseIsRefusedAndChangesNothing) {
  auto b = Make();
  const uint64_t g = b->vmm_granularity();
  void* range = b->reserve_range(4 * g);
  ASSERT_NE(range, nullptr);
  GranuleId a = b->create_granule(g), c = b->create_granule(g);
  ASSERT_NE(a, 0u);
  ASSERT_NE(c, 0u);
  ExpectRefused([&] { b->create_granule(g / 2); }, "a granule smaller than the granularity");
  ExpectRefused([&] { b->map(At(range, g / 2), a); }, "an unaligned map");
  ExpectRefused([&] { b->map(At(range, 4 * g), a); }, "a map past the range");
  ExpectRefused([&] { b->map(range, GranuleId(987654321)); }, "a map of an unknown granule");
  ExpectRefused([&] { b->set_access(range, g); }, "set_access on unmapped memory");
  ExpectRefused([&] { b->unmap(range, g); }, "unmapping what is not mapped");
  b->map(range, a);
  ExpectRefused([&] { b->map(range, c); }, "mapping over a mapping");
  ExpectRefused([&] { b->map(At(range, g), a); }, "mapping a granule twice");
  ExpectRefused([&] { b->unmap(range, 2 * g); }, "unmapping past the mapping");
  ExpectRefused([&] { b->release_granule(a); }, "releasing a mapped granule");
  ExpectRefused([&] { b->release_range(range, 4 * g); }, "releasing a range with a mapping");
  // All of that left the first mapping intact and usable.
  b->set_access(range, g);
  b->map(At(range, g), c);
  b->set_access(At(range, g), g);
  b->unmap(range, 2 * g);
  b->release_granule(a);
  b->release_granule(c);
  ExpectRefused([&] { b->release_granule(a); }, "releasing a granule twice");
  ExpectRefused([&] { b->release_range(range, 2 * g); }, "releasing part of a range");
  b->release_range(range, 4 * g);
}

TEST_P(BackendVmm, RangesAreDisjoint) {
  auto b = Make();
  const uint64_t g = b->vmm_granularity();
  std::map<uintptr_t, uint64_t> ranges;
  for (uint64_t n = 1; n <= 16; ++n) {
    void* r = b->reserve_range(n * g);
    ASSERT_NE(r, nullptr);
    ranges[reinterpret_cast<uintptr_t>(r)] = n * g;
  }
  uintptr_t end = 0;
  for (auto [base, size] : ranges) {
    EXPECT_GE(base, end);
    end = base + size;
  }
  for (auto [base, size] : ranges) b->release_range(reinterpret_cast<void*>(base), size);
}

// Random operations against a model of what is mapped where.
TEST_P(BackendVmm, RandomOperationsAgreeWithAModel) {
  auto b = Make(64 * kMiB);
  const uint64_t g = b->vmm_granularity();
  const uint64_t slots = 32;
  void* range = b->reserve_range(slots * g);
  ASSERT_NE(range, nullptr);
  std::mt19937_64 rng(7);
  std::vector<GranuleId> unmapped;
  std::map<uint64_t, GranuleId> mapped;  // slot -> granule
  uint64_t held = 0;
  for (int step = 0; step < 4000; ++step) {
    switch (rng() % 4) {
      case 0: {
        GranuleId h = b->create_granule(g);
        if (h == 0) {
          EXPECT_EQ(held, 64 * kMiB / g) << "refused below capacity";
          break;
        }
        ++held;
        unmapped.push_back(h);
        break;
      }
      case 1: {
        if (unmapped.empty()) break;
        uint64_t slot = rng() % slots;
        if (mapped.contains(slot)) {
          ExpectRefused([&] { b->map(At(range, slot * g), unmapped.back()); }, "map over a mapping");
          break;
        }
        b->map(At(range, slot * g), unmapped.back());
        b->set_access(At(range, slot * g), g);
        mapped[slot] = unmapped.back();
        unmapped.pop_back();
        break;
      }
      case 2: {
        if (mapped.empty()) break;
        auto it = mapped.begin();
        std::advance(it, long(rng() % mapped.size()));
        b->unmap(At(range, it->first * g), g);
        unmapped.push_back(it->second);
        mapped.erase(it);
        break;
      }
      case 3: {
        if (unmapped.empty()) break;
        b->release_granule(unmapped.back());
        unmapped.pop_back();
        --held;
        break;
      }
    }
  }
  for (auto [slot, h] : mapped) {
    b->unmap(At(range, slot * g), g);
    b->release_granule(h);
  }
  for (GranuleId h : unmapped) b->release_granule(h);
  b->release_range(range, slots * g);
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendVmm, ::testing::ValuesIn(Kinds()),
                         [](const ::testing::TestParamInfo<BackendKind>& info) { return info.param.name; });

// Backends without VMM say so and refuse the operations with a clear error.
TEST(BackendVmmDefault, WithoutVmmGranularityIsZeroAndOperationsThrow) {
  testing::NoVmmBackend b;
  EXPECT_EQ(b.vmm_granularity(), 0u);
  try {
    b.reserve_range(2 * kMiB);
    ADD_FAILURE() << "reserve_range did not throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBackend);
    EXPECT_NE(std::string(e.what()).find("no-vmm: reserve_range"), std::string::npos) << e.what();
  }
  EXPECT_THROW(b.create_granule(2 * kMiB), Error);
  EXPECT_THROW(b.map(nullptr, 1), Error);
  EXPECT_THROW(b.unmap(nullptr, 2 * kMiB), Error);
  EXPECT_THROW(b.set_access(nullptr, 2 * kMiB), Error);
  EXPECT_THROW(b.release_granule(1), Error);
  EXPECT_THROW(b.release_range(nullptr, 2 * kMiB), Error);
}

}  // namespace
}  // namespace hbmalloc
