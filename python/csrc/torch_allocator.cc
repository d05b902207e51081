// hbmalloc as PyTorch's CUDA allocator: c10::cuda::CUDACachingAllocator::
// CUDAAllocator implemented on the process's hbmalloc Allocators (the same ones
// the C ABI serves), so torch.cuda's memory statistics, snapshots, history,
// record_stream, CUDA graph pools, cudnn's cacheInfo and OOM observers all
// work. Built against the installed torch; HBMT_TORCH_VERSION (major * 100 +
// minor) guards the interface differences between torch 2.4 and the newest.
#include "torch_allocator.h"

#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <string>

#include "hbmalloc/error.hpp"
#include "hbmalloc/registry.hpp"
#include "hbmalloc/stacks.hpp"
#include "stack_namer.h"

namespace hbmalloc::torch_ext {

namespace {

StreamId to_id(cudaStream_t s) { return reinterpret_cast<StreamId>(s); }
PoolId to_pool(c10::cuda::MempoolId_t id) { return PoolId{id.first, id.second}; }

// Stat and StatArray moved namespaces after torch 2.4; the fields did not.
// Accumulated totals count from the last resetAccumulatedStats: hbmalloc keeps
// current == allocated - freed, so the reset is an offset (`base`) applied here.
template <typename StatT>
void fill(StatT& to, const StatCounter& from, const StatCounter& base) {
  to.current = from.current;
  to.peak = from.peak;
  to.allocated = from.allocated - base.allocated;
  to.freed = from.freed - base.freed;
}
template <typename StatArrayT>
void fill(StatArrayT& to, const StatArray& from, const StatArray& base) {
  fill(to[0], from.all, base.all);
  fill(to[1], from.small_pool, base.small_pool);
  fill(to[2], from.large_pool, base.large_pool);
}

[[noreturn]] void fail(const std::exception& e) { TORCH_CHECK(false, "hbmalloc: ", e.what()); }

}  // namespace

// ---- allocation ------------------------------------------------------------

HbmAllocator& TorchAllocator::device(c10::DeviceIndex d) {
  HbmAllocator& a = device_allocator(d);
  // A read first: the hot path stays free of atomic read-modify-writes.
  const uint64_t bit = uint64_t(1) << d;
  if (!(used_devices_.load(std::memory_order_relaxed) & bit)) [[unlikely]] {
    used_devices_.fetch_or(bit, std::memory_order_relaxed);
    watch(a);
  }
  return a;
}

void TorchAllocator::watch(HbmAllocator& a) {
  if (history_->active())
    a.add_observer(history_);
  else
    a.remove_observer(history_.get());
}

void TorchAllocator::history_changed() {
  for (int d = 0; d < kMaxDevices; ++d)
    if (HbmAllocator* a = existing_allocator(d)) watch(*a);
}

void* TorchAllocator::allocate_on(c10::DeviceIndex d, size_t size, cudaStream_t stream) {
  if (size == 0) return nullptr;
  Context context = history_->active() ? history_->alloc_context() : nullptr;
  HbmAllocator* a = nullptr;
  try {
    a = &device(d);
    if (!history_->active()) [[likely]]
      return a->malloc(size, to_id(stream));
    History::Scope scope(context);  // the entries the observed malloc makes carry its stack
    const StackToken token = context;  // and so does the recorder's trace (HBMALLOC_TRACE, the OOM dump)
    StackScope stack(token);
    void* ptr = a->malloc(size, to_id(stream));
    // The recorder keeps stacks as PyTorch gathered them; they are named in
    // batches, here where no hbmalloc lock is held, as at snapshot time.
    if (context != nullptr && stacks_taken_.fetch_add(1, std::memory_order_relaxed) % kNameStacksEvery == 0)
      name_stacks();
    return ptr;
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kOutOfMemory && a != nullptr) out_of_memory(d, *a, size, stream, e);
    fail(e);
  } catch (const std::exception& e) {
    fail(e);
  }
}

