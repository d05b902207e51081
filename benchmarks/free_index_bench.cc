// The large pool's free index on its own, N free blocks indexed. One
// iteration takes the best fit for a random block's size and erases and
// re-inserts another random block (as a coalescing free does), then puts
// both back. "equal" holds N blocks of one size, the worst case for a bin
// (an insert or erase shifts up to N entries); "spread" holds N blocks of
// log-uniform sizes 512 B .. 1 GiB.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "policy/hbm/free_index.h"

namespace {

using hbmalloc::hbm::Block;
using hbmalloc::hbm::FreeIndex;

void run(benchmark::State& state, bool equal) {
  const size_t n = size_t(state.range(0));
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<double> exp(9, 30);
  std::vector<Block> blocks(n);
  uintptr_t addr = 1 << 20;
  for (Block& b : blocks) {
    b.size = equal ? (uint64_t(2) << 20) : (uint64_t(std::pow(2.0, exp(rng))) + 511) / 512 * 512;
    b.addr = addr;
    addr += b.size;
  }
  FreeIndex index;
  for (size_t i = 0; i < n; ++i) index.insert(&blocks[i]);
  std::vector<Block*> order;
  for (size_t i = 0; i < 4096; ++i) order.push_back(&blocks[rng() % n]);
  size_t k = 0;
  for (auto _ : state) {
    Block* taken = index.take_best_fit(0, order[k++ % order.size()]->size);
    Block* moved = order[k++ % order.size()];
    if (moved != taken) {
      index.erase(moved);
      index.insert(moved);
    }
    index.insert(taken);
    benchmark::DoNotOptimize(taken);
  }
}

void BM_Equal(benchmark::State& state) { run(state, true); }
void BM_Spread(benchmark::State& state) { run(state, false); }
BENCHMARK(BM_Equal)->Name("free_index/equal")->RangeMultiplier(10)->Range(10, 100000);
BENCHMARK(BM_Spread)->Name("free_index/spread")->RangeMultiplier(10)->Range(10, 100000);

}  // namespace

BENCHMARK_MAIN();
