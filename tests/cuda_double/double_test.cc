// Tests of the CUDA double itself (its rules fire, naming the reference;
// physical memory aliases; access never granted is refused) and of hbmalloc's
// cuda backend under its faults: out of memory and failing driver calls at
// the Nth call leave the allocator usable and holding nothing it does not
// count. Run with build/cuda_double first on LD_LIBRARY_PATH (ctest does);
// on a real GPU the double's control functions are absent and these skip.
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/forwarding_backend.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/config.hpp"
#include "hbmalloc/error.hpp"
#include "hbmalloc/recorder.hpp"
#include "support/scratch.h"
#include "trace/read_trace.h"

namespace {

// The double's control functions, found at run time.
struct Control {
  void (*fail)(const char*, uint64_t, uint64_t, int) = nullptr;
  void (*return_violations)(int) = nullptr;
  uint64_t (*violations)() = nullptr;
  const char* (*last_violation)() = nullptr;
  uint64_t (*used)(int) = nullptr;
  uint64_t (*handles)() = nullptr;
  uint64_t (*mappings)() = nullptr;

  static const Control* get() {
    static Control c = [] {
      Control c;
      c.fail = reinterpret_cast<decltype(c.fail)>(dlsym(RTLD_DEFAULT, "hbm_double_fail"));
      c.return_violations = reinterpret_cast<decltype(c.return_violations)>(dlsym(RTLD_DEFAULT, "hbm_double_return_violations"));
      c.violations = reinterpret_cast<decltype(c.violations)>(dlsym(RTLD_DEFAULT, "hbm_double_violations"));
      c.last_violation = reinterpret_cast<decltype(c.last_violation)>(dlsym(RTLD_DEFAULT, "hbm_double_last_violation"));
      c.used = reinterpret_cast<decltype(c.used)>(dlsym(RTLD_DEFAULT, "hbm_double_used"));
      c.handles = reinterpret_cast<decltype(c.handles)>(dlsym(RTLD_DEFAULT, "hbm_double_handles"));
      c.mappings = reinterpret_cast<decltype(c.mappings)>(dlsym(RTLD_DEFAULT, "hbm_double_mappings"));
      return c;
    }();
    return c.fail ? &c : nullptr;
  }
};

template <typename F>
F entry(const char* name) {
  void* p = nullptr;
  cudaDriverEntryPointQueryResult status{};
  if (cudaGetDriverEntryPointByVersion(name, &p, 12000, cudaEnableDefault, &status) != cudaSuccess) return nullptr;
  return reinterpret_cast<F>(p);
}

struct Driver {
  decltype(&::cuMemCreate) create = entry<decltype(create)>("cuMemCreate");
  decltype(&::cuMemRelease) release = entry<decltype(release)>("cuMemRelease");
  decltype(&::cuMemAddressReserve) reserve = entry<decltype(reserve)>("cuMemAddressReserve");
  decltype(&::cuMemAddressFree) address_free = entry<decltype(address_free)>("cuMemAddressFree");
  decltype(&::cuMemMap) map = entry<decltype(map)>("cuMemMap");
  decltype(&::cuMemUnmap) unmap = entry<decltype(unmap)>("cuMemUnmap");
  decltype(&::cuMemSetAccess) set_access = entry<decltype(set_access)>("cuMemSetAccess");
  decltype(&::cuMemExportToShareableHandle) export_handle =
      entry<decltype(export_handle)>("cuMemExportToShareableHandle");
  decltype(&::cuMemImportFromShareableHandle) import_handle =
      entry<decltype(import_handle)>("cuMemImportFromShareableHandle");
};

constexpr size_t kG = size_t(2) << 20;

CUmemAllocationProp on_device(int d) {
  CUmemAllocationProp p{};
  p.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  p.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  p.location.id = d;
  return p;
}

CUmemAccessDesc read_write(int d) {
  CUmemAccessDesc a{};
  a.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  a.location.id = d;
  a.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  return a;
}

class CudaDouble : public ::testing::Test {
 protected:
  void SetUp() override {
    ctl_ = Control::get();
    if (ctl_ == nullptr) GTEST_SKIP() << "not running on the CUDA double";
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    ctl_->return_violations(1);
    violations_ = ctl_->violations();
  }
  void TearDown() override {
    if (ctl_) ctl_->return_violations(0);
  }
  // The call broke exactly one rule, whose text holds `words`.
  void expect_broke(const std::string& words) {
    EXPECT_EQ(ctl_->violations(), violations_ + 1) << "expected one broken rule";
    const std::string text = ctl_->last_violation();
    EXPECT_NE(text.find(words), std::string::npos) << text;
    EXPECT_NE(text.find("CUDA "), std::string::npos) << "names no reference: " << text;
    violations_ = ctl_->violations();
  }
  const Control* ctl_ = nullptr;
  uint64_t violations_ = 0;
  Driver drv_;
};

TEST_F(CudaDouble, TwoMappingsOfOneHandleAlias) {
  CUmemGenericAllocationHandle h = 0;
  CUmemAllocationProp prop = on_device(0);
  ASSERT_EQ(drv_.create(&h, kG, &prop, 0), CUDA_SUCCESS);
  CUdeviceptr a = 0, b = 0;
  ASSERT_EQ(drv_.reserve(&a, kG, 0, 0, 0), CUDA_SUCCESS);
  ASSERT_EQ(drv_.reserve(&b, kG, 0, 0, 0), CUDA_SUCCESS);
  ASSERT_EQ(drv_.map(a, kG, 0, h, 0), CUDA_SUCCESS);
  ASSERT_EQ(drv_.map(b, kG, 0, h, 0), CUDA_SUCCESS);
  CUmemAccessDesc rw = read_write(0);
  ASSERT_EQ(drv_.set_access(a, kG, &rw, 1), CUDA_SUCCESS);
  ASSERT_EQ(drv_.set_access(b, kG, &rw, 1), CUDA_SUCCESS);
  ASSERT_EQ(cudaMemset(reinterpret_cast<void*>(a + 4096), 0x6B, 64), cudaSuccess);
  std::vector<unsigned char> seen(64);
  ASSERT_EQ(cudaMemcpy(seen.data(), reinterpret_cast<void*>(b + 4096), 64, cudaMemcpyDeviceToHost), cudaSuccess);
  for (unsigned char c : seen) ASSERT_EQ(c, 0x6B) << "written through one mapping, read through the other";
  EXPECT_EQ(drv_.unmap(a, kG), CUDA_SUCCESS);
  EXPECT_EQ(drv_.unmap(b, kG), CUDA_SUCCESS);
  EXPECT_EQ(drv_.release(h), CUDA_SUCCESS);
  EXPECT_EQ(drv_.address_free(a, kG), CUDA_SUCCESS);
  EXPECT_EQ(drv_.address_free(b, kG), CUDA_SUCCESS);
  EXPECT_EQ(ctl_->violations(), violations_);
}

TEST_F(CudaDouble, EachRuleFiresAndNamesItsReference) {
  CUmemAllocationProp prop = on_device(0);
  CUmemGenericAllocationHandle h = 0, h2 = 0;
  EXPECT_NE(drv_.create(&h, kG / 2, &prop, 0), CUDA_SUCCESS);
  expect_broke("multiple of the granularity");
  CUmemAllocationProp far = on_device(99);
  EXPECT_NE(drv_.create(&h, kG, &far, 0), CUDA_SUCCESS);
  expect_broke("below the device count");

  ASSERT_EQ(drv_.create(&h, kG, &prop, 0), CUDA_SUCCESS);
  ASSERT_EQ(drv_.create(&h2, kG, &prop, 0), CUDA_SUCCESS);
  CUdeviceptr r = 0;
  ASSERT_EQ(drv_.reserve(&r, 4 * kG, 0, 0, 0), CUDA_SUCCESS);
  int local = 0;
  EXPECT_NE(drv_.map(reinterpret_cast<CUdeviceptr>(&local) / kG * kG, kG, 0, h, 0), CUDA_SUCCESS);
  expect_broke("inside one reservation");
  EXPECT_NE(drv_.map(r, kG, kG, h, 0), CUDA_SUCCESS);
  expect_broke("offset and flags are 0");
  ASSERT_EQ(drv_.map(r, kG, 0, h, 0), CUDA_SUCCESS);
  EXPECT_NE(drv_.map(r, kG, 0, h2, 0), CUDA_SUCCESS);
  expect_broke("not mapped already");
  CUmemAccessDesc rw = read_write(0);
  EXPECT_NE(drv_.set_access(r, 2 * kG, &rw, 1), CUDA_SUCCESS);
  expect_broke("the whole range is mapped");
  EXPECT_NE(drv_.unmap(r, kG / 2), CUDA_SUCCESS);
  expect_broke("never a part of one");
  EXPECT_NE(drv_.release(h), CUDA_SUCCESS);
  expect_broke("released only once unmapped");
  EXPECT_NE(drv_.address_free(r, 4 * kG), CUDA_SUCCESS);
  expect_broke("nothing in it is mapped");
  // Mapped, but access never granted: the device may not touch it.
  EXPECT_NE(cudaMemset(reinterpret_cast<void*>(r), 0, 16), cudaSuccess);
  expect_broke("never granted access");
  (void)cudaGetLastError();

  // Only a handle created exportable may be exported, and only a descriptor imported.
  int fd = -1;
  EXPECT_NE(drv_.export_handle(&fd, h, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0), CUDA_SUCCESS);
  expect_broke("requestedHandleTypes the handle was created with");
  CUmemGenericAllocationHandle imported = 0;
  EXPECT_NE(drv_.import_handle(&imported, reinterpret_cast<void*>(uintptr_t(-1)), CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR),
            CUDA_SUCCESS);
  expect_broke("POSIX file descriptor cuMemExportToShareableHandle gave");
  // A plain allocation is shared from its base, and opened in another process only.
  void* plain = nullptr;
  ASSERT_EQ(cudaMalloc(&plain, kG), cudaSuccess);
  cudaIpcMemHandle_t ipc{};
  EXPECT_NE(cudaIpcGetMemHandle(&ipc, static_cast<char*>(plain) + 4096), cudaSuccess);
  expect_broke("the base of an allocation cudaMalloc returned");
  ASSERT_EQ(cudaIpcGetMemHandle(&ipc, plain), cudaSuccess);
  void* opened = nullptr;
  EXPECT_NE(cudaIpcOpenMemHandle(&opened, ipc, cudaIpcMemLazyEnablePeerAccess), cudaSuccess);
  expect_broke("opened in another process than the one that exported it");
  EXPECT_EQ(cudaFree(plain), cudaSuccess);
  (void)cudaGetLastError();

  EXPECT_EQ(drv_.unmap(r, kG), CUDA_SUCCESS);
  EXPECT_EQ(drv_.release(h), CUDA_SUCCESS);
  EXPECT_EQ(drv_.release(h2), CUDA_SUCCESS);
  EXPECT_EQ(drv_.address_free(r, 4 * kG), CUDA_SUCCESS);

  cudaEvent_t e = nullptr;
  ASSERT_EQ(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), cudaSuccess);
  EXPECT_NE(cudaEventQuery(e), cudaSuccess);
  expect_broke("recorded before it is queried");
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  cudaStream_t s1 = nullptr;
  ASSERT_EQ(cudaStreamCreate(&s1), cudaSuccess);
  EXPECT_NE(cudaEventRecord(e, s1), cudaSuccess);
  expect_broke("same device");
  EXPECT_EQ(cudaStreamDestroy(s1), cudaSuccess);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
  EXPECT_EQ(cudaEventRecord(e, nullptr), cudaSuccess);
  EXPECT_EQ(cudaStreamSynchronize(nullptr), cudaSuccess);
  EXPECT_EQ(cudaEventQuery(e), cudaSuccess);
  EXPECT_EQ(cudaEventDestroy(e), cudaSuccess);
  (void)cudaGetLastError();
  EXPECT_EQ(ctl_->handles(), 0u);
  EXPECT_EQ(ctl_->mappings(), 0u);
}

