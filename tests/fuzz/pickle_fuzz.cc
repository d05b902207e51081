// libFuzzer target: arbitrary bytes into read_pytorch_snapshot. A Trace or an
// hbmalloc::Error are the only acceptable outcomes; anything else escapes and
// is a finding. A trace that reads is also written and read back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "hbmalloc/error.hpp"
#include "trace/read_trace.h"
#include "record/snapshot_writer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const hbmalloc::trace::Trace t = hbmalloc::trace::read_pytorch_snapshot(bytes, "fuzz.pickle");
    const std::string again = hbmalloc::trace::write_pytorch_snapshot(t);
    hbmalloc::trace::read_pytorch_snapshot(again, "fuzz-rewritten.pickle");
  } catch (const hbmalloc::Error&) {
  }
  return 0;
}