[[noreturn]] void TorchAllocator::out_of_memory(c10::DeviceIndex d, HbmAllocator& a, size_t size, cudaStream_t stream,
                                                const Error& e) {
  // What the device says it has; 0 when it cannot say (the sim backend).
  size_t device_free = 0, device_total = 0;
  try {
    c10::cuda::CUDAGuard guard(d);
    if (cudaMemGetInfo(&device_free, &device_total) != cudaSuccess) (void)cudaGetLastError();
  } catch (const c10::Error&) {
    (void)cudaGetLastError();
  }
  const Stats s = a.stats();
  if (history_->active()) history_->record(d, TraceEntry::OOM, device_free, size, stream, nullptr);
  std::vector<CCA::OutOfMemoryObserver> observers;
  std::vector<LimitObserver> limit_observers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    observers = oom_observers_;
    limit_observers = limit_observers_;
  }
  const auto allocated = size_t(s.allocated_bytes.all.current);
  // Refused by the memory fraction, not by the device: the request would pass the limit.
  if (s.memory_limit > 0 && uint64_t(s.reserved_bytes.all.current) + size > uint64_t(s.memory_limit))
    for (const auto& observer : limit_observers) observer(d, size, allocated, device_total);
  for (const auto& observer : observers) observer(d, allocated, device_total, device_free);
  char frag[160];
  std::snprintf(frag, sizeof frag, " External fragmentation %.1f%% (largest free block %s of %s cached free).",
                100.0 * s.external_fragmentation, format_bytes(uint64_t(s.largest_free_block)).c_str(),
                format_bytes(uint64_t(std::max<int64_t>(0, s.reserved_bytes.all.current - s.allocated_bytes.all.current)))
                    .c_str());
  TORCH_CHECK_WITH(OutOfMemoryError, false, "CUDA out of memory (hbmalloc). Tried to allocate ", format_bytes(size),
                   ". GPU ", int(d), " has a total capacity of ", format_bytes(device_total), " of which ",
                   format_bytes(device_free), " is free. ", e.what(), ".", frag,
                   " Replay the dump with `hbmalloc replay` to try other capacities and policies"
                   " (HBMALLOC_OOM_DUMP=dir writes one).");
}

void TorchAllocator::free(void* ptr) {
  if (ptr == nullptr) return;
  Context context = history_->active() ? history_->free_context() : nullptr;
  try {
    // Most processes use one device: its allocator owns every pointer, and
    // the free itself says when it does not. Otherwise the registry answers.
    const uint64_t used = used_devices_.load(std::memory_order_relaxed);
    const int d = used != 0 && (used & (used - 1)) == 0 ? __builtin_ctzll(used) : device_owning(ptr);
    HbmAllocator* a = d < 0 ? nullptr : existing_allocator(d);
    if (a == nullptr) throw Error(ErrorCode::kUnknownPointer, "free of a pointer no hbmalloc device handed out");
    if (shared_count_.load(std::memory_order_relaxed) != 0) [[unlikely]]
      unshare(ptr);  // its descriptors close: no other process opens it after this
    if (!history_->active()) [[likely]] {
      a->free(ptr);
      return;
    }
    History::Scope scope(context);
    a->free(ptr);
  } catch (const std::exception& e) {
    fail(e);
  }
}

