// Recording what Allocators do: an .hbt trace (docs/hbt-format.md) written as
// events happen, and the recent past kept in memory so that an out-of-memory
// failure dumps a replayable trace and a summary. One Recorder may serve the
// Allocators of several devices (Allocator::attach_recorder); they share its file.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "hbmalloc/stacks.hpp"

namespace hbmalloc {

namespace trace {
class TraceRecorder;  // allocator/record/recorder.h
}

struct RecorderOptions {
  std::string path;                   // .hbt file written from the start ("" for none)
  std::string oom_dump_dir;           // on out of memory, a trace and a summary go here ("" for none)
  size_t oom_dump_events = 1u << 18;  // events per device kept in memory for the dump
};

class Recorder {
 public:
  // Throws Error naming options.path when it cannot be created.
  explicit Recorder(const RecorderOptions& options);
  ~Recorder();  // ends the file
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // Starts a file; what the attached allocators hold now is its starting
  // picture. Throws Error when a file is being written or path cannot be created.
  void start_file(const std::string& path);
  // Completes the file (end record) and closes it; throws Error naming it when
  // a write failed. Recording in memory for the OOM dump goes on.
  void stop_file();

  // Allocation stacks (hbmalloc/stacks.hpp): with a namer set, allocations
  // made under a StackScope keep their token until name_stacks() turns the
  // waiting ones into frames, in the file and in the OOM dump's buffer. Call
  // it where the namer may run (no lock held that its runtime could wait
  // on); nullptr stops taking tokens and drops the waiting ones.
  void set_stack_namer(std::shared_ptr<StackNamer> namer);
  size_t name_stacks();  // returns how many blocks got a stack
  size_t pending_stacks() const;

  const RecorderOptions& options() const { return options_; }
  trace::TraceRecorder& engine() { return *engine_; }

 private:
  RecorderOptions options_;
  std::unique_ptr<trace::TraceRecorder> engine_;
};

}  // namespace hbmalloc
