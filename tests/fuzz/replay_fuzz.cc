// libFuzzer target for what replay makes of any trace a reader accepts: bytes
// read as every command reads them (the seeds are JSON lines), then every
// device replayed under hbm and cca (plain and with expandable segments),
// unlimited and on a 64 MiB device, each under the trace's recorded settings
// as the command line's replay runs it, with the allocator's invariant
// checker after every event. A finding is a crash, a sanitizer report, a
// hang, an invariant violation, any other exception than an hbmalloc::Error
// naming the trace (or a setting the trace recorded), or figures that cannot
// be: where the replay served every request of a trace with no recorded
// failure, its peak requested bytes must be the trace's own
// (../shared/traces/README.md); peak reserved >= peak allocated >= peak
// requested always; and hbm serves every request on the device
// --min-capacity names.
#include <cstdint>
#include <optional>

#include "hbmalloc/error.hpp"
#include "replay/replay.h"
#include "trace_fuzz.h"

namespace {

using hbmalloc::Error;
using hbmalloc::replay::ReplayOptions;
using hbmalloc::replay::ReplayResult;

void replay_checked(const hbmalloc::trace::Trace& t, int device, const char* policy, bool expandable,
                    std::optional<uint64_t> capacity) {
  ReplayOptions o;
  o.device = device;
  o.config.policy = policy;
  if (expandable) o.config.pytorch_settings = {{"expandable_segments", "True"}};
  o.capacity = capacity;
  o.check_invariants = true;
  ReplayResult r;
  try {
    hbmalloc::replay::as_recorded(t, o);  // a capacity given stays
    r = hbmalloc::replay::replay(t, o);
  } catch (const Error& e) {
    hbmalloc::fuzz::require_named(e);
    return;
  }
  if (r.peak_reserved < r.peak_allocated || r.peak_allocated < r.peak_requested) __builtin_trap();
  if (r.ooms.empty() && r.failed_requests.empty() && r.native.peak_requested != r.peak_requested) __builtin_trap();
}

void least_capacity_fits(const hbmalloc::trace::Trace& t, int device) {
  ReplayOptions o;
  o.device = device;
  try {
    const std::optional<uint64_t> least = hbmalloc::replay::min_capacity(t, o);
    if (!least) return;  // no device up to 1 PiB serves it
    o.capacity = *least;
    if (!hbmalloc::replay::replay(t, o).ooms.empty()) __builtin_trap();
  } catch (const Error& e) {
    hbmalloc::fuzz::require_named(e);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  hbmalloc::fuzz::for_each_device(data, size, [](const hbmalloc::trace::Trace& t, int device) {
    for (std::optional<uint64_t> capacity : {std::optional<uint64_t>{}, std::optional<uint64_t>{64ull << 20}}) {
      replay_checked(t, device, "hbm", false, capacity);
      replay_checked(t, device, "cca", false, capacity);
      replay_checked(t, device, "cca", true, capacity);
    }
    least_capacity_fits(t, device);
  });
  return 0;
}