// A DataPtr's deleter runs in destructors, where an exception would end the
// process: a bad free is told on stderr (hbmalloc changed nothing).
void TorchAllocator::delete_block(void* ptr) {
  try {
    instance().free(ptr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
  }
}

c10::DataPtr TorchAllocator::allocate(size_t size) {
  const c10::DeviceIndex d = c10::cuda::current_device();
  void* ptr = allocate_on(d, size, c10::cuda::getCurrentCUDAStream(d).stream());
  return {ptr, ptr, &delete_block, c10::Device(c10::DeviceType::CUDA, d)};
}

c10::DeleterFnPtr TorchAllocator::raw_deleter() const { return &delete_block; }

void TorchAllocator::copy_data(void* dest, const void* src, std::size_t count) const {
  C10_CUDA_CHECK(cudaMemcpy(dest, src, count, cudaMemcpyDeviceToDevice));
}

void* TorchAllocator::raw_alloc(size_t nbytes) {
  const c10::DeviceIndex d = c10::cuda::current_device();
  return allocate_on(d, nbytes, c10::cuda::getCurrentCUDAStream(d).stream());
}

void* TorchAllocator::raw_alloc_with_stream(size_t nbytes, cudaStream_t stream) {
  return allocate_on(c10::cuda::current_device(), nbytes, stream);
}

void TorchAllocator::raw_delete(void* ptr) { free(ptr); }

// ---- lifetime and settings ---------------------------------------------------

void TorchAllocator::init(int device_count) {
  device_count_ = device_count;
  initialized_.store(true);
}

bool TorchAllocator::initialized() { return initialized_.load(); }

void TorchAllocator::setMemoryFraction(double fraction, c10::DeviceIndex d) {
  try {
    device(d).set_memory_fraction(fraction);
    std::lock_guard<std::mutex> lock(mu_);
    fractions_[d] = fraction;
  } catch (const std::exception& e) {
    fail(e);
  }
}

double TorchAllocator::getMemoryFraction(c10::DeviceIndex d) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = fractions_.find(d);
  if (it != fractions_.end()) return it->second;
  HbmAllocator* a = existing_allocator(d);
  return a != nullptr ? a->config().memory_fraction : 1.0;
}

void TorchAllocator::enable(bool value) { enabled_ = value; }
bool TorchAllocator::isEnabled() const { return enabled_; }

void TorchAllocator::emptyCache() {
  try {
    for (int d = 0; d < kMaxDevices; ++d)
      if (HbmAllocator* a = existing_allocator(d)) a->empty_cache();
  } catch (const std::exception& e) {
    fail(e);
  }
}

// Private pools keep what a live graph addresses; empty_cache gives back what
// the default pool and released pools cache.
void TorchAllocator::emptyCache(c10::cuda::MempoolId_t) { emptyCache(); }

void TorchAllocator::cacheInfo(c10::DeviceIndex d, size_t* largest_block) {
  // cudnn sizes its benchmark workspaces by this: the largest block that an
  // allocation could get now, from the cache or from the device.
  size_t device_free = 0, device_total = 0;
  {
    c10::cuda::CUDAGuard guard(d);
    C10_CUDA_CHECK(cudaMemGetInfo(&device_free, &device_total));
  }
  HbmAllocator* a = existing_allocator(d);
  const size_t cached = a != nullptr ? size_t(a->stats().largest_free_block) : 0;
  *largest_block = std::max(device_free, cached);
}

// The block holding ptr, not its segment: PyTorch shares what this returns
// (shareIpcHandle) and hbmalloc shares a block's own memory, whatever the
// segment (a page-mapped one may span gigabytes of granules).
void* TorchAllocator::getBaseAllocation(void* ptr, size_t* size) {
  const uint64_t addr = reinterpret_cast<uintptr_t>(ptr);
  for (int d = 0; d < kMaxDevices; ++d) {
    HbmAllocator* a = existing_allocator(d);
    if (a == nullptr) continue;
    for (const SegmentLayout& seg : a->layout()) {
      if (addr < seg.addr || addr >= seg.addr + seg.size) continue;
      for (const BlockLayout& b : seg.blocks)
        if (b.allocated && addr >= b.addr && addr < b.addr + b.size) {
          if (size != nullptr) *size = b.size;
          return reinterpret_cast<void*>(b.addr);
        }
    }
  }
  TORCH_CHECK(false, "hbmalloc: getBaseAllocation of a pointer no hbmalloc device handed out");
}

void TorchAllocator::recordStream(const c10::DataPtr& ptr, c10::cuda::CUDAStream stream) {
  // As PyTorch's allocator does, memory it did not hand out is left alone.
  if (ptr.get() == nullptr || ptr.get_deleter() != &delete_block) return;
  try {
    device(ptr.device().index()).record_stream(ptr.get(), to_id(stream.stream()));
  } catch (const std::exception& e) {
    fail(e);
  }
}