// Page-mapped memory is reachable only by the devices its access names, and
// runtime peer access does not extend to it: a write by device 1 into device
// 0's block is refused until the allocator grants device 1, and then blocks
// mapped later are reachable too. Plain segments need runtime peer access.
TEST_F(CudaDouble, APeerReachesABlockOnlyAfterTheGrant) {
  // Plain segments first: the runtime peer access their grant enables stays
  // on, and page-mapped memory must still refuse the peer until its own grant.
  for (const char* conf : {"backend:cuda,vmm:off", "backend:cuda"}) {
    SCOPED_TRACE(conf);
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    hbmalloc::Allocator a(hbmalloc::Config::parse(conf), 0);
    void* p = a.malloc(4 << 20);
    ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
    cudaStream_t s1 = nullptr;
    ASSERT_EQ(cudaStreamCreate(&s1), cudaSuccess);
    EXPECT_NE(cudaMemsetAsync(p, 0x5C, 4096, s1), cudaSuccess);
    expect_broke("device 1");
    (void)cudaGetLastError();

    a.enable_peer_access(1);
    a.enable_peer_access(1);  // again: nothing more to do
    EXPECT_EQ(cudaMemsetAsync(p, 0x5C, 4096, s1), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(s1), cudaSuccess);
    unsigned char seen[4096];
    ASSERT_EQ(cudaMemcpy(seen, p, sizeof seen, cudaMemcpyDeviceToHost), cudaSuccess);
    EXPECT_EQ(seen[0], 0x5C);
    EXPECT_EQ(seen[4095], 0x5C);
    // Memory mapped after the grant is the peer's to reach as well.
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    void* q = a.malloc(64 << 20);
    ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
    EXPECT_EQ(cudaMemsetAsync(q, 0x3A, 64 << 20, s1), cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(s1), cudaSuccess);
    EXPECT_EQ(ctl_->violations(), violations_);
    EXPECT_THROW(a.enable_peer_access(7), hbmalloc::Error) << "no device 7";
    ASSERT_EQ(cudaStreamDestroy(s1), cudaSuccess);
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    a.free(q);
    a.free(p);
    a.check_invariants();
  }
}

