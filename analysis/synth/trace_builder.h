// What every synthetic workload writes with: dense block ids, both halves of
// each free, frees a side stream still uses (record_stream) completed later,
// and a clock that advances by the compute each step would take, so that
// time-based figures (the remap budget, the timeline) mean something.
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "record/trace.h"

namespace hbmalloc::synth {

class TraceBuilder {
 public:
  explicit TraceBuilder(trace::DeviceTrace& d) : d_(d) {}

  uint32_t alloc(uint64_t size, uint64_t stream = 0) {
    const uint32_t id = d_.block_count++;
    push(trace::Event{0, 0, size, stream, id, trace::Action::kAlloc});
    sizes_.push_back(size);
    streams_.push_back(stream);
    return id;
  }
  // PyTorch records both halves of a free; with no stream work pending they
  // follow each other at once.
  void free(uint32_t id) {
    push(trace::Event{0, 0, sizes_[id], streams_[id], id, trace::Action::kFreeRequested});
    push(trace::Event{0, 0, sizes_[id], streams_[id], id, trace::Action::kFree});
  }
  void free_all(std::vector<uint32_t>& ids) {
    for (uint32_t id : ids) free(id);
    ids.clear();
  }
  // A block another stream still uses (record_stream): the caller lets go
  // now, the allocator gets it back once `after` more events have passed.
  void free_used_elsewhere(uint32_t id, int after) {
    push(trace::Event{0, 0, sizes_[id], streams_[id], id, trace::Action::kFreeRequested});
    pending_.emplace_back(id, int(d_.events.size()) + after);
  }
  // Completes the frees whose other streams are done by now.
  void settle() {
    for (size_t i = 0; i < pending_.size();) {
      if (pending_[i].second <= int(d_.events.size())) {
        const uint32_t id = pending_[i].first;
        pending_[i] = pending_.back();
        pending_.pop_back();
        push(trace::Event{0, 0, sizes_[id], streams_[id], id, trace::Action::kFree});
      } else {
        ++i;
      }
    }
  }
  void settle_all() {
    for (auto& [id, at] : pending_) at = 0;
    settle();
  }
  void marker() { push(trace::Event{0, 0, 0, 0, trace::kNoBlock, trace::Action::kMarker}); }
  // Compute that takes `us` microseconds between two allocator calls.
  void compute(int64_t us) { time_us_ += us; }
  uint64_t size_of(uint32_t id) const { return sizes_[id]; }

 private:
  void push(trace::Event e) {
    time_us_ += 5;  // the allocator call itself
    e.time_us = time_us_;
    d_.events.push_back(e);
  }

  trace::DeviceTrace& d_;
  std::vector<uint64_t> sizes_, streams_;
  std::vector<std::pair<uint32_t, int>> pending_;  // (block, event count at which it completes)
  int64_t time_us_ = 1'700'000'000'000'000;
};

// A trace of one device with its settings: what `hbmalloc synth` made.
inline trace::Trace new_trace(std::string workload, std::vector<std::pair<std::string, std::string>> settings) {
  trace::Trace t;
  t.source = "synthetic " + workload;
  t.format = "synthetic";
  t.recorder = "hbmalloc synth";
  t.has_history = true;
  settings.insert(settings.begin(), {"workload", std::move(workload)});
  t.settings = std::move(settings);
  t.devices.emplace_back();
  return t;
}

// Rounds to a multiple of `to`, as a tensor library pads sizes.
inline uint64_t round_to(uint64_t bytes, uint64_t to) { return (bytes + to - 1) / to * to; }

}  // namespace hbmalloc::synth
