// Measures what each device memory call of the price table
// (include/hbmalloc/device_prices.hpp) costs on the GPU it runs on, and prints
// the table to put there: median seconds per 2 MiB granule of cuMemCreate,
// cuMemMap, cuMemSetAccess, cuMemUnmap and cuMemRelease (called through
// hbmalloc's CudaVmm, one granule per call, and a 64-granule range for
// set_access and unmap), and cudaMalloc / cudaFree fitted as per call plus
// per byte over sizes from 2 MiB to 1 GiB.
//
//   device_prices [--granules N] [--json FILE]
//
// On the CUDA double (tests/cuda_double) it runs end to end, which checks the
// program, not the prices.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda_vmm.h"
#include "hbmalloc/device_prices.hpp"
#include "hbmalloc/error.hpp"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename F>
double timed(F&& f) {
  const auto t = Clock::now();
  f();
  return seconds_since(t);
}

struct Fit {
  double call = 0, byte = 0;
};

// Least squares of seconds = call + byte * bytes over the medians per size.
Fit fit(const std::vector<std::pair<double, double>>& points) {
  double n = double(points.size()), sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (const auto& [x, y] : points) {
    sx += x;
    sy += y;
    sxx += x * x;
    sxy += x * y;
  }
  const double d = n * sxx - sx * sx;
  Fit f;
  f.byte = d != 0 ? (n * sxy - sx * sy) / d : 0;
  f.call = (sy - f.byte * sx) / n;
  if (f.call < 0) {  // a negative intercept means the call cost is lost in the noise
    f.call = 0;
    f.byte = sxx != 0 ? sxy / sxx : 0;
  }
  if (f.byte < 0) {  // likewise a negative slope: the cost does not grow with the size
    f.byte = 0;
    f.call = n > 0 ? sy / n : 0;
  }
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  int granules = 200;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--granules") && i + 1 < argc) {
      granules = std::max(8, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) {
      json_path = argv[++i];
    } else {
      std::fprintf(stderr, "usage: device_prices [--granules N] [--json FILE]\n");
      return 2;
    }
  }
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    std::fprintf(stderr, "device_prices: no CUDA device\n");
    return 1;
  }
  cudaSetDevice(0);
  cudaFree(nullptr);  // the context, before anything is timed
  // The device's name is nvidia-smi's to tell (run_all.sh writes it beside).
  const char* name = "device 0";
  try {
    hbmalloc::CudaVmm vmm(0, false);
    const uint64_t g = vmm.granularity();
    if (g == 0) {
      std::fprintf(stderr, "device_prices: no VMM on this device: %s\n", vmm.why().c_str());
      return 1;
    }
    const double per_2mib = double(2ull << 20) / double(g);  // the table is per 2 MiB
    const size_t n = size_t(granules);
    auto* base = static_cast<char*>(vmm.reserve_range(n * g));
    std::vector<hbmalloc::GranuleId> ids(n);
    std::vector<double> create, map, access, unmap, release;
    for (size_t i = 0; i < n; ++i) create.push_back(timed([&] { ids[i] = vmm.create_granule(g); }));
    for (size_t i = 0; i < n; ++i) map.push_back(timed([&] { vmm.map(base + i * g, ids[i]); }));
    for (size_t i = 0; i < n; ++i) access.push_back(timed([&] { vmm.set_access(base + i * g, g); }));
    for (size_t i = 0; i < n; ++i) unmap.push_back(timed([&] { vmm.unmap(base + i * g, g); }));
    // A range at once, as hbm maps runs: what one call costs per granule.
    const size_t run = std::min<size_t>(64, n);
    for (size_t i = 0; i < run; ++i) vmm.map(base + i * g, ids[i]);
    const double access_run = timed([&] { vmm.set_access(base, run * g); }) / double(run);
    const double unmap_run = timed([&] { vmm.unmap(base, run * g); }) / double(run);
    for (size_t i = 0; i < n; ++i) release.push_back(timed([&] { vmm.release_granule(ids[i]); }));
    vmm.release_range(base, n * g);

    std::vector<std::pair<double, double>> malloc_points, free_points;
    for (uint64_t bytes : {2ull << 20, 32ull << 20, 256ull << 20, 1ull << 30}) {
      std::vector<double> m, f;
      for (int k = 0; k < 7; ++k) {
        void* p = nullptr;
        m.push_back(timed([&] {
          if (cudaMalloc(&p, bytes) != cudaSuccess) p = nullptr;
        }));
        if (p == nullptr) break;
        f.push_back(timed([&] { cudaFree(p); }));
      }
      if (f.empty()) continue;
      malloc_points.emplace_back(double(bytes), median(m));
      free_points.emplace_back(double(bytes), median(f));
    }
    const Fit fm = fit(malloc_points), ff = fit(free_points);

    hbmalloc::DevicePrices p;
    p.create = median(create) * per_2mib;
    p.map = median(map) * per_2mib;
    p.set_access = median(access) * per_2mib;
    p.unmap = median(unmap) * per_2mib;
    p.release = median(release) * per_2mib;
    p.malloc_call = fm.call;
    p.malloc_byte = fm.byte;
    p.free_call = ff.call;
    p.free_byte = ff.byte;
    const hbmalloc::DevicePrices& now = hbmalloc::kDevicePrices;
    std::printf("device %s, granule %llu bytes, %d granules per operation\n", name, (unsigned long long)g, granules);
    std::printf("%-34s %14s %14s\n", "call", "measured", "table now");
    auto row = [](const char* what, double measured, double table) {
      std::printf("%-34s %12.2f us %12.2f us\n", what, measured * 1e6, table * 1e6);
    };
    row("cuMemCreate / 2 MiB", p.create, now.create);
    row("cuMemMap / 2 MiB", p.map, now.map);
    row("cuMemSetAccess / 2 MiB", p.set_access, now.set_access);
    row("cuMemSetAccess / 2 MiB, 64 at once", access_run * per_2mib, now.set_access);
    row("cuMemUnmap / 2 MiB", p.unmap, now.unmap);
    row("cuMemUnmap / 2 MiB, 64 at once", unmap_run * per_2mib, now.unmap);
    row("cuMemRelease / 2 MiB", p.release, now.release);
    row("cudaMalloc per call", p.malloc_call, now.malloc_call);
    row("cudaMalloc per 2 MiB", p.malloc_byte * double(2ull << 20), now.malloc_byte * double(2ull << 20));
    row("cudaFree per call", p.free_call, now.free_call);
    row("cudaFree per 2 MiB", p.free_byte * double(2ull << 20), now.free_byte * double(2ull << 20));
    std::printf("\nfor include/hbmalloc/device_prices.hpp (measured on %s):\n", name);
    std::printf("  double create = %.3g;\n  double map = %.3g;\n  double set_access = %.3g;\n"
                "  double unmap = %.3g;\n  double release = %.3g;\n  double malloc_call = %.3g;\n"
                "  double malloc_byte = %.3g;\n  double free_call = %.3g;\n  double free_byte = %.3g;\n",
                p.create, p.map, p.set_access, p.unmap, p.release, p.malloc_call, p.malloc_byte, p.free_call,
                p.free_byte);
    if (!json_path.empty()) {
      FILE* out = std::fopen(json_path.c_str(), "w");
      if (out == nullptr) {
        std::fprintf(stderr, "device_prices: cannot write %s\n", json_path.c_str());
        return 1;
      }
      std::fprintf(out,
                   "{\"device\": \"%s\", \"granule\": %llu, \"granules\": %d, \"seconds\": {\"create\": %.9g, "
                   "\"map\": %.9g, \"set_access\": %.9g, \"set_access_run\": %.9g, \"unmap\": %.9g, "
                   "\"unmap_run\": %.9g, \"release\": %.9g, \"malloc_call\": %.9g, \"malloc_byte\": %.9g, "
                   "\"free_call\": %.9g, \"free_byte\": %.9g}}\n",
                   name, (unsigned long long)g, granules, p.create, p.map, p.set_access, access_run * per_2mib,
                   p.unmap, unmap_run * per_2mib, p.release, p.malloc_call, p.malloc_byte, p.free_call, p.free_byte);
      std::fclose(out);
    }
  } catch (const hbmalloc::Error& e) {
    std::fprintf(stderr, "device_prices: %s\n", e.what());
    return 1;
  }
  return 0;
}
