#include "tune/capacity_choice.h"

namespace hbmalloc::tune {

CapacityChoice capacity_for(const trace::Trace& t, const trace::DeviceTrace& d, std::optional<uint64_t> given) {
  if (given) return {given, "--capacity"};
  if (t.capacity) return {t.capacity, "the trace's device"};
  const trace::TraceFigures f = trace::figures_of(d);
  if (f.native_capacity) return {f.native_capacity, "the recording's device, from its OOM: reserved then + device free"};
  if (f.native_peak_reserved) return {f.native_peak_reserved, "what the recording reserved at its peak"};
  return {std::nullopt, "unlimited: the trace tells no device size"};
}

}  // namespace hbmalloc::tune
