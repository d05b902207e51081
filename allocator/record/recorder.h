// The runtime recorder: what live Allocators do, as a Trace. It turns
// pointers into dense block ids, stamps events with a steady clock, writes an
// .hbt file as it goes and, for the OOM dump, keeps the recent past in memory
// as a replayable trace. Allocators call it under their own lock; it has its
// own mutex, so several devices share one recorder and one file.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/container/btree_map.h"
#include "hbmalloc/stacks.hpp"
#include "record/hbt_writer.h"
#include "record/trace.h"

namespace hbmalloc::trace {

// What an allocator tells the recorder when it attaches.
struct DeviceSetup {
  int device = 0;
  std::optional<uint64_t> capacity;
  std::vector<std::pair<std::string, std::string>> settings;  // the allocator's config
  std::vector<BlockInfo> live;        // blocks live now (ids are assigned here)
  std::vector<SegmentInfo> segments;  // segments held now (their blocks are ignored)
};

class TraceRecorder {
 public:
  struct Options {
    std::string path;          // .hbt file to write from the start ("" for none)
    size_t memory_events = 0;  // events kept in memory per device (0: none)
    uint32_t flush_every = 1024;
  };

  // Throws Error naming options.path when it cannot be created.
  explicit TraceRecorder(const Options& options);
  ~TraceRecorder();  // ends the file; a write error there is lost
  TraceRecorder(const TraceRecorder&) = delete;
  TraceRecorder& operator=(const TraceRecorder&) = delete;

  // Starts an .hbt file; the blocks and segments live now are its starting
  // picture. Throws Error when one is being written or path cannot be created.
  void start_file(const std::string& path);
  // Ends the file (segments at end, end record). Throws Error naming the file
  // when a write failed, now or earlier (recording stopped then). No-op without one.
  void stop_file();

  // Throws Error when `setup.device` was attached to this recorder before.
  void attach(const DeviceSetup& setup);
  // Later events of the device are ignored.
  void detach(int device);

  // The allocator's events. Pointers it never reported (handed out before
  // attaching) are ignored, so the trace stays consistent.
  void alloc(int device, uint64_t ptr, uint64_t requested, uint64_t size, bool small_pool, uint64_t stream);
  void free_requested(int device, uint64_t ptr);
  void free_completed(int device, uint64_t ptr);
  void free(int device, uint64_t ptr);  // both moments at once: no stream uses were pending
  void record_stream(int device, uint64_t ptr, uint64_t stream);
  void oom(int device, uint64_t request, uint64_t device_free);
  void empty_cache(int device);
  void segment_alloc(int device, uint64_t ptr, uint64_t bytes);
  void segment_free(int device, uint64_t ptr, uint64_t bytes);
  // VMM: pages mapped at / unmapped from [ptr, ptr + bytes); mapped ranges
  // that touch form one (expandable) segment, as PyTorch's snapshots show them.
  void segment_map(int device, uint64_t ptr, uint64_t bytes);
  void segment_unmap(int device, uint64_t ptr, uint64_t bytes);

  // The recent past of `device` kept in memory, as a complete Trace with its
  // final picture; nullopt when memory_events is 0 or the device is unknown.
  std::optional<Trace> recent(int device) const;

  // Stacks (hbmalloc/stacks.hpp). With a namer set, each alloc made under a
  // StackScope keeps its token until name_stacks() names it: the frames go
  // to the file (records 7, 8, 9) and to the memory buffer. Tokens past
  // kMaxPendingStacks are not taken, so that no token is ever released under
  // an allocator's lock.
  void set_stack_namer(std::shared_ptr<StackNamer> namer);
  // Names the waiting tokens outside every lock; returns how many blocks got
  // a stack. The namer's failure is told on stderr and loses that batch.
  size_t name_stacks();
  size_t pending_stacks() const;
  // For a copy recent() made before stacks were named: its blocks' stacks as
  // known now. False (the copy unchanged) when the buffer has dropped events
  // since, which renumbers its blocks; `generation` is memory_generation()
  // when the copy was made.
  bool add_named_stacks(Trace& recent, uint64_t generation) const;
  uint64_t memory_generation(int device) const;
  static constexpr size_t kMaxPendingStacks = size_t(1) << 20;