// ---- statistics ----------------------------------------------------------------

CCA::DeviceStats TorchAllocator::getDeviceStats(c10::DeviceIndex d) {
  CCA::DeviceStats out;
  HbmAllocator* a = existing_allocator(d);
  if (a == nullptr) return out;
  const Stats s = a->stats();
  Stats base;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = accumulated_base_.find(d);
    if (it != accumulated_base_.end()) base = it->second;
  }
  fill(out.allocation, s.allocation, base.allocation);
  fill(out.segment, s.segment, base.segment);
  fill(out.active, s.active, base.active);
  fill(out.inactive_split, s.inactive_split, base.inactive_split);
  fill(out.allocated_bytes, s.allocated_bytes, base.allocated_bytes);
  fill(out.reserved_bytes, s.reserved_bytes, base.reserved_bytes);
  fill(out.active_bytes, s.active_bytes, base.active_bytes);
  fill(out.inactive_split_bytes, s.inactive_split_bytes, base.inactive_split_bytes);
  fill(out.requested_bytes, s.requested_bytes, base.requested_bytes);
  out.num_alloc_retries = s.num_alloc_retries - base.num_alloc_retries;
  out.num_ooms = s.num_ooms - base.num_ooms;
  out.num_sync_all_streams = s.num_sync_all_streams - base.num_sync_all_streams;
  out.num_device_alloc = s.num_device_alloc - base.num_device_alloc;
  out.num_device_free = s.num_device_free - base.num_device_free;
  // hbmalloc splits any block: as PyTorch reports an unset max_split_size.
  out.max_split_size = int64_t(SIZE_MAX);
  return out;
}

void TorchAllocator::resetAccumulatedStats(c10::DeviceIndex d) {
  HbmAllocator* a = existing_allocator(d);
  if (a == nullptr) return;
  Stats now = a->stats();
  std::lock_guard<std::mutex> lock(mu_);
  accumulated_base_[d] = now;
}

void TorchAllocator::resetPeakStats(c10::DeviceIndex d) {
  if (HbmAllocator* a = existing_allocator(d)) a->reset_peak_stats();
}

// ---- snapshots and history ---------------------------------------------------

CCA::SnapshotInfo TorchAllocator::snapshot() { return snapshot(c10::cuda::MempoolId_t{0, 0}, true); }
#if HBMT_TORCH_VERSION >= 210
// PyTorch gives the mapped bytes of each expandable segment with its stream;
// hbmalloc's are the page-mapped (VMM) runs, summed per stream and pool.
std::vector<CCA::StreamSegmentSize> TorchAllocator::getExpandableSegmentSizes(c10::DeviceIndex d) {
  std::vector<CCA::StreamSegmentSize> sizes;
  HbmAllocator* a = existing_allocator(d);
  if (a == nullptr) return sizes;
  for (const SegmentLayout& seg : a->layout()) {
    if (!seg.expandable()) continue;
    auto stream = reinterpret_cast<cudaStream_t>(seg.stream);
    const bool small = seg.pool == Pool::kSmall;
    auto same = [&](const CCA::StreamSegmentSize& s) { return s.stream == stream && s.is_small_pool == small; };
    if (auto it = std::find_if(sizes.begin(), sizes.end(), same); it != sizes.end()) it->total_size += seg.size;
    else sizes.emplace_back(stream, small, seg.size);
  }
  return sizes;
}
#endif

CCA::SnapshotInfo TorchAllocator::snapshot(c10::cuda::MempoolId_t pool) { return snapshot(pool, true); }