// What the double is for: a cuda backend that forgot cuMemSetAccess (a
// mistake a GPU would show as an illegal address in some later kernel) is
// caught at the first touch, by the rule's name.
class ForgetsAccess final : public hbmalloc::ForwardingBackend {
 public:
  using ForwardingBackend::ForwardingBackend;
  void set_access(void*, uint64_t) override {}
};

TEST_F(CudaDouble, ABackendThatSkipsSetAccessIsCaughtByTheRulesName) {
  const hbmalloc::Config config = hbmalloc::Config::parse("backend:cuda");
  hbmalloc::Allocator a(config, std::make_unique<ForgetsAccess>(hbmalloc::make_backend(config, 0)));
  void* p = a.malloc(4 << 20);
  ASSERT_NE(p, nullptr);
  EXPECT_NE(cudaMemset(p, 0, 4096), cudaSuccess);
  expect_broke("device memory is touched only by devices granted access to it");
  (void)cudaGetLastError();
  a.free(p);
}

// hbmalloc on the cuda backend, with the double's faults: each failure is an
// error hbmalloc names, and afterwards the allocator serves, its invariants
// hold and it gives every handle back.
class CudaFaults : public CudaDouble {
 protected:
  void SetUp() override {
    CudaDouble::SetUp();
    if (IsSkipped()) return;
    ctl_->return_violations(0);  // hbmalloc must break no rule
  }
};

