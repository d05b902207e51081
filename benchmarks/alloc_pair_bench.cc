// Cached alloc+free pair latency: hbmalloc (C++ API and C ABI, sim backend)
// against the host allocators glibc malloc and mimalloc, over the same
// deterministic size mixes (size_mixes.h).
//
// Every case keeps a ring of kLive live blocks. One benchmark iteration is one
// pair: free the oldest block of the ring, allocate the next size of the mix
// into its slot. Before timing, one full pass of the same pattern over the
// whole mix warms the allocator, so what is measured is the cached steady
// state, not first-touch segment creation. The "Time" column and the
// "per_pair" counter are therefore both the latency of one alloc+free pair.
//
// Run with no arguments it does 5 repetitions per case and reports only the
// aggregates (mean/median/stddev/cv); --benchmark_repetitions=N and
// --benchmark_report_aggregates_only=... on the command line take precedence.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "hbmalloc/allocator.hpp"
#include "hbmalloc/config.hpp"
#include "hbmalloc/hbmalloc.h"
#include "size_mixes.h"

#ifdef HBMALLOC_BENCH_HAVE_MIMALLOC
#include <dlfcn.h>
#include <mimalloc.h>
#endif

// glibc's own entry points: the reference stays glibc even if something in
// the process (an LD_PRELOAD, a linked malloc replacement) overrides malloc.
extern "C" void* __libc_malloc(std::size_t size);
extern "C" void __libc_free(void* ptr);

namespace {

using hbmalloc::bench::Mix;

// Live blocks kept in the ring (a power of two).
constexpr std::size_t kLive = 64;
static_assert((kLive & (kLive - 1)) == 0, "kLive must be a power of two");

// HBMALLOC_CONF, if set, applies to both hbmalloc cases; the backend is sim
// unless HBMALLOC_CONF names one (e.g. backend:cuda on a GPU machine).
std::string hbmalloc_conf_text() {
  const char* env = std::getenv("HBMALLOC_CONF");
  std::string conf = env ? env : "";
  if (conf.find("backend") == std::string::npos) {
    conf += conf.empty() ? "backend:sim" : ",backend:sim";
  }
  return conf;
}

// --- the allocators under test --------------------------------------------
// Each adaptor: `error` (non-empty: the case cannot run, say why),
// alloc(size) -> pointer (nullptr on failure), release(ptr, size).

// hbmalloc::Allocator called directly (tools, replay, C++ users).
struct HbmallocCpp {
  std::unique_ptr<hbmalloc::Allocator> allocator;
  std::string error;

  HbmallocCpp() {
    try {
      allocator = std::make_unique<hbmalloc::Allocator>(
          hbmalloc::Config::parse(hbmalloc_conf_text()), 0);
    } catch (const std::exception& e) {
      error = std::string("hbmalloc::Allocator: ") + e.what();
    }
  }
  void* alloc(uint64_t size) { return allocator->malloc(size, 0); }
  void release(void* ptr, uint64_t /*size*/) { allocator->free(ptr); }

  // Backend allocations so far: their growth over the timed loop shows
  // whether the loop really ran from the cache.
  int64_t device_allocs() const { return allocator->stats().num_device_alloc; }
  // After the ring is freed: nothing allocated, structures consistent.
  std::string verify() const {
    try {
      allocator->check_invariants();
      const int64_t live = allocator->stats().allocation.all.current;
      if (live != 0) return std::to_string(live) + " blocks still allocated after freeing all";
    } catch (const std::exception& e) {
      return e.what();
    }
    return {};
  }
};

// The C ABI, exactly what torch.cuda.memory.CUDAPluggableAllocator calls:
// the process-wide per-device allocator, size passed back on free.
struct HbmallocCAbi {
  std::string error;

