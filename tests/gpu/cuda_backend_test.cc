// The cuda backend and the Allocator on a real device. Every test skips when
// no CUDA device is visible, except CudaBackendNoGpu, which runs only then.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/cuda_backend.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/config.hpp"
#include "gpu_support.h"
#include "hbmalloc/error.hpp"

namespace hbmalloc {
namespace {

using gpu_test::test_seed;
using gpu_test::visible_devices;

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kGiB = 1ull << 30;

#define CUDA_ASSERT(expr)                                                       \
  do {                                                                          \
    cudaError_t cuda_assert_err = (expr);                                       \
    ASSERT_EQ(cuda_assert_err, cudaSuccess) << #expr << ": " << cudaGetErrorString(cuda_assert_err); \
  } while (0)

Config cuda_config() {
  Config c;
  c.backend = "cuda";
  return c;
}

class Stream {
 public:
  Stream() {
    if (cudaStreamCreate(&stream_) != cudaSuccess) ADD_FAILURE() << "cudaStreamCreate failed";
  }
  ~Stream() {
    if (stream_) (void)cudaStreamDestroy(stream_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t get() const { return stream_; }
  StreamId id() const { return reinterpret_cast<StreamId>(stream_); }

 private:
  cudaStream_t stream_ = nullptr;
};

// Holds a stream back: work queued after the gate waits until open(), so a
// test can observe "not done yet" without compiling a kernel. The wait gives
// up after a while so a wrong allocator cannot hang the suite; timed_out()
// then says so. The destructor opens the gate and drains the stream, so an
// early ASSERT return never leaves the callback with a dangling pointer.
class StreamGate {
 public:
  explicit StreamGate(cudaStream_t stream) : stream_(stream), state_(std::make_unique<State>()) {
    if (cudaLaunchHostFunc(stream_, &StreamGate::wait, state_.get()) != cudaSuccess)
      ADD_FAILURE() << "cudaLaunchHostFunc failed";
  }
  ~StreamGate() {
    open();
    (void)cudaStreamSynchronize(stream_);
  }
  StreamGate(const StreamGate&) = delete;
  StreamGate& operator=(const StreamGate&) = delete;
  void open() { state_->open.store(true); }
  bool timed_out() const { return state_->timed_out.load(); }

 private:
  struct State {
    std::atomic<bool> open{false};
    std::atomic<bool> timed_out{false};
  };
  static void CUDART_CB wait(void* p) {
    auto* state = static_cast<State*>(p);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!state->open.load()) {
      if (std::chrono::steady_clock::now() > deadline) {
        state->timed_out.store(true);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  cudaStream_t stream_;
  std::unique_ptr<State> state_;
};

// Copies the block back and checks that every byte is `pattern`; the message
// names the first bad offset.
::testing::AssertionResult holds_pattern(const void* ptr, uint64_t size, uint8_t pattern) {
  std::vector<uint8_t> host(size);
  if (cudaError_t err = cudaMemcpy(host.data(), ptr, size, cudaMemcpyDeviceToHost); err != cudaSuccess)
    return ::testing::AssertionFailure() << "cudaMemcpy: " << cudaGetErrorString(err);
  auto bad = std::find_if(host.begin(), host.end(), [&](uint8_t b) { return b != pattern; });
  if (bad == host.end()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "block " << ptr << " of " << size << " bytes: byte " << (bad - host.begin())
                                       << " is " << int(*bad) << ", expected " << int(pattern);
}

class CudaGpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (visible_devices() == 0) GTEST_SKIP() << "no CUDA device visible";
    CUDA_ASSERT(cudaSetDevice(0));
  }
};

// --- no GPU ----------------------------------------------------------------------

TEST(CudaBackendNoGpu, ConstructionThrowsInsteadOfCrashing) {
  if (visible_devices() > 0) GTEST_SKIP() << "a CUDA device is visible";
  try {
    CudaBackend backend(0);
    FAIL() << "CudaBackend(0) constructed without a device";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBackend);
    EXPECT_NE(std::string(e.what()).find("device 0"), std::string::npos) << e.what();
  }
}

TEST(CudaBackendNoGpu, AllocatorOnCudaThrows) {
  if (visible_devices() > 0) GTEST_SKIP() << "a CUDA device is visible";
  EXPECT_THROW(Allocator(cuda_config(), 0), Error);
}

// --- the backend -------------------------------------------------------------------

TEST_F(CudaGpuTest, BadDeviceThrows) {
  try {
    CudaBackend backend(9999);
    FAIL() << "CudaBackend(9999) constructed";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kBackend);
    EXPECT_NE(std::string(e.what()).find("9999"), std::string::npos) << e.what();
  }
  EXPECT_THROW(CudaBackend(-1), Error);
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
}

TEST_F(CudaGpuTest, DescribesDevice) {
  CudaBackend backend(0);
  EXPECT_EQ(backend.name(), "cuda");
  EXPECT_EQ(backend.device(), 0);
  size_t free_bytes = 0, total_bytes = 0;
  CUDA_ASSERT(cudaMemGetInfo(&free_bytes, &total_bytes));
  EXPECT_EQ(backend.capacity(), total_bytes);
}

TEST_F(CudaGpuTest, SegmentMallocFree) {
  CudaBackend backend(0);
  for (uint64_t size : {uint64_t{1}, uint64_t{512}, uint64_t{12345}, 2 * kMiB, 64 * kMiB + 3}) {
    void* p = backend.malloc_segment(size);
    ASSERT_NE(p, nullptr) << size;
    cudaPointerAttributes attr{};
    CUDA_ASSERT(cudaPointerGetAttributes(&attr, p));
    EXPECT_EQ(attr.type, cudaMemoryTypeDevice);
    EXPECT_EQ(attr.device, 0);
    CUDA_ASSERT(cudaMemset(p, 0x5A, size));
    EXPECT_TRUE(holds_pattern(p, size, 0x5A));
    backend.free_segment(p, size);
  }
  EXPECT_THROW(backend.malloc_segment(0), Error);
}

TEST_F(CudaGpuTest, HugeSegmentIsNullAndBackendStaysUsable) {
  CudaBackend backend(0);
  EXPECT_EQ(backend.malloc_segment(backend.capacity() * 4), nullptr);
  // The out-of-memory error must not linger for the caller to trip over.
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  void* p = backend.malloc_segment(4 * kMiB);
  ASSERT_NE(p, nullptr);
  CUDA_ASSERT(cudaMemset(p, 0x11, 4 * kMiB));
  EXPECT_TRUE(holds_pattern(p, 4 * kMiB, 0x11));
  backend.free_segment(p, 4 * kMiB);
  EXPECT_NO_THROW(backend.synchronize());
}

TEST_F(CudaGpuTest, EventsDoneAfterSynchronize) {
  CudaBackend backend(0);
  Stream s;
  void* p = backend.malloc_segment(64 * kMiB);
  ASSERT_NE(p, nullptr);
  CUDA_ASSERT(cudaMemsetAsync(p, 0x22, 64 * kMiB, s.get()));
  EventId on_stream = backend.record_event(s.id());
  EventId on_default = backend.record_event(0);
  EXPECT_NE(on_stream, on_default);
  EXPECT_EQ(backend.outstanding_events(), 2u);
  backend.synchronize();
  EXPECT_TRUE(backend.event_done(on_stream));
  EXPECT_TRUE(backend.event_done(on_default));
  EXPECT_TRUE(backend.event_done(on_stream));  // querying does not consume it
  backend.release_event(on_stream);
  backend.release_event(on_default);
  EXPECT_EQ(backend.outstanding_events(), 0u);
  EXPECT_EQ(backend.pooled_events(), 2u);

  // Released events are reused rather than created anew.
  EventId again = backend.record_event(s.id());
  EXPECT_TRUE(again == on_stream || again == on_default);
  EXPECT_EQ(backend.pooled_events(), 1u);
  backend.synchronize();
  EXPECT_TRUE(backend.event_done(again));
  backend.release_event(again);

  // Handles it never gave out are refused, not passed to the runtime.
  EXPECT_THROW(backend.event_done(again), Error);
  EXPECT_THROW(backend.release_event(12345), Error);
  backend.free_segment(p, 64 * kMiB);
}

TEST_F(CudaGpuTest, EventPendingUntilStreamRuns) {
  CudaBackend backend(0);
  Stream s;
  EventId event;
  {
    StreamGate gate(s.get());
    event = backend.record_event(s.id());
    EXPECT_FALSE(backend.event_done(event));
    // "Not ready" is cleared, not left as the last error.
    EXPECT_EQ(cudaGetLastError(), cudaSuccess);
    gate.open();
    backend.synchronize();
    EXPECT_FALSE(gate.timed_out());
  }
  EXPECT_TRUE(backend.event_done(event));
  backend.release_event(event);
}

TEST_F(CudaGpuTest, KeepsCallersCurrentDevice) {
  if (visible_devices() < 2) GTEST_SKIP() << "needs two CUDA devices";
  CUDA_ASSERT(cudaSetDevice(1));
  CudaBackend backend(0);
  void* p = backend.malloc_segment(2 * kMiB);
  ASSERT_NE(p, nullptr);
  cudaPointerAttributes attr{};
  CUDA_ASSERT(cudaPointerGetAttributes(&attr, p));
  EXPECT_EQ(attr.device, 0);
  EventId e = backend.record_event(0);
  backend.synchronize();
  EXPECT_TRUE(backend.event_done(e));
  backend.release_event(e);
  backend.free_segment(p, 2 * kMiB);
  int current = -1;
  CUDA_ASSERT(cudaGetDevice(&current));
  EXPECT_EQ(current, 1);
  CUDA_ASSERT(cudaSetDevice(0));
}

// --- through the Allocator -------------------------------------------------------------

struct LiveBlock {
  void* ptr;
  uint64_t size;
  uint8_t pattern;
  const Stream* stream;
};

// Sizes from 512 B to 64 MiB, most of them small as in a training job, with
// odd sizes so rounding is exercised.
uint64_t random_size(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> kind(0, 99);
  int k = kind(rng);
  auto between = [&](uint64_t lo, uint64_t hi) { return std::uniform_int_distribution<uint64_t>(lo, hi)(rng); };
  if (k < 45) return between(512, 64 * kKiB);
  if (k < 75) return between(64 * kKiB, kMiB + 1);
  if (k < 93) return between(kMiB, 16 * kMiB);
  if (k < 97) return 64 * kMiB;
  return between(16 * kMiB, 64 * kMiB);
}

class AllocatorGpuTest : public CudaGpuTest {
 protected:
  // Byte patterns of the live blocks stay distinct, so a block that spills
  // into (or shares memory with) another is caught.
  uint8_t next_pattern() {
    for (int i = 0; i < 255; ++i) {
      cursor_ = uint8_t(cursor_ % 255 + 1);  // 1..255
      if (pattern_users_[cursor_] == 0) return cursor_;
    }
    ADD_FAILURE() << "more than 255 live blocks";
    return 0;
  }

