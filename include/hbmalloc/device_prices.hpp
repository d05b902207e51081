// What each device memory call costs: the one price table behind every
// modeled device time (replay's vmm.device_seconds, explain, tune and the
// defragmentation targets), so allocators with and without VMM compare.
// benchmarks/gpu/device_prices measures each entry on the GPU it runs on and
// prints a replacement for this table.
#pragma once

#include <cstdint>

namespace hbmalloc {

struct DevicePrices {
  static constexpr double kGranule = double(2ull << 20);  // the VMM entries are per 2 MiB granule

  // CUDA VMM, seconds per granule. Source: figures for an A100 quoted in
  // public discussions of PyTorch's expandable segments, not re-measured
  // here; release was not among them and is taken to cost as much as unmap.
  double create = 200e-6;     // cuMemCreate
  double map = 1.5e-6;        // cuMemMap
  double set_access = 36e-6;  // cuMemSetAccess
  double unmap = 26e-6;       // cuMemUnmap
  double release = 26e-6;     // cuMemRelease

  // cudaMalloc / cudaFree of a plain segment: seconds per call plus seconds
  // per byte. Source: none measured yet; a segment is priced as the granules
  // it spans would be (create + map + set_access to take, unmap + release to
  // give back), so plain and page-mapped memory of the same size cost alike.
  double malloc_call = 0;
  double malloc_byte = (200e-6 + 1.5e-6 + 36e-6) / kGranule;
  double free_call = 0;
  double free_byte = (26e-6 + 26e-6) / kGranule;
};

inline constexpr DevicePrices kDevicePrices{};

}  // namespace hbmalloc
