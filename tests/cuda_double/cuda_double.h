// Control of the CUDA double (cuda_double.cc) for tests: faults on request,
// violations counted instead of aborting, and what the double holds. Tests
// reach these through dlsym(RTLD_DEFAULT, ...), so the same test binaries run
// unchanged on a real GPU, where the names are simply absent.
#pragma once

#include <cstdint>

extern "C" {

// From the nth call of `call` on ("cuMemCreate", "cudaMalloc", "cuMemMap",
// "cuMemUnmap", "cuMemSetAccess", "cuMemAddressReserve", "cudaEventQuery",
// "cudaEventRecord"), `times` calls return `error` (a CUresult or cudaError_t
// value); times 0 clears the fault.
void hbm_double_fail(const char* call, uint64_t nth, uint64_t times, int error);
// On: a broken rule makes the call return an error (and is counted) instead
// of aborting the process.
void hbm_double_return_violations(int on);
uint64_t hbm_double_violations(void);
// The last broken rule, as "cuda double: CALL broke a rule: RULE (REFERENCE): DETAIL".
const char* hbm_double_last_violation(void);
// Bytes of device memory held (cudaMalloc and cuMemCreate) on `device`.
uint64_t hbm_double_used(int device);
// Physical handles not yet released, and mappings not yet unmapped.
uint64_t hbm_double_handles(void);
uint64_t hbm_double_mappings(void);

}  // extern "C"
