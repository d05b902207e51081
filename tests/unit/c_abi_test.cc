// The C ABI exactly as PyTorch reaches it: dlopen the shared library (the
// installed one when HBMALLOC_LIB names it) and call hbm_* through dlsym, on
// the sim backend, with no GPU.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "hbmalloc/hbmalloc.h"
#include "support/scratch.h"
#include "trace/read_trace.h"

namespace {

struct Abi {
  void* (*malloc)(ssize_t, int, cudaStream_t);
  void (*free)(void*, ssize_t, int, cudaStream_t);
  int (*configure)(const char*);
  void (*init)(int);
  void (*empty_cache)();
  void (*set_memory_fraction)(double, int);
  void (*record_stream)(void*, cudaStream_t);
  int (*enable_peer_access)(int, int);
  void (*reset_peak_stats)(int);
  size_t (*stats_json)(int, char*, size_t);
  size_t (*memory_summary)(int, char*, size_t);
  int (*check_invariants)(int);
  int (*dump_snapshot)(const char*);
  const char* (*last_error)();
  void (*clear_error)();

  std::string error() const { return last_error(); }
  std::string stats(int device = 0) const { return text(stats_json, device); }
  std::string summary(int device = 0) const { return text(memory_summary, device); }
  // The whole text of an hbm_stats_json-like call: asks the length, then fills.
  static std::string text(size_t (*call)(int, char*, size_t), int device) {
    std::string s(call(device, nullptr, 0) + 1, '\0');
    size_t n = call(device, s.data(), s.size());
    s.resize(n);
    return s;
  }
};

const char* LibraryPath() {
  const char* env = std::getenv("HBMALLOC_LIB");
  return env && *env ? env : HBMALLOC_BUILD_LIB;
}

// HBMALLOC_TEST_BACKEND=cuda runs these on the cuda backend (ctest does so on
// the CUDA double, with devices of 1 GiB as the sim's); the default is the sim.
bool OnCuda() {
  const char* b = std::getenv("HBMALLOC_TEST_BACKEND");
  return b != nullptr && std::string(b) == "cuda";
}

// Loads the library once per process; conf (by default the backend's)
// goes into HBMALLOC_CONF first.
Abi& Load(const char* conf = nullptr) {
  static Abi abi = [conf] {
    setenv("HBMALLOC_CONF", conf ? conf : OnCuda() ? "backend:cuda" : "backend:sim,capacity:1GiB", 1);
    void* h = dlopen(LibraryPath(), RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) {
      std::fprintf(stderr, "dlopen %s: %s\n", LibraryPath(), dlerror());
      std::abort();
    }
    auto sym = [h](const char* name) {
      void* s = dlsym(h, name);
      if (s == nullptr) {
        std::fprintf(stderr, "missing symbol %s\n", name);
        std::abort();
      }
      return s;
    };
    Abi a;
    a.malloc = reinterpret_cast<decltype(a.malloc)>(sym("hbm_malloc"));
    a.free = reinterpret_cast<decltype(a.free)>(sym("hbm_free"));
    a.configure = reinterpret_cast<decltype(a.configure)>(sym("hbm_configure"));
    a.init = reinterpret_cast<decltype(a.init)>(sym("hbm_init"));
    a.empty_cache = reinterpret_cast<decltype(a.empty_cache)>(sym("hbm_empty_cache"));
    a.set_memory_fraction = reinterpret_cast<decltype(a.set_memory_fraction)>(sym("hbm_set_memory_fraction"));
    a.record_stream = reinterpret_cast<decltype(a.record_stream)>(sym("hbm_record_stream"));
    a.enable_peer_access = reinterpret_cast<decltype(a.enable_peer_access)>(sym("hbm_enable_peer_access"));
    a.reset_peak_stats = reinterpret_cast<decltype(a.reset_peak_stats)>(sym("hbm_reset_peak_stats"));
    a.stats_json = reinterpret_cast<decltype(a.stats_json)>(sym("hbm_stats_json"));
    a.memory_summary = reinterpret_cast<decltype(a.memory_summary)>(sym("hbm_memory_summary"));
    a.check_invariants = reinterpret_cast<decltype(a.check_invariants)>(sym("hbm_check_invariants"));
    a.dump_snapshot = reinterpret_cast<decltype(a.dump_snapshot)>(sym("hbm_dump_snapshot"));
    a.last_error = reinterpret_cast<decltype(a.last_error)>(sym("hbm_last_error"));
    a.clear_error = reinterpret_cast<decltype(a.clear_error)>(sym("hbm_clear_error"));
    return a;
  }();
  return abi;
}

// Stream `id` of the test: on the sim any number names a stream; on cuda a
// real stream is made for each id on first use (0 stays the default stream).
cudaStream_t Stream(uintptr_t id) {
  if (!OnCuda() || id == 0) return reinterpret_cast<cudaStream_t>(id);
  static std::map<uintptr_t, cudaStream_t> streams;
  auto it = streams.find(id);
  if (it != streams.end()) return it->second;
  using Create = int (*)(cudaStream_t*);
  static Create create = reinterpret_cast<Create>(dlsym(dlopen("libcudart.so.13", RTLD_NOW), "cudaStreamCreate"));
  cudaStream_t s = nullptr;
  if (create == nullptr || create(&s) != 0) std::abort();
  return streams[id] = s;
}

class CAbi : public ::testing::Test {
 protected:
  void SetUp() override {
    abi_ = &Load();
    abi_->clear_error();
    // On a device, a free that waits on another stream's work completes when
    // that work does, after the test that made it: empty_cache waits for it,
    // so each test starts from exact figures (the sim completes it at once).
    if (OnCuda()) abi_->empty_cache();
  }
  void TearDown() override {
    EXPECT_EQ(abi_->check_invariants(0), 0) << abi_->error();
    EXPECT_NE(abi_->stats().find("\"allocation.all.current\":0,"), std::string::npos) << "a test leaked a block";
  }
  Abi* abi_ = nullptr;
};

TEST_F(CAbi, MallocAndFreeLikePytorchDoes) {
  void* p = abi_->malloc(1 << 20, 0, Stream(0));
  void* q = abi_->malloc(300 << 20, 0, Stream(7));
  ASSERT_NE(p, nullptr) << abi_->error();
  ASSERT_NE(q, nullptr) << abi_->error();
  std::string stats = abi_->stats();
  EXPECT_NE(stats.find("\"allocation.all.current\":2"), std::string::npos) << stats;
  EXPECT_NE(stats.find("\"requested_bytes.all.current\":315621376"), std::string::npos) << stats;
  abi_->free(p, 1 << 20, 0, Stream(0));
  abi_->free(q, 300 << 20, 0, Stream(7));
  EXPECT_EQ(abi_->error(), "");
}

TEST_F(CAbi, DumpSnapshotWritesWhatTheDevicesHoldAsAPytorchSnapshot) {
  void* p = abi_->malloc(5 << 20, 0, Stream(0));
  void* q = abi_->malloc(3000, 1, Stream(0));
  ASSERT_NE(p, nullptr) << abi_->error();
  ASSERT_NE(q, nullptr) << abi_->error();
  const std::string path = (hbmalloc::testing::scratch_dir("dump_snapshot") / "live.pickle").string();
  ASSERT_EQ(abi_->dump_snapshot(path.c_str()), 0) << abi_->error();
  hbmalloc::trace::Trace t = hbmalloc::trace::read_trace_file(path);
  EXPECT_EQ(t.format, "pytorch-snapshot");
  ASSERT_NE(t.device(0), nullptr);
  ASSERT_NE(t.device(1), nullptr);
  auto live_bytes = [](const hbmalloc::trace::DeviceTrace& d) {
    uint64_t requested = 0;
    for (const auto& seg : d.segments_at_end)
      for (const auto& b : seg.blocks)
        if (b.state == hbmalloc::trace::BlockState::kActiveAllocated) requested += b.requested;
    return requested;
  };
  EXPECT_EQ(live_bytes(*t.device(0)), 5u << 20);
  EXPECT_EQ(live_bytes(*t.device(1)), 3000u);
  abi_->free(p, 5 << 20, 0, Stream(0));
  abi_->free(q, 3000, 1, Stream(0));
  EXPECT_EQ(abi_->dump_snapshot(""), -1);
  EXPECT_NE(abi_->error().find("empty path"), std::string::npos);
  EXPECT_EQ(abi_->dump_snapshot("/nonexistent-dir/x.pickle"), -1);
  EXPECT_NE(abi_->error().find("/nonexistent-dir/x.pickle"), std::string::npos) << abi_->error();
  abi_->clear_error();
}

TEST_F(CAbi, ZeroSizeReturnsNullWithoutError) {
  EXPECT_EQ(abi_->malloc(0, 0, Stream(0)), nullptr);
  EXPECT_EQ(abi_->error(), "");
  abi_->free(nullptr, 0, 0, Stream(0));
  EXPECT_EQ(abi_->error(), "");
}

TEST_F(CAbi, NegativeSizeIsRefused) {
  EXPECT_EQ(abi_->malloc(-1, 0, Stream(0)), nullptr);
  EXPECT_NE(abi_->error().find("negative size"), std::string::npos) << abi_->error();
}

TEST_F(CAbi, NegativeSizeOnFreeIsRefusedAndKeepsTheBlock) {
  void* p = abi_->malloc(4096, 0, Stream(0));
  abi_->free(p, -5, 0, Stream(0));
  EXPECT_NE(abi_->error().find("negative size"), std::string::npos) << abi_->error();
  EXPECT_NE(abi_->stats().find("\"allocation.all.current\":1,"), std::string::npos);
  abi_->free(p, 4096, 0, Stream(0));
}

TEST_F(CAbi, DoubleFreeIsIgnoredAndNamed) {
  void* p = abi_->malloc(4096, 0, Stream(0));
  abi_->free(p, 4096, 0, Stream(0));
  abi_->free(p, 4096, 0, Stream(0));
  EXPECT_NE(abi_->error().find("double free"), std::string::npos) << abi_->error();
}

TEST_F(CAbi, ForeignPointerIsIgnoredAndNamed) {
  int x = 0;
  abi_->free(&x, 4, 0, Stream(0));
  EXPECT_NE(abi_->error().find("unknown pointer"), std::string::npos) << abi_->error();
}

TEST_F(CAbi, SizeMismatchKeepsTheBlock) {
  void* p = abi_->malloc(10 << 20, 0, Stream(0));
  abi_->free(p, 11 << 20, 0, Stream(0));
  EXPECT_NE(abi_->error().find("size mismatch"), std::string::npos) << abi_->error();
  EXPECT_EQ(abi_->check_invariants(0), 0) << abi_->error();
  abi_->clear_error();
  abi_->free(p, 10 << 20, 0, Stream(0));
  EXPECT_EQ(abi_->error(), "");
}

TEST_F(CAbi, OutOfMemoryReturnsNullAndStaysUsable) {
  void* big = abi_->malloc(900 << 20, 0, Stream(0));
  ASSERT_NE(big, nullptr);
  EXPECT_EQ(abi_->malloc(200 << 20, 0, Stream(0)), nullptr);  // 1 GiB device
  EXPECT_NE(abi_->error().find("out of memory"), std::string::npos) << abi_->error();
  void* small = abi_->malloc(50 << 20, 0, Stream(0));
  EXPECT_NE(small, nullptr);
  abi_->free(small, 50 << 20, 0, Stream(0));
  abi_->free(big, 900 << 20, 0, Stream(0));
  abi_->empty_cache();
  EXPECT_NE(abi_->stats().find("\"reserved_bytes.all.current\":0,"), std::string::npos);
}

TEST_F(CAbi, MemoryFractionAndItsValidation) {
  abi_->set_memory_fraction(0.25, 0);
  EXPECT_EQ(abi_->error(), "");
  EXPECT_EQ(abi_->malloc(300 << 20, 0, Stream(0)), nullptr);
  abi_->set_memory_fraction(1.0, 0);
  abi_->set_memory_fraction(-3, 0);
  EXPECT_NE(abi_->error().find("memory fraction"), std::string::npos) << abi_->error();
  abi_->clear_error();
  void* p = abi_->malloc(300 << 20, 0, Stream(0));
  EXPECT_NE(p, nullptr) << abi_->error();
  abi_->free(p, 300 << 20, 0, Stream(0));
}

TEST_F(CAbi, RecordStreamAndUnknownPointer) {
  void* p = abi_->malloc(2 << 20, 0, Stream(1));
  abi_->record_stream(p, Stream(2));
  EXPECT_EQ(abi_->error(), "");
  abi_->free(p, 2 << 20, 0, Stream(1));
  int x;
  abi_->record_stream(&x, Stream(2));
  EXPECT_NE(abi_->error().find("unknown pointer"), std::string::npos) << abi_->error();
}

// The sim's memory is every device's: the grant has nothing to do but must
// answer; a device out of range is an error naming it. (The grant itself is
// tested on the CUDA double: tests/cuda_double/double_test.cc.)
TEST_F(CAbi, EnablePeerAccess) {
  EXPECT_EQ(abi_->enable_peer_access(0, 1), 0) << abi_->error();
  EXPECT_EQ(abi_->enable_peer_access(-1, 0), -1);
  EXPECT_NE(abi_->error().find("device"), std::string::npos) << abi_->error();
  abi_->clear_error();
}

TEST_F(CAbi, SecondDeviceHasItsOwnAllocator) {
  void* p = abi_->malloc(4 << 20, 1, Stream(0));
  ASSERT_NE(p, nullptr) << abi_->error();
  abi_->free(p, 4 << 20, 0, Stream(0));  // wrong device: not its pointer
  EXPECT_NE(abi_->error().find("unknown pointer"), std::string::npos) << abi_->error();
  abi_->free(p, 4 << 20, 1, Stream(0));
  EXPECT_NE(abi_->stats(1).find("\"allocation.all.current\":0,"), std::string::npos);
  EXPECT_EQ(abi_->malloc(16, 99, Stream(0)), nullptr);
  EXPECT_NE(abi_->error().find("out of range"), std::string::npos) << abi_->error();
}

TEST_F(CAbi, ConfigureAfterFirstUseIsRefused) {
  abi_->free(abi_->malloc(512, 0, Stream(0)), 512, 0, Stream(0));  // ctest may run this test alone
  EXPECT_EQ(abi_->configure("backend:sim"), -1);
  EXPECT_NE(abi_->error().find("after the allocator was initialised"), std::string::npos) << abi_->error();
  EXPECT_EQ(abi_->configure("bogus_key:1"), -1);
  EXPECT_NE(abi_->error().find("unknown key 'bogus_key'"), std::string::npos) << abi_->error();
}

TEST_F(CAbi, ResetPeakStats) {
  abi_->free(abi_->malloc(64 << 20, 0, Stream(0)), 64 << 20, 0, Stream(0));
  abi_->reset_peak_stats(0);
  EXPECT_NE(abi_->stats().find("\"allocated_bytes.all.peak\":0,"), std::string::npos) << abi_->stats();
}

TEST_F(CAbi, StatsJsonTruncatesSafely) {
  char buf[16];
  size_t needed = abi_->stats_json(0, buf, sizeof buf);
  EXPECT_GT(needed, sizeof buf);
  EXPECT_EQ(std::strlen(buf), sizeof buf - 1);
}

TEST_F(CAbi, MemorySummaryTabulatesTheLiveStatistics) {
  void* p = abi_->malloc(3 << 20, 0, Stream(0));
  ASSERT_NE(p, nullptr) << abi_->error();
  const std::string text = abi_->summary();
  char buf[8];
  EXPECT_EQ(abi_->memory_summary(0, buf, sizeof buf), text.size());  // truncated, as hbm_stats_json
  EXPECT_EQ(std::strlen(buf), sizeof buf - 1);
  abi_->free(p, 3 << 20, 0, Stream(0));
  EXPECT_EQ(text.rfind("hbmalloc memory summary, device 0\n", 0), 0u) << text;
  auto row = [&](const std::string& label) {
    size_t at = text.find("\n  " + label + " ");
    return at == std::string::npos ? std::string() : text.substr(at + 1, text.find('\n', at + 1) - at - 1);
  };
  EXPECT_NE(row("Allocated memory").find("3.00 MiB"), std::string::npos) << text;
  EXPECT_NE(row("Requested memory").find("3.00 MiB"), std::string::npos) << text;
  EXPECT_FALSE(row("GPU reserved memory").empty()) << text;
  EXPECT_NE(row("Allocations").find(" 1 "), std::string::npos) << text;
  EXPECT_NE(text.find(", largest free block "), std::string::npos) << text;
  EXPECT_NE(text.find(", limit 1.00 GiB\n"), std::string::npos) << text;  // the configured capacity
}

// A fresh process, so the bad HBMALLOC_CONF is what the library first sees.
TEST(CAbiDeathTest, BadEnvironmentConfigFailsEveryMallocWithItsName) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        Abi& abi = Load("backend:sim,capasity:1GiB");
        void* p = abi.malloc(1024, 0, Stream(0));
        std::fprintf(stderr, "%s\n", abi.error().c_str());
        std::exit(p == nullptr && abi.error().find("unknown key 'capasity'") != std::string::npos ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "capasity");
}

}  // namespace
