// The C ABI: per-device allocators created on first use, every exception
// caught and turned into hbm_last_error(); one recorder shared by all devices
// when HBMALLOC_TRACE / HBMALLOC_OOM_DUMP ask for it or hbm_trace_start runs.
#include "hbmalloc/hbmalloc.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "core/memory_summary.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/recorder.hpp"
#include "hbmalloc/registry.hpp"
#include "record/live_snapshot.h"
#include "record/snapshot_writer.h"
#include "record/write_file.h"

namespace hbmalloc {
namespace {

thread_local std::string last_error;

// Deliberately never destroyed: PyTorch frees tensors during interpreter
// shutdown, after static destructors would have run.
struct Registry {
  std::mutex mu;
  std::optional<Config> config;
  std::atomic<Allocator*> devices[kMaxDevices] = {};
  std::unique_ptr<Allocator> owned[kMaxDevices];
  // Attached to every allocator, present and future, while set.
  std::shared_ptr<Recorder> recorder;
  std::shared_ptr<StackNamer> namer;  // given to each recorder made
  bool env_read = false;  // HBMALLOC_TRACE / HBMALLOC_OOM_DUMP looked at
};
Registry& registry() {
  static Registry* r = new Registry();
  return *r;
}

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr ? value : "";
}

// The Registry is never destroyed, so the trace file is completed here; frees
// after this (interpreter shutdown) are no longer written.
void finish_trace_at_exit() {
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (r.recorder == nullptr) return;
  try {
    r.recorder->stop_file();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hbmalloc: %s\n", e.what());
  }
}

void finish_trace_at_exit_once() {
  static std::once_flag once;
  std::call_once(once, [] { std::atexit(finish_trace_at_exit); });
}

// Under r.mu, before the first allocator: the recorder the environment asks for.
void read_env(Registry& r) {
  if (r.env_read) return;
  RecorderOptions options;
  options.path = env("HBMALLOC_TRACE");
  options.oom_dump_dir = env("HBMALLOC_OOM_DUMP");
  if (std::string events = env("HBMALLOC_OOM_DUMP_EVENTS"); !events.empty()) {
    auto [end, ec] = std::from_chars(events.data(), events.data() + events.size(), options.oom_dump_events);
    if (ec != std::errc() || end != events.data() + events.size() || options.oom_dump_events < 2)
      throw Error(ErrorCode::kConfig, "HBMALLOC_OOM_DUMP_EVENTS: bad value '" + events + "' (a count of at least 2)");
  }
  if (!options.path.empty() || !options.oom_dump_dir.empty()) {
    try {
      r.recorder = std::make_shared<Recorder>(options);
      r.recorder->set_stack_namer(r.namer);
    } catch (const Error& e) {
      throw Error(e.code(), std::string("HBMALLOC_TRACE: ") + e.what());
    }
    finish_trace_at_exit_once();
  }
  r.env_read = true;
}

Allocator& allocator_for(int device) {
  if (device < 0 || device >= kMaxDevices)
    throw Error(ErrorCode::kInvalidArgument, "device " + std::to_string(device) + " is out of range 0.." +
                                                 std::to_string(kMaxDevices - 1));
  Registry& r = registry();
  if (Allocator* a = r.devices[device].load(std::memory_order_acquire)) return *a;
  std::lock_guard<std::mutex> lock(r.mu);
  if (Allocator* a = r.devices[device].load(std::memory_order_relaxed)) return *a;
  if (!r.config) r.config = Config::from_env();
  read_env(r);
  auto a = std::make_unique<Allocator>(*r.config, device);
  if (r.recorder != nullptr) a->attach_recorder(r.recorder);
  r.owned[device] = std::move(a);
  r.devices[device].store(r.owned[device].get(), std::memory_order_release);
  return *r.owned[device];
}

}  // namespace

Allocator& device_allocator(int device) { return allocator_for(device); }

Allocator* existing_allocator(int device) noexcept {
  if (device < 0 || device >= kMaxDevices) return nullptr;
  return registry().devices[device].load(std::memory_order_acquire);
}

void set_stack_namer(std::shared_ptr<StackNamer> namer) {
  if (namer == nullptr) name_stacks();
  Registry& r = registry();
  std::shared_ptr<Recorder> recorder;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    r.namer = namer;
    recorder = r.recorder;
  }
  if (recorder != nullptr) recorder->set_stack_namer(std::move(namer));
}

