// libFuzzer target for `hbmalloc convert`: any trace a reader accepts, written
// as .jsonl, .hbt and a PyTorch snapshot (with a replay's addresses where it
// has none, as convert does), must read back, each device keeping its allocs,
// frees, requested peak and the recording's reserved peak, and .jsonl and
// .hbt every event: what convert_cli_test pins on the shared snapshots, here
// for whatever the readers let through. A finding is a crash, a sanitizer
// report, a hang, an exception other than an hbmalloc::Error naming the
// trace, a written trace that does not read back, or figures that differ.
#include <cstdint>
#include <string>

#include "hbmalloc/error.hpp"
#include "record/hbt_writer.h"
#include "record/snapshot_writer.h"
#include "replay/assign_addresses.h"
#include "trace/jsonl_format.h"
#include "trace_fuzz.h"

namespace {

using hbmalloc::Error;
namespace trace = hbmalloc::trace;

// Each device of `a` in `b`, with the same allocs, frees and requested peak
// and, with `recording`, every event and the recording allocator's reserved
// peak; a device only `b` has (a snapshot lists devices 0..N) saw nothing.
void require_alike(const trace::Trace& a, const trace::Trace& b, bool recording) {
  for (const trace::DeviceTrace& d : a.devices) {
    const trace::DeviceTrace* e = b.device(d.device);
    if (e == nullptr) __builtin_trap();
    const trace::TraceFigures x = trace::figures_of(d), y = trace::figures_of(*e);
    if (x.allocs != y.allocs || x.frees != y.frees || x.peak_requested != y.peak_requested) __builtin_trap();
    if (recording && (x.events != y.events || x.native_peak_reserved != y.native_peak_reserved)) __builtin_trap();
  }
  for (const trace::DeviceTrace& e : b.devices)
    if (a.device(e.device) == nullptr && (!e.events.empty() || !e.live_at_start.empty())) __builtin_trap();
}

void require_reads_back(const trace::Trace& written, const std::string& bytes, bool every_event) {
  trace::Trace back;
  try {
    back = trace::read_trace_bytes(bytes, "fuzz again");
  } catch (const Error&) {
    __builtin_trap();  // what hbmalloc wrote it cannot read
  }
  require_alike(written, back, every_event);
  // A snapshot keeps the reserved peak it was told (a trace with no segment
  // at all tells none: its snapshot gets segments of the blocks' own).
  if (!every_event)
    for (const trace::DeviceTrace& d : written.devices)
      if (const auto told = trace::figures_of(d).native_peak_reserved;
          told && *told != 0 && told != trace::figures_of(*back.device(d.device)).native_peak_reserved)
        __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::optional<trace::Trace> read = hbmalloc::fuzz::read_any(data, size);
  if (!read) return 0;
  try {
    require_reads_back(*read, trace::write_jsonl(*read), true);
    require_reads_back(*read, trace::write_hbt(*read), true);
    bool replayed = false;
    for (const trace::DeviceTrace& d : read->devices) replayed = replayed || hbmalloc::replay::lacks_addresses(d);
    if (!replayed) {
      require_reads_back(*read, trace::write_pytorch_snapshot(*read), false);
    } else {
      // Addresses and segments from a replay: the same requests, and a recording allocator now.
      const trace::Trace addressed = hbmalloc::replay::with_replayed_addresses(*read);
      require_alike(*read, addressed, false);
      require_reads_back(addressed, trace::write_pytorch_snapshot(addressed), false);
    }
  } catch (const Error& e) {
    hbmalloc::fuzz::require_named(e);
  }
  return 0;
}