TEST_F(CudaFaults, OutOfMemoryFromCuMemCreateLeavesTheAllocatorUsable) {
  {
    hbmalloc::Allocator a(hbmalloc::Config::parse("backend:cuda"), 0);
    void* p = a.malloc(5 << 20);
    ASSERT_NE(p, nullptr);
    ctl_->fail("cuMemCreate", 1, 1000, CUDA_ERROR_OUT_OF_MEMORY);  // the retry after releasing the cache too
    try {
      a.malloc(64 << 20);
      ADD_FAILURE() << "the injected out of memory was not reported";
    } catch (const hbmalloc::Error& e) {
      EXPECT_EQ(e.code(), hbmalloc::ErrorCode::kOutOfMemory) << e.what();
    }
    ctl_->fail("cuMemCreate", 0, 0, 0);
    a.check_invariants();
    void* q = a.malloc(64 << 20);
    ASSERT_NE(q, nullptr) << "usable after the OOM";
    ASSERT_EQ(cudaMemset(q, 0x11, 64 << 20), cudaSuccess);
    a.free(q);
    a.free(p);
    a.empty_cache();
    EXPECT_EQ(a.stats().reserved_bytes.all.current, 0);
    a.check_invariants();
  }
  EXPECT_EQ(ctl_->handles(), 0u);
  EXPECT_EQ(ctl_->mappings(), 0u);
  EXPECT_EQ(ctl_->used(0), 0u);
}

