#include <algorithm>
#include <memory>

#include "backend/backend.h"
#include "backend/host_backend.h"
#include "backend/sim_backend.h"
#include "hbmalloc/error.hpp"
#ifdef HBMALLOC_HAVE_CUDA
#include "backend/cuda_backend.h"
#endif

namespace hbmalloc {

std::unique_ptr<SimBackend> make_sim_backend(const Config& config, int device) {
  auto sim = std::make_unique<SimBackend>(device, config.capacity,
                                          std::min(config.vmm.granule_size, SimBackend::kDefaultGranularity),
                                          /*checked=*/false);
  sim->set_work_lag_us(config.sim_lag_us);
  return sim;
}

std::unique_ptr<Backend> make_backend(const Config& config, int device) {
  if (device < 0) throw Error(ErrorCode::kInvalidArgument, "device " + std::to_string(device) + " is negative");
  if (config.backend == "sim") {
    if (device >= config.sim_devices)
      throw Error(ErrorCode::kInvalidArgument, "device " + std::to_string(device) + " out of range: the sim backend has " +
                                                   std::to_string(config.sim_devices) + " devices");
    return make_sim_backend(config, device);
  }
  if (config.backend == "host") return std::make_unique<HostBackend>(device, config.capacity, config.vmm.granule_size);
  if (config.backend == "cuda") {
#ifdef HBMALLOC_HAVE_CUDA
    return std::make_unique<CudaBackend>(device, config.ipc);
#else
    throw Error(ErrorCode::kConfig, "backend:cuda is not available: hbmalloc was built without the CUDA toolkit");
#endif
  }
  throw Error(ErrorCode::kConfig, "backend: unknown backend '" + config.backend + "' (expected cuda, sim or host)");
}

}  // namespace hbmalloc
