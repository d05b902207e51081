// The libtorch extension's TorchAllocator on the sim backend, with no GPU:
// what torch.cuda's memory APIs would read through it (statistics, snapshot,
// history, private pools, OOM observers and the OutOfMemoryError text). The
// calls that need a device (allocate() picks the current CUDA device and
// stream) are exercised by tests/gpu/torch_suite.py.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include <torch/csrc/profiler/combined_traceback.h>

#include <fstream>
#include <sstream>

#include "hbmalloc/hbmalloc.h"
#include "hbmalloc/registry.hpp"
#include "torch_allocator.h"

namespace hbmalloc::torch_ext {
namespace {

constexpr size_t MiB = 1u << 20;

class SimDevices : public ::testing::Environment {
 public:
  void SetUp() override {
    setenv("HBMALLOC_CONF", "backend:sim,capacity:1GiB", 1);
    setenv("HBMALLOC_OOM_DUMP", oom_dir().c_str(), 1);
  }
  void TearDown() override { std::filesystem::remove_all(oom_dir()); }
  static std::string oom_dir() {
    return (std::filesystem::temp_directory_path() / ("hbm_torch_oom_" + std::to_string(getpid()))).string();
  }
};
const auto* const kSim = ::testing::AddGlobalTestEnvironment(new SimDevices);

cudaStream_t stream(uintptr_t id) { return reinterpret_cast<cudaStream_t>(id); }

TorchAllocator& torch_allocator() { return TorchAllocator::instance(); }

TEST(TorchAllocator, DeviceStatsMirrorHbmallocs) {
  TorchAllocator& t = torch_allocator();
  void* p = t.allocate_on(0, 3 * MiB, stream(0));
  void* q = t.allocate_on(0, 1000, stream(0));
  const Stats h = device_allocator(0).stats();
  const CCA::DeviceStats s = t.getDeviceStats(0);
  EXPECT_EQ(s.allocated_bytes[0].current, h.allocated_bytes.all.current);
  EXPECT_EQ(s.allocated_bytes[1].current, h.allocated_bytes.small_pool.current);
  EXPECT_EQ(s.allocated_bytes[2].current, h.allocated_bytes.large_pool.current);
  EXPECT_EQ(s.reserved_bytes[0].peak, h.reserved_bytes.all.peak);
  EXPECT_EQ(s.requested_bytes[0].current, h.requested_bytes.all.current);
  EXPECT_EQ(s.segment[0].current, h.segment.all.current);
  EXPECT_EQ(s.allocation[0].allocated, h.allocation.all.allocated);
  EXPECT_EQ(s.num_device_alloc, h.num_device_alloc);
  EXPECT_EQ(s.max_split_size, int64_t(SIZE_MAX));  // as PyTorch reports no limit
  t.raw_delete(p);
  t.raw_delete(q);
  EXPECT_EQ(t.getDeviceStats(0).allocation[0].current, 0);
}

TEST(TorchAllocator, ResetAccumulatedAndPeakStats) {
  TorchAllocator& t = torch_allocator();
  t.raw_delete(t.allocate_on(0, 8 * MiB, stream(0)));
  t.resetAccumulatedStats(0);
  CCA::DeviceStats s = t.getDeviceStats(0);
  EXPECT_EQ(s.allocation[0].allocated, 0);
  EXPECT_EQ(s.allocation[0].freed, 0);
  EXPECT_EQ(s.num_device_alloc, 0);
  void* p = t.allocate_on(0, 4 * MiB, stream(0));
  s = t.getDeviceStats(0);
  EXPECT_EQ(s.allocation[0].allocated, 1);
  EXPECT_EQ(s.allocated_bytes[2].allocated, int64_t(4 * MiB));
  t.raw_delete(p);
  t.resetPeakStats(0);
  s = t.getDeviceStats(0);
  EXPECT_EQ(s.allocated_bytes[0].peak, s.allocated_bytes[0].current);
}

TEST(TorchAllocator, SnapshotSegmentsAndBlocksMirrorTheLayout) {
  TorchAllocator& t = torch_allocator();
  void* p = t.allocate_on(0, 5 * MiB + 7, stream(3));
  const CCA::SnapshotInfo info = t.snapshot(c10::cuda::MempoolId_t{0, 0}, true);
  bool found = false;
  for (const auto& seg : info.segments) {
    for (size_t i = 0, addr = seg.address; i < seg.blocks.size(); addr += seg.blocks[i].size, ++i) {
      if (addr != reinterpret_cast<uintptr_t>(p)) continue;
      found = true;
      EXPECT_TRUE(seg.blocks[i].allocated);
      EXPECT_EQ(seg.blocks[i].requested_size, 5 * MiB + 7);
      EXPECT_TRUE(seg.is_large);
      EXPECT_TRUE(seg.is_expandable);  // the sim backend has VMM, so large blocks lie on page-mapped runs
      EXPECT_EQ(seg.device, 0);
      EXPECT_EQ(reinterpret_cast<uintptr_t>(seg.stream), 3u);
      EXPECT_GE(seg.allocated_size, 5 * MiB + 7);
    }
  }
  EXPECT_TRUE(found);
  EXPECT_GE(info.device_traces.size(), 1u);
  size_t base_size = 0;
  const auto base = reinterpret_cast<uintptr_t>(t.getBaseAllocation(static_cast<char*>(p) + 100, &base_size));
  EXPECT_LE(base, reinterpret_cast<uintptr_t>(p));  // the segment holding p, p's bytes in full
  EXPECT_GE(base + base_size, reinterpret_cast<uintptr_t>(p) + 5 * MiB + 7);
  t.raw_delete(p);
}

#if HBMT_TORCH_VERSION >= 210
// The page-mapped runs count as PyTorch's expandable segments: per stream and
// pool, the bytes mapped; gone again once empty_cache unmaps them. (The run
// is its arena's stream's: a stream may take another's settled free block,
// so the tests read the totals over every stream.)
struct MappedRuns {
  uint64_t small = 0, large = 0;
  std::set<uintptr_t> streams;
};
MappedRuns mapped_runs(TorchAllocator& t) {
  MappedRuns m;
  for (const auto& s : t.getExpandableSegmentSizes(0)) {
    (s.is_small_pool ? m.small : m.large) += s.total_size;
    m.streams.insert(reinterpret_cast<uintptr_t>(s.stream));
  }
  return m;
}

TEST(TorchAllocator, ExpandableSegmentSizesAreTheMappedRunsPerStream) {
  TorchAllocator& t = torch_allocator();
  t.emptyCache();
  const MappedRuns before = mapped_runs(t);
  void* p = t.allocate_on(0, 5 * MiB + 7, stream(5));
  const MappedRuns with = mapped_runs(t);
  EXPECT_EQ(with.large - before.large, 6 * MiB);  // three 2 MiB granules behind the 5 MiB block
  EXPECT_EQ(with.small, before.small);
  t.raw_delete(p);
  t.emptyCache();
  const MappedRuns after = mapped_runs(t);
  EXPECT_EQ(after.large, before.large) << "unmapped again";
  EXPECT_EQ(after.streams, before.streams);
}

// Blocks of up to 1 MiB are PyTorch's small pool: a slot and a mid-size block
// share the mid pool's page, one small-pool run, as in memory_stats.
TEST(TorchAllocator, SmallBlocksPagesAreASmallPoolExpandableSegment) {
  TorchAllocator& t = torch_allocator();
  t.emptyCache();
  const MappedRuns before = mapped_runs(t);
  const int64_t small_reserved = t.getDeviceStats(0).reserved_bytes[1].current;  // [1]: the small pool
  void* slot = t.allocate_on(0, 1000, stream(6));
  void* mid = t.allocate_on(0, 300 * 1024, stream(6));
  const MappedRuns with = mapped_runs(t);
  EXPECT_EQ(with.small - before.small, 2 * MiB);
  EXPECT_EQ(with.large, before.large);
  const CCA::DeviceStats st = t.getDeviceStats(0);
  EXPECT_EQ(st.reserved_bytes[1].current - small_reserved, int64_t(2 * MiB));
  EXPECT_GE(st.segment[1].current, 1);
  t.raw_delete(slot);
  t.raw_delete(mid);
  t.emptyCache();
}
#endif

TEST(TorchAllocator, HistoryRecordsAllocsFreesAndSegments) {
  TorchAllocator& t = torch_allocator();
  t.emptyCache();
  t.recordHistory(true, nullptr, 1000, CCA::RecordContext::STATE, true, {});
  EXPECT_TRUE(t.isHistoryEnabled());
  // Trackers stay attached for the process's life, as in PyTorch.
  static int tracked = 0;
  t.attachAllocatorTraceTracker([](const TraceEntry&) { ++tracked; });
  void* p = t.allocate_on(0, 6 * MiB, stream(0));
  t.raw_delete(p);
  t.emptyCache();
  const auto traces = t.snapshot(c10::cuda::MempoolId_t{0, 0}, true).device_traces;
  ASSERT_GE(traces.size(), 1u);
  std::string actions;
  for (const TraceEntry& e : traces[0]) {
    actions += std::to_string(int(e.action_)) + ",";
    if (e.action_ == TraceEntry::ALLOC || e.action_ == TraceEntry::FREE_REQUESTED ||
        e.action_ == TraceEntry::FREE_COMPLETED) {
      EXPECT_EQ(e.addr_, reinterpret_cast<uintptr_t>(p));
      EXPECT_EQ(e.size_, 6 * MiB);
    } else {  // the pages behind the block, mapped and unmapped
      EXPECT_EQ(e.size_, 6 * MiB) << int(e.action_);
    }
  }
  // The default policy maps pages, as PyTorch's expandable segments do:
  // segment_map, alloc, free_requested, free_completed, segment_unmap.
  const std::string want = std::to_string(int(TraceEntry::SEGMENT_MAP)) + "," + std::to_string(int(TraceEntry::ALLOC)) +
                           "," + std::to_string(int(TraceEntry::FREE_REQUESTED)) + "," +
                           std::to_string(int(TraceEntry::FREE_COMPLETED)) + "," +
                           std::to_string(int(TraceEntry::SEGMENT_UNMAP)) + ",";
  EXPECT_EQ(actions, want);
  EXPECT_GE(tracked, 5);
  t.recordHistory(false, nullptr, 0, CCA::RecordContext::NEVER, false, {});
  EXPECT_FALSE(t.isHistoryEnabled());
  EXPECT_TRUE(t.snapshot(c10::cuda::MempoolId_t{0, 0}, true).device_traces[0].empty());
}

// A block allocated before recording began is freed with its own size: the
// history learns what the allocator holds as it starts observing it.
TEST(TorchAllocator, HistoryKnowsBlocksHeldBeforeItStarted) {
  TorchAllocator& t = torch_allocator();
  void* p = t.allocate_on(0, 3 * MiB + 5, stream(0));
  t.recordHistory(true, nullptr, 1000, CCA::RecordContext::STATE, true, {});
  t.raw_delete(p);
  const auto traces = t.snapshot(c10::cuda::MempoolId_t{0, 0}, true).device_traces;
  ASSERT_GE(traces.size(), 1u);
  ASSERT_EQ(traces[0].size(), 2u);
  EXPECT_EQ(traces[0][0].action_, TraceEntry::FREE_REQUESTED);
  EXPECT_EQ(traces[0][1].action_, TraceEntry::FREE_COMPLETED);
  for (const TraceEntry& e : traces[0]) {
    EXPECT_EQ(e.addr_, reinterpret_cast<uintptr_t>(p));
    EXPECT_EQ(e.size_, 3 * MiB + 5);
  }
  t.recordHistory(false, nullptr, 0, CCA::RecordContext::NEVER, false, {});
}

// With stacks asked for, each live block of the snapshot carries its
// allocation's stack (context_when_allocated, as PyTorch's allocator gives
// it), and the process's recorder writes the stacks into its trace, named by
// torch::symbolize: here C++ frames, gathered as torch gathers them.
TEST(TorchAllocator, HistoryStacksReachTheSnapshotAndTheRecordersTrace) {
  TorchAllocator& t = torch_allocator();
  const std::string dir = SimDevices::oom_dir();
  std::filesystem::create_directories(dir);
  const std::string hbt = dir + "/stacks.hbt", jsonl = dir + "/stacks.jsonl";
  ASSERT_EQ(hbm_trace_start(hbt.c_str()), 0) << hbm_last_error();
  auto gather = []() -> std::shared_ptr<c10::GatheredContext> {
    return torch::CapturedTraceback::gather(/*python=*/false, /*script=*/false, /*cpp=*/true);
  };
  t.recordHistory(true, gather, 1000, CCA::RecordContext::ALLOC, true, {});
  void* p = t.allocate_on(0, 2 * MiB + 11, stream(0));
  void* q = t.allocate_on(0, 3 * MiB + 13, stream(0));

  const CCA::SnapshotInfo info = t.snapshot(c10::cuda::MempoolId_t{0, 0}, true);
  std::map<size_t, c10::GatheredContext*> allocated_by;  // by requested size, from the history's entries
  for (const TraceEntry& e : info.device_traces.at(0))
    if (e.action_ == TraceEntry::ALLOC) allocated_by[e.size_] = e.context_.get();
  ASSERT_NE(allocated_by[2 * MiB + 11], nullptr);
  ASSERT_NE(allocated_by[3 * MiB + 13], nullptr);
  int with_context = 0;
  for (const auto& seg : info.segments)
    for (const auto& b : seg.blocks) {
      if (!b.allocated || (b.requested_size != 2 * MiB + 11 && b.requested_size != 3 * MiB + 13)) continue;
      EXPECT_EQ(b.context_when_allocated.get(), allocated_by[b.requested_size]) << b.requested_size;
      ++with_context;
    }
  EXPECT_EQ(with_context, 2);

  t.raw_delete(p);
  t.raw_delete(q);
  t.recordHistory(false, nullptr, 0, CCA::RecordContext::NEVER, false, {});
  ASSERT_EQ(hbm_trace_stop(), 0) << hbm_last_error();
  const std::string cmd = std::string(HBMALLOC_CLI) + " convert " + hbt + " " + jsonl;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(jsonl);
  std::stringstream text;
  text << in.rdbuf();
  // Both allocs name a stack, and the stacks name this test's frames.
  int allocs_with_stacks = 0;
  std::string line;
  while (std::getline(text, line))
    if (line.find("\"alloc\"") != std::string::npos && line.find("\"stack\"") != std::string::npos) ++allocs_with_stacks;
  EXPECT_GE(allocs_with_stacks, 2) << text.str().substr(0, 4000);
  EXPECT_NE(text.str().find("HistoryStacksReachTheSnapshotAndTheRecordersTrace"), std::string::npos)
      << text.str().substr(0, 4000);
}

TEST(TorchAllocator, GraphPoolsRouteCaptureStreamAllocations) {
  TorchAllocator& t = torch_allocator();
  const c10::cuda::MempoolId_t pool{0, 77};
  t.beginAllocateToPool(0, pool, [](cudaStream_t s) { return s == stream(9); });
  void* in_pool = t.allocate_on(0, 2 * MiB, stream(9));
  void* outside = t.allocate_on(0, 2 * MiB, stream(8));
  t.endAllocateToPool(0, pool);
  EXPECT_EQ(t.getPoolUseCount(0, pool), 1);
  EXPECT_TRUE(t.checkPoolLiveAllocations(0, pool, {in_pool}));
  EXPECT_FALSE(t.checkPoolLiveAllocations(0, pool, {outside}));
  const CCA::SnapshotInfo only_pool = t.snapshot(pool, false);
  ASSERT_EQ(only_pool.segments.size(), 1u);
  EXPECT_EQ(only_pool.segments[0].address, reinterpret_cast<uintptr_t>(in_pool));
  EXPECT_EQ(only_pool.segments[0].owner_private_pool_id, pool);
  t.raw_delete(in_pool);
  t.raw_delete(outside);
  t.releasePool(0, pool);
  EXPECT_EQ(t.getPoolUseCount(0, pool), 0);
  EXPECT_TRUE(t.snapshot(pool, false).segments.empty());
  EXPECT_THROW(t.releasePool(0, pool), c10::Error);
}

// CUDA graph trees: the pool checkpointed after one recording and restored
// before the next branch, as torch.compile's reduce-overhead mode does.
TEST(TorchAllocator, GraphTreesCheckpointAndRestoreAPrivatePool) {
  TorchAllocator& t = torch_allocator();
  const c10::cuda::MempoolId_t pool{0, 78};
  const auto capture = [](cudaStream_t s) { return s == stream(9); };
  t.beginAllocateToPool(0, pool, capture);
  void* kept = t.allocate_on(0, 3 * MiB, stream(9));
  void* small = t.allocate_on(0, 4000, stream(9));
  void* dies = t.allocate_on(0, 5 * MiB, stream(9));
  t.endAllocateToPool(0, pool);
  t.raw_delete(dies);
  const std::shared_ptr<CCA::AllocatorState> state = t.getCheckpointState(0, pool);
  // The next branch: a tensor of the checkpoint dies, new ones are made.
  t.raw_delete(small);
  t.beginAllocateToPool(0, pool, capture);
  void* later = t.allocate_on(0, 7 * MiB, stream(9));
  t.endAllocateToPool(0, pool);
  CCA::CheckpointDelta delta = t.setCheckpointPoolState(0, state);
  std::set<void*> freed(delta.ptrs_freed.begin(), delta.ptrs_freed.end()), made;
  for (const c10::DataPtr& p : delta.dataptrs_allocd) made.insert(p.get());
  EXPECT_EQ(freed, (std::set<void*>{kept, later}));
  EXPECT_EQ(made, (std::set<void*>{kept, small}));
  EXPECT_TRUE(t.checkPoolLiveAllocations(0, pool, {kept, small}));
  delta.dataptrs_allocd.clear();  // their deleters free the blocks
  EXPECT_TRUE(t.checkPoolLiveAllocations(0, pool, {}));
  EXPECT_THROW(t.setCheckpointPoolState(1, state), c10::Error) << "another device's state";
  t.releasePool(0, pool);
}

// CUDA tensors between processes need the cuda backend (tests/gpu/ipc_gpu_test.cc
// shares blocks across processes there); here each refusal names why.
TEST(TorchAllocator, IpcRefusalsNameWhy) {
  TorchAllocator& t = torch_allocator();
  void* p = t.allocate_on(0, 3 * MiB, stream(0));
  size_t size = 0;
  EXPECT_EQ(t.getBaseAllocation(static_cast<char*>(p) + 10, &size), p) << "the block itself is what is shared";
  EXPECT_GE(size, 3 * MiB);
  try {
    t.shareIpcHandle(p);
    ADD_FAILURE() << "the sim backend shared a block";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot share memory with other processes"), std::string::npos) << e.what();
  }
  try {
    t.getIpcDevPtr("not a handle at all");
    ADD_FAILURE() << "junk opened";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("not an hbmalloc IPC handle"), std::string::npos) << e.what();
  }
  t.raw_delete(p);
}

TEST(TorchAllocator, OutOfMemoryCallsObserversAndRaisesWithHbmallocsFigures) {
  TorchAllocator& t = torch_allocator();
  static int64_t observed_device = -1;  // observers stay attached, as in PyTorch
  t.attachOutOfMemoryObserver([](int64_t device, size_t, size_t, size_t) { observed_device = device; });
  void* keep = t.allocate_on(0, 100 * MiB, stream(0));
  try {
    t.allocate_on(0, size_t(2) << 30, stream(0));
    FAIL() << "2 GiB fit a 1 GiB device";
  } catch (const c10::OutOfMemoryError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("CUDA out of memory (hbmalloc)"), std::string::npos) << what;
    EXPECT_NE(what.find("largest free block"), std::string::npos) << what;
    EXPECT_NE(what.find("External fragmentation"), std::string::npos) << what;
    // HBMALLOC_OOM_DUMP applies: the text names the dump's files.
    EXPECT_NE(what.find("OOM dump: trace " + SimDevices::oom_dir()), std::string::npos) << what;
  }
  std::filesystem::remove_all(SimDevices::oom_dir());
  EXPECT_EQ(observed_device, 0);
  void* after = t.allocate_on(0, 100 * MiB, stream(0));  // still usable
  EXPECT_NE(after, nullptr);
  EXPECT_EQ(t.getDeviceStats(0).num_ooms, 1);
  t.raw_delete(after);
  t.raw_delete(keep);
}

TEST(TorchAllocator, MemoryFractionAndBadFreesAreNamed) {
  TorchAllocator& t = torch_allocator();
  t.setMemoryFraction(0.5, 0);
  EXPECT_DOUBLE_EQ(t.getMemoryFraction(0), 0.5);
  static size_t refused = 0;  // observers stay attached, as in PyTorch
  t.attachOomRejectionObserver([](int64_t, size_t request, size_t, size_t) { refused = request; });
  EXPECT_THROW(t.allocate_on(0, 600 * MiB, stream(0)), c10::OutOfMemoryError);
  EXPECT_EQ(refused, 600 * MiB);  // the limit, not the device, said no
  t.setMemoryFraction(1.0, 0);
  EXPECT_THROW(t.setMemoryFraction(1.5, 0), c10::Error);
  int local = 0;
  EXPECT_THROW(t.raw_delete(&local), c10::Error);
  void* p = t.allocate_on(0, 1 * MiB, stream(0));
  t.raw_delete(p);
  EXPECT_THROW(t.raw_delete(p), c10::Error);  // double free
  EXPECT_EQ(t.name(), "hbmalloc");
  EXPECT_TRUE(t.isEnabled());
}

}  // namespace
}  // namespace hbmalloc::torch_ext
