// Many threads on one Allocator: every thread's blocks stay disjoint from
// everyone else's, and the accounting adds up at the end.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "support/invariants.h"

namespace hbmalloc {
namespace {

using testing::InvariantsHold;
using testing::LiveRanges;
using testing::SimAllocator;

TEST(Threads, EightThreadsShareOneAllocator) {
  SimAllocator a(64ull << 30);
  constexpr int kThreads = 8;
  constexpr int kOps = 40'000;
  std::mutex shadow_mu;
  LiveRanges shadow;  // all threads' blocks: catches cross-thread overlap
  std::atomic<int> overlaps{0}, errors{0};

  auto worker = [&](int id) {
    std::mt19937_64 rng(1000 + id);
    std::vector<std::pair<void*, uint64_t>> mine;
    for (int op = 0; op < kOps; ++op) {
      if (mine.size() < 64 && (rng() % 3 != 0 || mine.empty())) {
        uint64_t size = (rng() % 4 == 0) ? (1ull << 20) + rng() % (256ull << 20) : 1 + rng() % (1 << 20);
        // Half the threads share stream 0, the rest have their own.
        StreamId stream = id % 2 == 0 ? 0 : StreamId(id);
        void* p = nullptr;
        try {
          p = a->malloc(size, stream);
        } catch (const Error&) {
          ++errors;
          continue;
        }
        {
          std::lock_guard<std::mutex> lock(shadow_mu);
          if (!shadow.add(p, size).empty()) ++overlaps;
        }
        mine.push_back({p, size});
      } else {
        size_t i = rng() % mine.size();
        auto [p, size] = mine[i];
        mine[i] = mine.back();
        mine.pop_back();
        {
          std::lock_guard<std::mutex> lock(shadow_mu);
          shadow.remove(p);
        }
        a->free(p, int64_t(size));
      }
      if (op % 10'000 == 0 && id == 0) {
        if (!InvariantsHold(*a.alloc)) ++errors;
      }
    }
    for (auto [p, size] : mine) {
      {
        std::lock_guard<std::mutex> lock(shadow_mu);
        shadow.remove(p);
      }
      a->free(p, int64_t(size));
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) threads.emplace_back(worker, t);
  for (auto& t : threads) t.join();

  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(errors.load(), 0);
  EXPECT_TRUE(InvariantsHold(*a.alloc));
  Stats s = a->stats();
  EXPECT_EQ(s.allocation.all.current, 0);
  EXPECT_EQ(s.allocation.all.allocated, s.allocation.all.freed);
  a->empty_cache();
  EXPECT_EQ(a->stats().reserved_bytes.all.current, 0);
}

TEST(Threads, StatsAndChecksRunConcurrentlyWithAllocation) {
  SimAllocator a;
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread reader([&] {
    while (!stop) {
      Stats s = a->stats();
      if (s.allocation.all.current < 0 || s.reserved_bytes.all.current < s.allocated_bytes.all.current) ++failures;
      if (!InvariantsHold(*a.alloc)) ++failures;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t)
    writers.emplace_back([&, t] {
      for (int i = 0; i < 20'000; ++i) a->free(a->malloc(512 + (i * 7919 + t) % (4 << 20), t));
    });
  for (auto& w : writers) w.join();
  stop = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace hbmalloc