CCA::SnapshotInfo TorchAllocator::snapshot(c10::cuda::MempoolId_t pool, bool include_traces) {
  name_stacks();  // the recorder's waiting stacks, while the caller (Python, holding the GIL) may name them
  CCA::SnapshotInfo info{};  // value-initialized: the config figures hbmalloc leaves alone read 0
  int devices = device_count_;
  for (int d = 0; d < kMaxDevices; ++d) {
    HbmAllocator* a = existing_allocator(d);
    if (a == nullptr) continue;
    devices = std::max(devices, d + 1);
    for (const SegmentLayout& seg : a->layout()) {
      if (pool != c10::cuda::MempoolId_t{0, 0} && to_pool(pool) != seg.private_pool) continue;
      auto& s = info.segments.emplace_back();
      s.device = static_cast<c10::DeviceIndex>(d);
      s.address = seg.addr;
      s.total_size = seg.size;
      s.stream = reinterpret_cast<decltype(s.stream)>(seg.stream);
      s.is_large = seg.pool == Pool::kLarge;
      s.is_expandable = seg.expandable();  // a page-mapped (VMM) run, as PyTorch marks its expandable segments
      s.owner_private_pool_id = {seg.private_pool.first, seg.private_pool.second};
      for (const BlockLayout& b : seg.blocks) {
        auto& block = s.blocks.emplace_back();
        block.size = b.size;
        block.requested_size = b.requested;
        block.allocated = b.allocated;
        block.active = b.allocated;
        if (b.allocated && history_->recording()) block.context_when_allocated = history_->allocated_by(d, b.addr);
        if (b.allocated) {
          s.requested_size += b.requested;
          s.allocated_size += b.size;
          s.active_size += b.size;
        }
      }
    }
  }
  if (include_traces) info.device_traces = history_->entries(devices);
  else info.device_traces.resize(size_t(devices));
  if constexpr (requires { info.config_metadata.last_allocator_settings; }) {
    info.config_metadata.last_allocator_settings = "hbmalloc " + Config::from_env().to_string();
    info.config_metadata.max_split_size = SIZE_MAX;
  }
  return info;
}

bool TorchAllocator::isHistoryEnabled() { return history_->recording(); }

void TorchAllocator::recordHistory(bool enabled, CCA::CreateContextFn gather, size_t max_entries,
                                   CCA::RecordContext when) {
  recordHistory(enabled, gather, max_entries, when, false);
}

void TorchAllocator::recordHistory(bool enabled, CCA::CreateContextFn gather, size_t max_entries,
                                   CCA::RecordContext when, bool clear) {
  history_->configure(enabled, gather, max_entries, when, clear);
  history_changed();
  // The process's recorder keeps the stacks the history gathers.
  const bool stacks = enabled && gather != nullptr && when != CCA::RecordContext::NEVER;
  set_stack_namer(stacks ? torch_stack_namer() : nullptr);
}

void TorchAllocator::recordHistory(bool enabled, CCA::CreateContextFn gather, size_t max_entries,
                                   CCA::RecordContext when, bool clear, const std::vector<std::string>&) {
  recordHistory(enabled, gather, max_entries, when, clear);
}

void TorchAllocator::attachOutOfMemoryObserver(CCA::OutOfMemoryObserver observer) {
  std::lock_guard<std::mutex> lock(mu_);
  oom_observers_.push_back(std::move(observer));
}

void TorchAllocator::attachOomRejectionObserver(LimitObserver observer) {
  std::lock_guard<std::mutex> lock(mu_);
  limit_observers_.push_back(std::move(observer));
}

void TorchAllocator::attachAllocatorTraceTracker(CCA::AllocatorTraceTracker tracker) {
  history_->add_tracker(std::move(tracker));
  history_changed();
}

// ---- CUDA graph private pools -------------------------------------------------

void TorchAllocator::beginAllocateToPool(c10::DeviceIndex d, c10::cuda::MempoolId_t pool,
                                         std::function<bool(cudaStream_t)> filter) {
  try {
    device(d).begin_allocate_to_pool(
        to_pool(pool), [filter = std::move(filter)](StreamId s) { return filter(reinterpret_cast<cudaStream_t>(s)); });
  } catch (const std::exception& e) {
    fail(e);
  }
}

void TorchAllocator::endAllocateToPool(c10::DeviceIndex d, c10::cuda::MempoolId_t pool) {
  try {
    device(d).end_allocate_to_pool(to_pool(pool));
  } catch (const std::exception& e) {
    fail(e);
  }
}