TEST_F(CudaFaults, OutOfMemoryFromCudaMallocWithoutVmm) {
  {
    hbmalloc::Allocator a(hbmalloc::Config::parse("backend:cuda,vmm:off"), 0);
    void* p = a.malloc(30 << 20);
    ASSERT_NE(p, nullptr);
    ctl_->fail("cudaMalloc", 1, 1000, cudaErrorMemoryAllocation);
    EXPECT_THROW(a.malloc(300 << 20), hbmalloc::Error);
    ctl_->fail("cudaMalloc", 0, 0, 0);
    EXPECT_EQ(cudaGetLastError(), cudaSuccess) << "hbmalloc leaves no error for the caller's next check";
    void* q = a.malloc(300 << 20);
    ASSERT_NE(q, nullptr);
    a.free(q);
    a.free(p);
    a.check_invariants();
  }
  EXPECT_EQ(ctl_->used(0), 0u);
}

TEST_F(CudaFaults, AFailingMapOrAccessCallIsAnErrorAndNothingLeaks) {
  for (const char* call : {"cuMemMap", "cuMemSetAccess", "cuMemAddressReserve"}) {
    SCOPED_TRACE(call);
    {
      hbmalloc::Allocator a(hbmalloc::Config::parse("backend:cuda"), 0);
      void* p = a.malloc(8 << 20);
      ASSERT_NE(p, nullptr);
      ctl_->fail(call, 1, 1, CUDA_ERROR_UNKNOWN);
      // Another stream, new pages (past what p's arena has mapped); past any
      // arena's size, a fresh arena (cuMemAddressReserve).
      cudaStream_t s = nullptr;
      ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
      const hbmalloc::StreamId other = reinterpret_cast<hbmalloc::StreamId>(s);
      const uint64_t size = std::string(call) == "cuMemAddressReserve" ? (uint64_t(1) << 40) : (40 << 20);
      try {
        a.malloc(size, other);
        ADD_FAILURE() << "the failed call went unnoticed";
      } catch (const hbmalloc::Error& e) {
        EXPECT_EQ(e.code(), hbmalloc::ErrorCode::kBackend) << e.what();
      }
      a.check_invariants();
      void* q = a.malloc(40 << 20, other);
      ASSERT_NE(q, nullptr) << "usable after the failed call";
      ASSERT_EQ(cudaMemset(q, 0x22, 40 << 20), cudaSuccess);
      a.free(q);
      a.free(p);
      a.check_invariants();
      a.empty_cache();
      ASSERT_EQ(cudaStreamDestroy(s), cudaSuccess);
    }
    EXPECT_EQ(ctl_->handles(), 0u);
    EXPECT_EQ(ctl_->mappings(), 0u);
  }
}

// The trace a recorder writes stays readable when the device refuses access
// to pages just mapped: their map was never recorded (a mapping counts once
// usable), and the recorder lets the unmap that takes them back go unrecorded.
TEST_F(CudaFaults, ARecordedTraceStaysWholeWhenAccessIsRefused) {
  const std::string path = (hbmalloc::testing::scratch_dir("double_trace") / "t.hbt").string();
  {
    auto recorder = std::make_shared<hbmalloc::Recorder>(hbmalloc::RecorderOptions{path, "", 0});
    hbmalloc::Allocator a(hbmalloc::Config::parse("backend:cuda"), 0);
    a.attach_recorder(recorder);
    void* p = a.malloc(8 << 20);
    cudaStream_t s = nullptr;
    ASSERT_EQ(cudaStreamCreate(&s), cudaSuccess);
    const hbmalloc::StreamId other = reinterpret_cast<hbmalloc::StreamId>(s);
    ctl_->fail("cuMemSetAccess", 1, 1, CUDA_ERROR_UNKNOWN);
    EXPECT_THROW(a.malloc(40 << 20, other), hbmalloc::Error);
    void* q = a.malloc(40 << 20, other);
    a.free(q);
    a.free(p);
    a.empty_cache();
    a.attach_recorder(nullptr);
    ASSERT_EQ(cudaStreamDestroy(s), cudaSuccess);
  }
  hbmalloc::trace::Trace t = hbmalloc::trace::read_trace_file(path);  // throws if a segment event does not add up
  ASSERT_EQ(t.devices.size(), 1u);
  uint64_t maps = 0, unmaps = 0;
  for (const auto& e : t.devices[0].events) {
    if (e.action == hbmalloc::trace::Action::kSegmentMap) maps += e.size;
    if (e.action == hbmalloc::trace::Action::kSegmentUnmap) unmaps += e.size;
  }
  EXPECT_GT(maps, 0u);
  EXPECT_EQ(maps, unmaps) << "every byte recorded mapped is recorded unmapped, and no more";
}

}  // namespace
