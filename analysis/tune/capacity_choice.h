// The device capacity a trace is judged at when none is given: the trace's
// own, else what its first OOM implies, else what the recording reserved at
// its peak; and where that figure came from, for the reader.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "record/trace.h"

namespace hbmalloc::tune {

struct CapacityChoice {
  std::optional<uint64_t> bytes;  // absent: unlimited
  std::string source;
};

CapacityChoice capacity_for(const trace::Trace& t, const trace::DeviceTrace& d, std::optional<uint64_t> given);

}  // namespace hbmalloc::tune