void TorchAllocator::releasePool(c10::DeviceIndex d, c10::cuda::MempoolId_t pool) {
  try {
    device(d).release_pool(to_pool(pool));
  } catch (const std::exception& e) {
    fail(e);
  }
}

int TorchAllocator::getPoolUseCount(c10::DeviceIndex d, c10::cuda::MempoolId_t pool) {
  HbmAllocator* a = existing_allocator(d);
  return a != nullptr ? a->pool_use_count(to_pool(pool)) : 0;
}

void TorchAllocator::createOrIncrefPool(c10::DeviceIndex d, c10::cuda::MempoolId_t pool,
                                        std::shared_ptr<CCA::CUDAAllocator> allocator) {
  TORCH_CHECK(allocator == nullptr,
              "hbmalloc: a MemPool with an allocator of its own is not supported; use one without");
  try {
    device(d).create_pool(to_pool(pool));
  } catch (const std::exception& e) {
    fail(e);
  }
}

bool TorchAllocator::checkPoolLiveAllocations(c10::DeviceIndex d, c10::cuda::MempoolId_t pool,
                                              const std::unordered_set<void*>& expected) {
  HbmAllocator* a = existing_allocator(d);
  if (a == nullptr) return expected.empty();
  size_t live = 0;
  for (const SegmentLayout& seg : a->layout()) {
    if (seg.private_pool != to_pool(pool)) continue;
    for (const BlockLayout& b : seg.blocks) {
      if (!b.allocated) continue;
      if (!expected.contains(reinterpret_cast<void*>(b.addr))) return false;
      ++live;
    }
  }
  return live == expected.size();
}

// ---- what hbmalloc does not do (each says so by name) ---------------------------

// ---- CUDA tensors between processes (torch.multiprocessing) ----------------------

// The block's handle (hbmalloc/ipc.hpp). Its descriptors stay open here
// until the block is freed, so that the other process can take them.
std::string TorchAllocator::share_block(void* ptr) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = shared_.find(ptr); it != shared_.end()) return ipc_handle_bytes(it->second);
  const int d = device_owning(ptr);
  HbmAllocator* a = d < 0 ? nullptr : existing_allocator(d);
  if (a == nullptr) throw Error(ErrorCode::kUnknownPointer, "shareIpcHandle of a pointer no hbmalloc device handed out");
  IpcBlock block = a->share(ptr);
  std::string handle = ipc_handle_bytes(block);
  shared_.emplace(ptr, std::move(block));
  shared_count_.store(shared_.size(), std::memory_order_relaxed);
  return handle;
}

void TorchAllocator::unshare(void* ptr) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = shared_.find(ptr);
  if (it == shared_.end()) return;
  for (const IpcPiece& p : it->second.pieces) ::close(p.fd);
  shared_.erase(it);
  shared_count_.store(shared_.size(), std::memory_order_relaxed);
}

#if HBMT_TORCH_VERSION >= 205
// getBaseAllocation gave the block itself: no offset beyond it.
CCA::ShareableHandle TorchAllocator::shareIpcHandle(void* ptr) {
  try {
    return CCA::ShareableHandle{0, share_block(ptr)};
  } catch (const std::exception& e) {
    fail(e);
  }
}
#endif

// The block on the current device, opened once per handle while any tensor
// holds it (CUDA opens a segment's handle once per process), closed after.
std::shared_ptr<void> TorchAllocator::getIpcDevPtr(std::string handle) {
  try {
    std::lock_guard<std::mutex> lock(mu_);
    if (auto it = opened_.find(handle); it != opened_.end())
      if (std::shared_ptr<void> open = it->second.lock()) return open;
    IpcBlock block = ipc_block_from_handle(handle);  // first: junk is told as junk
    c10::DeviceIndex d = 0;
    void* ptr = nullptr;
    try {
      d = c10::cuda::current_device();
      ptr = device(d).open_shared(block);
    } catch (...) {
      for (const IpcPiece& p : block.pieces) ::close(p.fd);
      throw;
    }
    for (const IpcPiece& p : block.pieces) ::close(p.fd);  // the mapping keeps the memory
    std::shared_ptr<void> open(ptr, [d](void* p) {
      if (HbmAllocator* a = existing_allocator(d)) {
        try {
          a->close_shared(p);
        } catch (const std::exception& e) {
          std::fprintf(stderr, "hbmalloc: closing a block of another process: %s\n", e.what());
        }
      }
    });
    std::erase_if(opened_, [](const auto& kv) { return kv.second.expired(); });
    opened_[handle] = open;
    return open;
  } catch (const std::exception& e) {
    fail(e);
  }
}