  HbmallocCAbi() {
    static const std::string configure_error = [] {
      std::string conf = hbmalloc_conf_text();
      if (hbm_configure(conf.c_str()) != 0) {
        return "hbm_configure(\"" + conf + "\"): " + hbm_last_error();
      }
      return std::string();
    }();
    error = configure_error;
    // Each case starts from an empty cache, like a fresh HbmallocCpp.
    if (error.empty()) hbm_empty_cache();
    hbm_clear_error();
  }
  void* alloc(uint64_t size) {
    return hbm_malloc(static_cast<ssize_t>(size), 0, nullptr);
  }
  void release(void* ptr, uint64_t size) {
    hbm_free(ptr, static_cast<ssize_t>(size), 0, nullptr);
  }
  // A bad hbm_free only sets the error; look for one, then check structures.
  std::string verify() const {
    if (hbm_last_error()[0] != '\0') return std::string("hbm_last_error: ") + hbm_last_error();
    if (hbm_check_invariants(0) != 0) return hbm_last_error();
    return {};
  }
};

// glibc malloc. Large sizes are mmap'd (the dynamic mmap threshold climbs to
// at most 32 MiB), so the large mix measures mmap+munmap: that is the honest
// cost of a host allocator at those sizes.
struct Glibc {
  std::string error;
  void* alloc(uint64_t size) { return __libc_malloc(size); }
  void release(void* ptr, uint64_t /*size*/) { __libc_free(ptr); }
};

#ifdef HBMALLOC_BENCH_HAVE_MIMALLOC
// mimalloc is dlopen'ed with RTLD_LOCAL rather than linked: Debian's
// libmimalloc.so exports malloc/free/new, and linking it would silently make
// it the allocator of the whole process, hbmalloc's own internal heap use
// included, which is not what a PyTorch process runs with. A call through the
// function pointer costs the same as the PLT call a linked library would make.
struct MimallocLib {
  decltype(&mi_malloc) malloc_fn = nullptr;
  decltype(&mi_free) free_fn = nullptr;
  int version = 0;
  std::string error;

  static const MimallocLib& get() {
    static const MimallocLib lib;
    return lib;
  }

 private:
  MimallocLib() {
    void* handle = dlopen(HBMALLOC_BENCH_MIMALLOC_LIB, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      error = std::string("dlopen(" HBMALLOC_BENCH_MIMALLOC_LIB "): ") + dlerror();
      return;
    }
    malloc_fn = reinterpret_cast<decltype(&mi_malloc)>(dlsym(handle, "mi_malloc"));
    free_fn = reinterpret_cast<decltype(&mi_free)>(dlsym(handle, "mi_free"));
    auto version_fn = reinterpret_cast<decltype(&mi_version)>(dlsym(handle, "mi_version"));
    if (malloc_fn == nullptr || free_fn == nullptr) {
      error = "mi_malloc/mi_free not found in " HBMALLOC_BENCH_MIMALLOC_LIB;
      return;
    }
    if (version_fn != nullptr) version = version_fn();
  }
};

struct Mimalloc {
  decltype(&mi_malloc) malloc_fn = MimallocLib::get().malloc_fn;
  decltype(&mi_free) free_fn = MimallocLib::get().free_fn;
  std::string error = MimallocLib::get().error;

  void* alloc(uint64_t size) { return malloc_fn(size); }
  void release(void* ptr, uint64_t /*size*/) { free_fn(ptr); }
};
#endif  // HBMALLOC_BENCH_HAVE_MIMALLOC

// --- the benchmark --------------------------------------------------------

template <class Adaptor>
void BM_AllocFreePair(benchmark::State& state, Mix mix) {
  Adaptor a;
  if (!a.error.empty()) {
    state.SkipWithError(a.error.c_str());
    return;
  }
  const std::vector<uint64_t>& sizes = hbmalloc::bench::mix_sizes(mix);
  const std::size_t mask = sizes.size() - 1;

  void* live[kLive] = {};
  uint64_t live_size[kLive] = {};
  std::size_t next = 0;  // next index into the mix (wraps with mask)
  std::size_t slot = 0;  // oldest block of the ring
  std::string failure;

  try {
    // Fill the ring, then warm: one pass over the whole mix, same pattern as
    // the timed loop, so each size has been allocated and freed once.
    for (std::size_t i = 0; i < kLive; ++i) {
      live_size[i] = sizes[next++ & mask];
      live[i] = a.alloc(live_size[i]);
      if (live[i] == nullptr) throw std::runtime_error("allocation failed while warming");
    }
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      a.release(live[slot], live_size[slot]);
      live_size[slot] = sizes[next++ & mask];
      live[slot] = a.alloc(live_size[slot]);
      if (live[slot] == nullptr) throw std::runtime_error("allocation failed while warming");
      slot = (slot + 1) & (kLive - 1);
    }

    int64_t device_allocs_before = 0;
    if constexpr (requires { a.device_allocs(); }) device_allocs_before = a.device_allocs();

    for (auto _ : state) {
      a.release(live[slot], live_size[slot]);
      const uint64_t size = sizes[next++ & mask];
      void* p = a.alloc(size);
      benchmark::DoNotOptimize(p);
      live[slot] = p;
      live_size[slot] = size;
      if (p == nullptr) [[unlikely]] {
        failure = "allocation of " + std::to_string(size) + " bytes returned null";
        break;
      }
      slot = (slot + 1) & (kLive - 1);
    }

    if constexpr (requires { a.device_allocs(); }) {
      // ~0 when the timed loop ran from the cache.
      state.counters["device_allocs_per_pair"] = benchmark::Counter(
          static_cast<double>(a.device_allocs() - device_allocs_before) /
          static_cast<double>(std::max<benchmark::IterationCount>(state.iterations(), 1)));
    }

    for (std::size_t i = 0; i < kLive; ++i) {
      if (live[i] != nullptr) a.release(live[i], live_size[i]);
    }
    if constexpr (requires { a.verify(); }) {
      if (failure.empty()) failure = a.verify();
    }
  } catch (const std::exception& e) {
    // The ring may hold a block already freed; leave it (a leak in the sim
    // backend costs nothing) rather than risk a double free.
    failure = e.what();
  }
  if (!failure.empty()) {
    state.SkipWithError(failure.c_str());
    return;
  }

