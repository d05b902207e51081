// libFuzzer target for read_rmm_csv (see reader_fuzz.h for what counts as a finding).
#include "reader_fuzz.h"
#include "trace/read_trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return hbmalloc::fuzz::FuzzReader(hbmalloc::trace::read_rmm_csv, data, size);
}
