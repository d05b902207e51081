// Eight threads on the cuda backend, over every visible device (up to four):
// each thread works on one device's Allocator with a stream of its own,
// writes a pattern into every block it gets and checks it before the free,
// while other threads empty the cache and read statistics. Blocks handed to
// two threads at once, or remapped under a live one, show as a broken
// pattern; afterwards each allocator's invariants hold and it holds nothing.
// Runs on a GPU and on the CUDA double (ctest: four devices).
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/cuda_backend.h"
#include "gpu_support.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/error.hpp"
#include "support/block_pattern.h"

namespace hbmalloc {
namespace {

using gpu_test::test_seed;
using gpu_test::visible_devices;

constexpr uint64_t kMiB = 1ull << 20;

TEST(CudaThreads, EightThreadsOverEveryDevice) {
  const int devices = std::min(visible_devices(), 4);
  if (devices == 0) GTEST_SKIP() << "no CUDA device visible";
  const uint64_t seed = test_seed();
  SCOPED_TRACE("HBMALLOC_TEST_SEED=" + std::to_string(seed));
  std::vector<std::unique_ptr<Allocator>> allocators;
  for (int d = 0; d < devices; ++d) {
    allocators.push_back(std::make_unique<Allocator>(Config::parse("backend:cuda"), d));
    CudaBackend probe(d);
    // 512 MiB each: enough to reuse and remap under pressure, small enough for a double's host memory.
    allocators.back()->set_memory_fraction(std::min(1.0, double(512 * kMiB) / double(probe.capacity())));
  }
  constexpr int kThreads = 8;
  std::atomic<uint64_t> corrupt{0}, ooms{0}, ops{0};
  std::atomic<bool> failed{false};
  std::vector<std::string> errors(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const int d = t % devices;
      Allocator& a = *allocators[size_t(d)];
      std::mt19937_64 rng(seed + uint64_t(t));
      std::uniform_real_distribution<double> log_size(9.0, 22.0);  // 512 B .. 4 MiB
      try {
        if (cudaSetDevice(d) != cudaSuccess) throw std::runtime_error("cudaSetDevice");
        cudaStream_t stream = nullptr;
        if (cudaStreamCreate(&stream) != cudaSuccess) throw std::runtime_error("cudaStreamCreate");
        struct Live {
          void* ptr;
          uint64_t size, id;
        };
        std::vector<Live> live;
        uint64_t next_id = uint64_t(t) << 40;
        std::vector<uint64_t> words, back;
        auto fill = [&](uint64_t id, uint64_t size) {
          words.resize((size + 7) / 8);
          for (uint64_t i = 0; i < words.size(); ++i) words[i] = testing::pattern_word(id, i);
        };
        for (int i = 0; i < 1500 && !failed.load(); ++i, ++ops) {
          const uint64_t r = rng() % 100;
          if (r < 55 || live.empty()) {
            const uint64_t size = uint64_t(std::exp2(log_size(rng)));
            void* p = nullptr;
            try {
              p = a.malloc(size, reinterpret_cast<StreamId>(stream));
            } catch (const Error& e) {
              if (e.code() != ErrorCode::kOutOfMemory) throw;
              ++ooms;
              continue;
            }
            fill(++next_id, size);
            if (cudaMemcpy(p, words.data(), size, cudaMemcpyHostToDevice) != cudaSuccess)
              throw std::runtime_error("cudaMemcpy in");
            live.push_back({p, size, next_id});
          } else if (r < 97) {
            const size_t k = rng() % live.size();
            const Live l = live[k];
            live[k] = live.back();
            live.pop_back();
            fill(l.id, l.size);
            back.resize(words.size());
            if (cudaMemcpy(back.data(), l.ptr, l.size, cudaMemcpyDeviceToHost) != cudaSuccess)
              throw std::runtime_error("cudaMemcpy out");
            if (std::memcmp(back.data(), words.data(), l.size) != 0) ++corrupt;
            a.free(l.ptr, int64_t(l.size));
          } else if (r < 98) {
            a.empty_cache();
          } else {
            (void)a.stats();
          }
        }
        for (const Live& l : live) a.free(l.ptr, int64_t(l.size));
        a.empty_cache();
        if (cudaStreamDestroy(stream) != cudaSuccess) throw std::runtime_error("cudaStreamDestroy");
      } catch (const std::exception& e) {
        errors[size_t(t)] = e.what();
        failed.store(true);
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[size_t(t)], "") << "thread " << t;
  EXPECT_EQ(corrupt.load(), 0u) << "blocks whose pattern broke while they were live";
  for (int d = 0; d < devices; ++d) {
    Allocator& a = *allocators[size_t(d)];
    EXPECT_NO_THROW(a.check_invariants()) << "device " << d;
    EXPECT_EQ(a.stats().allocation.all.current, 0) << "device " << d;
    a.empty_cache();
    EXPECT_EQ(a.stats().reserved_bytes.all.current, 0) << "device " << d;
  }
  std::printf("%d devices, %d threads: %llu operations, %llu OOMs\n", devices, kThreads,
              (unsigned long long)ops.load(), (unsigned long long)ooms.load());
}

}  // namespace
}  // namespace hbmalloc