// ---- CUDA graph trees: a private pool's state, kept and given back ----------------

namespace {
// What getCheckpointState hands PyTorch, which keeps it opaque until setCheckpointPoolState.
struct PoolState final : CCA::AllocatorState {
  c10::DeviceIndex device = 0;
  PoolCheckpoint checkpoint;
};
}  // namespace

std::shared_ptr<CCA::AllocatorState> TorchAllocator::getCheckpointState(c10::DeviceIndex d, c10::cuda::MempoolId_t id) {
  try {
    auto state = std::make_shared<PoolState>();
    state->device = d;
    state->checkpoint = device(d).checkpoint_pool(to_pool(id));
    return state;
  } catch (const std::exception& e) {
    fail(e);
  }
}

// The pool's live blocks now are freed (PyTorch drops their storages), and
// the checkpoint's live again, each as a DataPtr with this allocator's
// deleter, as PyTorch's own allocator gives them.
CCA::CheckpointDelta TorchAllocator::setCheckpointPoolState(c10::DeviceIndex d, std::shared_ptr<CCA::AllocatorState> pps) {
  const auto* state = dynamic_cast<const PoolState*>(pps.get());
  TORCH_CHECK(state != nullptr, "hbmalloc: setCheckpointPoolState: a state its own getCheckpointState did not give");
  TORCH_CHECK(state->device == d, "hbmalloc: setCheckpointPoolState: a state of device ", int(state->device),
              " given for device ", int(d));
  try {
    PoolRestore restored = device(d).restore_pool(state->checkpoint);
    CCA::CheckpointDelta delta;
    delta.ptrs_freed = std::move(restored.freed);
    for (const BlockLayout& b : restored.allocated) {
      void* p = reinterpret_cast<void*>(b.addr);
      delta.dataptrs_allocd.emplace_back(p, p, &delete_block, c10::Device(c10::DeviceType::CUDA, d));
    }
    return delta;
  } catch (const std::exception& e) {
    fail(e);
  }
}

// ---- peers and copies ------------------------------------------------------------

// `dev` may reach the memory of `dev_to_access`. Runtime peer access alone
// does not reach page-mapped memory (hbmalloc's default, as PyTorch's
// expandable segments): the owning allocator grants `dev` on every mapping,
// now and later, and enables runtime peer access for plain segments.
void TorchAllocator::enablePeerAccess(c10::DeviceIndex dev, c10::DeviceIndex dev_to_access) {
  try {
    device(dev_to_access).enable_peer_access(dev);
  } catch (const std::exception& e) {
    fail(e);
  }
}

cudaError_t TorchAllocator::memcpyAsync(void* dst, int dst_device, const void* src, int src_device, size_t count,
                                        cudaStream_t stream, bool p2p_enabled) {
  // With peer access on (enablePeerAccess: the owning allocator granted the
  // other device on its mappings and plain segments), a plain copy works
  // across devices; otherwise the runtime stages it.
  if (p2p_enabled || dst_device == src_device)
    return cudaMemcpyAsync(dst, src, count, cudaMemcpyDeviceToDevice, stream);
  return cudaMemcpyPeerAsync(dst, dst_device, src, src_device, count, stream);
}

std::string TorchAllocator::name() { return "hbmalloc"; }

TorchAllocator& TorchAllocator::instance() {
  // Never destroyed: PyTorch frees tensors during interpreter shutdown.
  static TorchAllocator* a = new TorchAllocator();
  return *a;
}

}  // namespace hbmalloc::torch_ext