 private:
  static constexpr uint64_t kNoSerial = UINT64_MAX;
  struct LiveRecord {
    uint32_t file_id = kNoBlock;
    uint32_t memory_id = kNoBlock;
    uint64_t requested = 0, size = 0, stream = 0;
    bool small_pool = false;
    bool pending = false;  // free requested, not completed
    uint64_t serial = kNoSerial;  // the recorder's own count of allocs, for stacks named later
    uint32_t stack = kNoStack;
  };
  struct PendingStack {
    int device = 0;
    uint64_t ptr = 0;
    uint64_t serial = 0;
    uint32_t file_id = kNoBlock;
    uint64_t file_number = 0;  // which file file_id belongs to
    StackToken token;
  };
  // The memory buffer's state at its midpoint: when the buffer fills, the
  // first half is dropped and this becomes the trace's starting picture.
  struct Midpoint {
    size_t event = 0;        // events before it
    uint32_t block_count = 0;
    std::vector<BlockInfo> live;  // memory ids, in id order
    std::vector<SegmentInfo> segments;
  };
  struct HeldSegment {
    uint64_t bytes = 0;
    bool small_pool = false;
    bool expandable = false;
  };
  struct Device {
    bool attached = true;
    bool in_file = false;
    std::optional<uint64_t> capacity;
    std::unordered_map<uint64_t, LiveRecord> live;
    absl::btree_map<uint64_t, HeldSegment> segments;  // by address
    uint32_t file_blocks = 0;  // ids handed out in the current file
    DeviceTrace memory;        // the recent past (memory ids)
    std::optional<Midpoint> midpoint;
    std::vector<uint64_t> memory_serials;  // by memory id: the block's serial
    std::map<uint64_t, uint32_t> serial_stacks;  // named stacks of blocks in the memory buffer
    uint64_t memory_generation = 0;  // times the buffer dropped its first half
  };

  Device* active(int device);  // nullptr when unknown or detached
  // Stamps e and sends it to the file and the memory buffer; a block event
  // takes its id in each from r.
  void emit(int number, Device& d, Event e, const LiveRecord* r);
  void remember(Device& d, const Event& e);
  void release(int number, Device& d, uint64_t ptr, bool requested, bool completed);
  void take_midpoint(Device& d);
  void drop_first_half(Device& d);
  void begin_device_in_file(int number, Device& d);
  enum class Ids { kNone, kFile, kMemory };  // which block ids a picture names
  std::vector<BlockInfo> live_blocks(const Device& d, Ids ids) const;
  std::vector<SegmentInfo> segments_now(const Device& d, Ids ids) const;
  void open_file(const std::string& path);
  void fill_stacks(const Device& d, Trace& t) const;
  uint32_t intern_stack(const std::vector<StackFrame>& frames);
  // Writes the frames and stacks the file lacks, then the block's stack.
  void write_block_stack(int device, uint32_t file_id, uint32_t stack);
  void write_header();
  void end_file();
  template <typename F>
  void write(F&& f);

  const Options options_;
  mutable std::mutex mu_;
  std::map<int, Device> devices_;
  HbtHeader header_;
  bool header_known_ = false;  // from the first attached device

  using File = std::unique_ptr<std::FILE, int (*)(std::FILE*)>;
  File file_{nullptr, &std::fclose};
  std::string file_path_;
  std::unique_ptr<HbtWriter> writer_;
  bool header_written_ = false;
  std::string file_error_;  // first write failure of the current file
  int64_t last_flush_us_ = 0;
  uint64_t file_number_ = 0;  // files opened so far

  std::shared_ptr<StackNamer> namer_;
  uint64_t next_serial_ = 0;
  std::vector<PendingStack> pending_stacks_;
  std::vector<Frame> frames_;
  std::vector<std::vector<uint32_t>> stacks_;
  std::map<std::tuple<std::string, std::string, int64_t>, uint32_t> frame_ids_;
  std::map<std::vector<uint32_t>, uint32_t> stack_ids_;
  size_t frames_in_file_ = 0, stacks_in_file_ = 0;
};

}  // namespace hbmalloc::trace