  void allocate(Allocator& a, uint64_t size, const Stream& s) {
    void* p = a.malloc(size, s.id());
    ASSERT_NE(p, nullptr) << size;
    uint8_t pattern = next_pattern();
    ++pattern_users_[pattern];
    CUDA_ASSERT(cudaMemsetAsync(p, pattern, size, s.get()));
    live_.push_back({p, size, pattern, &s});
    live_bytes_ += size;
  }

  void free_at(Allocator& a, size_t i) {
    a.free(live_[i].ptr, int64_t(live_[i].size));
    --pattern_users_[live_[i].pattern];
    live_bytes_ -= live_[i].size;
    live_[i] = live_.back();
    live_.pop_back();
  }

  void verify_live(const Allocator& a, const char* phase) {
    SCOPED_TRACE(phase);
    CUDA_ASSERT(cudaDeviceSynchronize());
    std::vector<LiveBlock> by_addr = live_;
    std::sort(by_addr.begin(), by_addr.end(), [](auto& x, auto& y) { return x.ptr < y.ptr; });
    for (size_t i = 1; i < by_addr.size(); ++i) {
      auto end = static_cast<const char*>(by_addr[i - 1].ptr) + by_addr[i - 1].size;
      ASSERT_LE(end, static_cast<const char*>(by_addr[i].ptr)) << "live blocks overlap";
    }
    for (const LiveBlock& b : live_) ASSERT_TRUE(holds_pattern(b.ptr, b.size, b.pattern));
    Stats st = a.stats();
    EXPECT_EQ(st.requested_bytes.all.current, int64_t(live_bytes_));
    EXPECT_GE(st.allocated_bytes.all.current, int64_t(live_bytes_));
    EXPECT_GE(st.reserved_bytes.all.current, st.allocated_bytes.all.current);
    EXPECT_EQ(st.allocation.all.current, int64_t(live_.size()));
    EXPECT_NO_THROW(a.check_invariants());
  }