  state.SetItemsProcessed(state.iterations());
  // Seconds per pair: the console shows it as e.g. "per_pair=21.3ns".
  state.counters["per_pair"] =
      benchmark::Counter(1, benchmark::Counter::kIsIterationInvariantRate |
                                benchmark::Counter::kInvert);
}

template <class Adaptor>
void register_case(Mix mix, const char* allocator_name) {
  std::string name = std::string("pair/") + hbmalloc::bench::mix_name(mix) + "/" + allocator_name;
  benchmark::RegisterBenchmark(name.c_str(), BM_AllocFreePair<Adaptor>, mix);
}

bool has_flag(int argc, char** argv, const char* prefix) {
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], prefix, std::strlen(prefix)) == 0) return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  for (Mix mix : {Mix::kSmall, Mix::kLarge, Mix::kMixed}) {
    register_case<HbmallocCpp>(mix, "hbmalloc_cpp");
    register_case<HbmallocCAbi>(mix, "hbmalloc_c_abi");
    register_case<Glibc>(mix, "glibc");
#ifdef HBMALLOC_BENCH_HAVE_MIMALLOC
    register_case<Mimalloc>(mix, "mimalloc");
#endif
  }

  // Defaults that the command line can override: medians of 5 repetitions.
  static char kRepetitions[] = "--benchmark_repetitions=5";
  static char kAggregatesOnly[] = "--benchmark_report_aggregates_only=true";
  std::vector<char*> args(argv, argv + argc);
  if (!has_flag(argc, argv, "--benchmark_repetitions")) {
    args.push_back(kRepetitions);
    if (!has_flag(argc, argv, "--benchmark_report_aggregates_only") &&
        !has_flag(argc, argv, "--benchmark_display_aggregates_only")) {
      args.push_back(kAggregatesOnly);
    }
  }
  int args_count = static_cast<int>(args.size());
  args.push_back(nullptr);
  benchmark::Initialize(&args_count, args.data());
  if (benchmark::ReportUnrecognizedArguments(args_count, args.data())) return 1;

  using hbmalloc::bench::describe_mix;
  benchmark::AddCustomContext("mix_small", describe_mix(Mix::kSmall));
  benchmark::AddCustomContext("mix_large", describe_mix(Mix::kLarge));
  benchmark::AddCustomContext("mix_mixed", describe_mix(Mix::kMixed));
  benchmark::AddCustomContext("live_blocks", std::to_string(kLive));
  benchmark::AddCustomContext("hbmalloc_conf", hbmalloc_conf_text());
#ifdef HBMALLOC_BENCH_HAVE_MIMALLOC
  const MimallocLib& mi = MimallocLib::get();
  benchmark::AddCustomContext(
      "mimalloc", mi.error.empty() ? "version " + std::to_string(mi.version) +
                                         " (" HBMALLOC_BENCH_MIMALLOC_LIB ", RTLD_LOCAL)"
                                   : mi.error);
#else
  std::fprintf(stderr,
               "notice: alloc_pair_bench was built without mimalloc "
               "(libmimalloc-dev not found); the mimalloc cases are left out.\n");
  benchmark::AddCustomContext("mimalloc", "not built (libmimalloc-dev not found)");
#endif

  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