size_t name_stacks() {
  Registry& r = registry();
  std::shared_ptr<Recorder> recorder;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    recorder = r.recorder;
  }
  return recorder != nullptr ? recorder->name_stacks() : 0;
}

int device_owning(const void* ptr) noexcept {
  for (int d = 0; d < kMaxDevices; ++d)
    if (const Allocator* a = existing_allocator(d); a != nullptr && a->owns(ptr)) return d;
  return -1;
}

namespace {

// Runs f, turning any exception into the thread's last error.
template <typename F>
bool guarded(F&& f) {
  try {
    f();
    return true;
  } catch (const std::exception& e) {
    last_error = e.what();
  } catch (...) {
    last_error = "unknown error";
  }
  return false;
}

// The length `text` needs; copies what fits into buf, always NUL-terminated
// when cap > 0 (the contract of hbm_stats_json and hbm_memory_summary).
size_t copy_text(const std::string& text, char* buf, size_t cap) {
  if (buf != nullptr && cap > 0) {
    size_t n = std::min(cap - 1, text.size());
    std::memcpy(buf, text.data(), n);
    buf[n] = '\0';
  }
  return text.size();
}

}  // namespace
}  // namespace hbmalloc

using namespace hbmalloc;

extern "C" {

void* hbm_malloc(ssize_t size, int device, cudaStream_t stream) {
  void* ptr = nullptr;
  guarded([&] {
    if (size < 0) throw Error(ErrorCode::kInvalidArgument, "malloc of negative size " + std::to_string(size));
    Allocator& a = allocator_for(device);
    ptr = a.malloc(uint64_t(size), reinterpret_cast<StreamId>(stream));
  });
  return ptr;
}

void hbm_free(void* ptr, ssize_t size, int device, cudaStream_t) {
  guarded([&] {
    if (ptr == nullptr) return;
    allocator_for(device).free(ptr, int64_t(size));  // validates the size
  });
}

int hbm_configure(const char* conf) {
  return guarded([&] {
           Config c = Config::parse(conf ? conf : "");
           Registry& r = registry();
           std::lock_guard<std::mutex> lock(r.mu);
           for (auto& d : r.devices)
             if (d.load() != nullptr)
               throw Error(ErrorCode::kConfig, "hbm_configure after the allocator was initialised");
           r.config = c;
         })
             ? 0
             : -1;
}

void hbm_init(int device_count) {
  guarded([&] {
    for (int d = 0; d < device_count && d < kMaxDevices; ++d) allocator_for(d);
  });
}

void hbm_empty_cache(void) {
  guarded([&] {
    for (auto& d : registry().devices)
      if (Allocator* a = d.load(std::memory_order_acquire)) a->empty_cache();
  });
}

void hbm_set_memory_fraction(double fraction, int device) {
  guarded([&] { allocator_for(device).set_memory_fraction(fraction); });
}

int hbm_enable_peer_access(int device, int peer) {
  return guarded([&] { allocator_for(device).enable_peer_access(peer); }) ? 0 : -1;
}

long hbm_ipc_export(void* ptr, int device, hbm_ipc_block* block, hbm_ipc_piece* pieces, size_t max_pieces) {
  long count = -1;
  guarded([&] {
    if (block == nullptr || (pieces == nullptr && max_pieces > 0))
      throw Error(ErrorCode::kInvalidArgument, "hbm_ipc_export: block and (with max_pieces) pieces are needed");
    IpcBlock shared = allocator_for(device).share(ptr);
    count = long(shared.pieces.size());
    if (shared.pieces.size() > max_pieces) {
      for (const IpcPiece& p : shared.pieces) ::close(p.fd);
      return;
    }
    for (size_t i = 0; i < shared.pieces.size(); ++i) pieces[i] = {shared.pieces[i].fd, shared.pieces[i].bytes};
    block->offset = shared.offset;
    block->size = shared.size;
    block->segment = shared.segment ? 1 : 0;
    std::memcpy(block->segment_handle, shared.segment_handle.data(), sizeof block->segment_handle);
  });
  return count;
}

void* hbm_ipc_open(int device, const hbm_ipc_block* block, const hbm_ipc_piece* pieces, size_t n_pieces) {
  void* ptr = nullptr;
  guarded([&] {
    if (block == nullptr || (pieces == nullptr && n_pieces > 0))
      throw Error(ErrorCode::kInvalidArgument, "hbm_ipc_open: block and (with n_pieces) pieces are needed");
    IpcBlock shared;
    shared.offset = block->offset;
    shared.size = block->size;
    shared.segment = block->segment != 0;
    std::memcpy(shared.segment_handle.data(), block->segment_handle, sizeof block->segment_handle);
    for (size_t i = 0; i < n_pieces; ++i) shared.pieces.push_back({pieces[i].fd, pieces[i].bytes});
    if (!shared.segment && shared.pieces.empty())
      throw Error(ErrorCode::kInvalidArgument, "hbm_ipc_open: a page-mapped block needs its pieces");
    ptr = allocator_for(device).open_shared(shared);
  });
  return ptr;
}

int hbm_ipc_close(void* ptr, int device) {
  return guarded([&] { allocator_for(device).close_shared(ptr); }) ? 0 : -1;
}

void hbm_record_stream(void* ptr, cudaStream_t stream) {
  guarded([&] {
    if (ptr == nullptr) return;
    // The pointer names its device.
    const int d = device_owning(ptr);
    if (d < 0) throw Error(ErrorCode::kUnknownPointer, "record_stream on a pointer no hbmalloc device returned");
    allocator_for(d).record_stream(ptr, reinterpret_cast<StreamId>(stream));
  });
}

void hbm_reset_peak_stats(int device) {
  guarded([&] { allocator_for(device).reset_peak_stats(); });
}

size_t hbm_stats_json(int device, char* buf, size_t cap) {
  size_t needed = 0;
  guarded([&] { needed = copy_text(stats_to_json(allocator_for(device).stats()), buf, cap); });
  return needed;
}

size_t hbm_memory_summary(int device, char* buf, size_t cap) {
  size_t needed = 0;
  guarded([&] { needed = copy_text(render_memory_summary(allocator_for(device).stats(), device), buf, cap); });
  return needed;
}

int hbm_trace_start(const char* path) {
  return guarded([&] {
           if (path == nullptr || *path == '\0') throw Error(ErrorCode::kInvalidArgument, "hbm_trace_start: empty path");
           Registry& r = registry();
           std::lock_guard<std::mutex> lock(r.mu);
           read_env(r);
           if (r.recorder != nullptr) return r.recorder->start_file(path);
           RecorderOptions options;
           options.path = path;
           auto recorder = std::make_shared<Recorder>(options);
           recorder->set_stack_namer(r.namer);
           for (auto& owned : r.owned)
             if (owned != nullptr) owned->attach_recorder(recorder);
           r.recorder = std::move(recorder);
           finish_trace_at_exit_once();
         })
             ? 0
             : -1;
}

int hbm_trace_stop(void) {
  return guarded([&] {
           name_stacks();  // before the file ends, and with no lock held
           Registry& r = registry();
           std::lock_guard<std::mutex> lock(r.mu);
           if (r.recorder == nullptr) return;
           std::shared_ptr<Recorder> recorder = r.recorder;
           // Without an OOM dump to feed, recording stops altogether.
           if (recorder->options().oom_dump_dir.empty()) {
             for (auto& owned : r.owned)
               if (owned != nullptr) owned->attach_recorder(nullptr);
             r.recorder.reset();
           }
           recorder->stop_file();
         })
             ? 0
             : -1;
}

int hbm_dump_snapshot(const char* path) {
  return guarded([&] {
           if (path == nullptr || *path == '\0') throw Error(ErrorCode::kInvalidArgument, "hbm_dump_snapshot: empty path");
           std::vector<std::pair<int, Layout>> devices;
           for (int d = 0; d < kMaxDevices; ++d)
             if (Allocator* a = existing_allocator(d)) devices.emplace_back(d, a->layout());
           trace::write_whole_file(path, trace::write_pytorch_snapshot(trace::live_trace(std::move(devices))));
         })
             ? 0
             : -1;
}

int hbm_check_invariants(int device) {
  return guarded([&] { allocator_for(device).check_invariants(); }) ? 0 : -1;
}

const char* hbm_last_error(void) { return hbmalloc::last_error.c_str(); }

void hbm_clear_error(void) { hbmalloc::last_error.clear(); }

}  // extern "C"