  std::vector<LiveBlock> live_;
  uint64_t live_bytes_ = 0;
  std::array<int, 256> pattern_users_{};
  uint8_t cursor_ = 0;
};

TEST_F(AllocatorGpuTest, PatternsSurviveRandomFreeAndReuseOnTwoStreams) {
  uint64_t seed = test_seed();
  RecordProperty("seed", std::to_string(seed));
  std::printf("seed %llu (HBMALLOC_TEST_SEED=%llu replays it)\n", (unsigned long long)seed, (unsigned long long)seed);
  SCOPED_TRACE("HBMALLOC_TEST_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);

  Stream s1, s2;  // declared first: they outlive the allocator
  Allocator a(cuda_config(), 0);
  EXPECT_EQ(a.device(), 0);
  // A quarter of the device, at most 2 GiB: room to cache without pressure
  // from other processes on a shared GPU.
  CudaBackend probe(0);
  const uint64_t budget = std::min<uint64_t>(probe.capacity() / 4, 2 * kGiB);
  constexpr size_t kMaxLive = 200;

  auto fill = [&] {
    while (live_.size() < kMaxLive) {
      uint64_t size = random_size(rng);
      if (live_bytes_ + size > budget) break;
      allocate(a, size, rng() % 2 ? s1 : s2);
      if (HasFatalFailure()) return;
    }
  };

  for (int round = 0; round < 4; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    fill();
    ASSERT_FALSE(HasFatalFailure());
    verify_live(a, "after allocating");
    ASSERT_FALSE(HasFatalFailure());

    // Free about half, in random order, without waiting for the streams:
    // reuse on the same stream is ordered by the stream itself.
    size_t to_free = live_.size() / 2 + rng() % (live_.size() / 4 + 1);
    for (size_t n = 0; n < to_free && !live_.empty(); ++n) free_at(a, rng() % live_.size());
    verify_live(a, "after freeing");
    ASSERT_FALSE(HasFatalFailure());

    fill();
    ASSERT_FALSE(HasFatalFailure());
    verify_live(a, "after re-allocating");
    ASSERT_FALSE(HasFatalFailure());
  }

  std::shuffle(live_.begin(), live_.end(), rng);
  while (!live_.empty()) free_at(a, live_.size() - 1);
  a.check_invariants();
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes.all.current, 0);
  a.check_invariants();
}

// A large block freed on one stream serves another only once the work
// queued there before the free has run: while s1 is held back its block goes
// to s1 alone; once s1 has run (and fenced its frees) s2 takes it, and s2's
// data is never overwritten by s1's late work.
TEST_F(AllocatorGpuTest, AnotherStreamTakesAFreeBlockOnlyOnceItsStreamRan) {
  Stream s1, s2;
  // No remapping: it would wait for s1 to unmap its pages, which is not what this shows.
  Allocator a(Config::parse("backend:cuda,remap:never"), 0);
  constexpr uint64_t kSize = 8 * kMiB;
  void* other = a.malloc(kSize, s2.id());  // two streams: frees are fenced
  ASSERT_NE(other, nullptr);
  void* first = nullptr;
  void* second = nullptr;
  void* post = nullptr;
  {
    StreamGate gate(s1.get());
    first = a.malloc(kSize, s1.id());
    ASSERT_NE(first, nullptr);
    post = a.malloc(kSize, s1.id());  // keeps first's block apart from the free space after it
    ASSERT_NE(post, nullptr);
    CUDA_ASSERT(cudaMemsetAsync(first, 0x01, kSize, s1.get()));  // runs once the gate opens
    a.free(first, kSize);
    second = a.malloc(kSize, s2.id());
    ASSERT_NE(second, nullptr);
    EXPECT_NE(second, first) << "s1's queued write would land on s2's block";
    CUDA_ASSERT(cudaMemsetAsync(second, 0xCD, kSize, s2.get()));
    CUDA_ASSERT(cudaStreamSynchronize(s2.get()));
    gate.open();
    CUDA_ASSERT(cudaStreamSynchronize(s1.get()));
    EXPECT_FALSE(gate.timed_out()) << "the allocator waited on the gated stream";
    EXPECT_TRUE(holds_pattern(second, kSize, 0xCD));
  }
  // s1 has run past the fence recorded at the free: s2 takes the block.
  void* third = a.malloc(kSize, s2.id());
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(third, first) << "s1's free block, its work done";
  CUDA_ASSERT(cudaMemsetAsync(third, 0x5A, kSize, s2.get()));
  CUDA_ASSERT(cudaDeviceSynchronize());
  EXPECT_TRUE(holds_pattern(third, kSize, 0x5A));
  a.free(third, kSize);
  a.free(second, kSize);
  a.free(post, kSize);
  a.free(other, kSize);
  a.check_invariants();
}

TEST_F(AllocatorGpuTest, RecordStreamDelaysReuseUntilTheOtherStreamIsDone) {
  Stream s1, s2;
  Allocator a(cuda_config(), 0);
  constexpr uint64_t kSize = 8 * kMiB;

  void* first = a.malloc(kSize, s1.id());
  ASSERT_NE(first, nullptr);
  CUDA_ASSERT(cudaMemsetAsync(first, 0x01, kSize, s1.get()));
  void* second = nullptr;
  {
    // s2 uses the block, but only once the gate opens: long after the free.
    StreamGate gate(s2.get());
    CUDA_ASSERT(cudaMemsetAsync(first, 0xAB, kSize, s2.get()));
    a.record_stream(first, s2.id());
    a.free(first, kSize);
    a.check_invariants();

    // If this reused `first`, the late write on s2 would overwrite it.
    second = a.malloc(kSize, s1.id());
    ASSERT_NE(second, nullptr);
    EXPECT_NE(second, first);
    CUDA_ASSERT(cudaMemsetAsync(second, 0xCD, kSize, s1.get()));
    CUDA_ASSERT(cudaStreamSynchronize(s1.get()));
    a.check_invariants();

    gate.open();
    CUDA_ASSERT(cudaStreamSynchronize(s2.get()));
    EXPECT_FALSE(gate.timed_out()) << "the allocator waited on the gated stream";
  }
  CUDA_ASSERT(cudaDeviceSynchronize());
  EXPECT_TRUE(holds_pattern(second, kSize, 0xCD));

  // s2 is done: both blocks are reusable on s1 without reserving more.
  a.free(second, kSize);
  int64_t reserved = a.stats().reserved_bytes.all.current;
  void* c = a.malloc(kSize, s1.id());
  void* d = a.malloc(kSize, s1.id());
  ASSERT_NE(c, nullptr);
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(a.stats().reserved_bytes.all.current, reserved);
  CUDA_ASSERT(cudaMemsetAsync(c, 0x33, kSize, s1.get()));
  CUDA_ASSERT(cudaMemsetAsync(d, 0x44, kSize, s1.get()));
  CUDA_ASSERT(cudaDeviceSynchronize());
  EXPECT_TRUE(holds_pattern(c, kSize, 0x33));
  EXPECT_TRUE(holds_pattern(d, kSize, 0x44));
  a.check_invariants();
  a.free(c, kSize);
  a.free(d, kSize);
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes.all.current, 0);
  a.check_invariants();
}

TEST_F(AllocatorGpuTest, EmptyCacheReturnsReservedToZero) {
  Stream s;
  Allocator a(cuda_config(), 0);
  std::vector<std::pair<void*, uint64_t>> blocks;
  for (uint64_t size : {uint64_t{512}, 4 * kKiB, 100 * kKiB, kMiB, 3 * kMiB + 17, 20 * kMiB, 64 * kMiB}) {
    void* p = a.malloc(size, s.id());
    ASSERT_NE(p, nullptr);
    CUDA_ASSERT(cudaMemsetAsync(p, 0x77, size, s.get()));
    blocks.emplace_back(p, size);
  }
  a.check_invariants();
  EXPECT_GT(a.stats().reserved_bytes.all.current, 0);
  for (auto [p, size] : blocks) a.free(p, int64_t(size));
  a.check_invariants();
  a.empty_cache();
  Stats st = a.stats();
  EXPECT_EQ(st.reserved_bytes.all.current, 0);
  EXPECT_EQ(st.segment.all.current, 0);
  EXPECT_EQ(st.allocated_bytes.all.current, 0);
  a.check_invariants();

  // Still usable after giving everything back.
  void* p = a.malloc(kMiB, s.id());
  ASSERT_NE(p, nullptr);
  a.free(p);
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes.all.current, 0);
}

TEST_F(AllocatorGpuTest, OutOfMemoryThrowsAndAllocatorStaysUsable) {
  Stream s;
  Allocator a(cuda_config(), 0);
  CudaBackend probe(0);
  void* keep = a.malloc(2 * kMiB, s.id());
  ASSERT_NE(keep, nullptr);
  try {
    (void)a.malloc(probe.capacity() * 2, s.id());
    FAIL() << "allocated twice the device";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kOutOfMemory) << e.what();
  }
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  EXPECT_GE(a.stats().num_ooms, 1);
  a.check_invariants();
  void* p = a.malloc(16 * kMiB, s.id());
  ASSERT_NE(p, nullptr);
  CUDA_ASSERT(cudaMemsetAsync(p, 0x99, 16 * kMiB, s.get()));
  CUDA_ASSERT(cudaDeviceSynchronize());
  EXPECT_TRUE(holds_pattern(p, 16 * kMiB, 0x99));
  a.free(p);
  a.free(keep);
  a.empty_cache();
  EXPECT_EQ(a.stats().reserved_bytes.all.current, 0);
  a.check_invariants();
}

}  // namespace
}  // namespace hbmalloc
