#include "policy/hbm/stream_fences.h"

#include "hbmalloc/error.hpp"

namespace hbmalloc::hbm {

StreamFences::~StreamFences() {
  // The policy is going away; a backend that fails now has no one to tell.
  try {
    for (auto& [stream, f] : fences_)
      if (f->recorded) backend_.release_event(f->event);
  } catch (...) {
  }
}

void StreamFences::record(StreamId stream, Fence& f) {
  if (f.recorded) {
    if (!done(f)) return;
    f.recorded = false;
    backend_.release_event(f.event);
  }
  try {
    f.event = backend_.record_event(stream);
  } catch (const Error&) {
    // The stream is gone (a block freed after its stream was destroyed): the
    // free still succeeds; its stream's frees stay unfenced until a device
    // synchronization settles them.
    return;
  }
  f.recorded = true;
  f.done = false;
  f.at = clock_;
}

bool StreamFences::settled(StreamId stream, uint64_t freed_at) {
  if (freed_at == 0) return true;
  Fence* found = fences_.find(stream);
  if (found == nullptr) return false;
  Fence& f = *found;
  if (freed_at <= f.done_at) return true;
  return !capturing_ && f.recorded && f.at >= freed_at && done(f);
}

void StreamFences::synchronize() {
  backend_.synchronize();
  ++stats_.num_sync_all_streams;
  synced_at_ = clock_;
}

}  // namespace hbmalloc::hbm
