// The process-wide allocators behind the C ABI: one per device, created on
// first use from HBMALLOC_CONF (or hbm_configure) with the HBMALLOC_TRACE /
// HBMALLOC_OOM_DUMP recorder attached. C++ code that serves the same process
// (the PyTorch extension) uses these, so the C hooks and it never disagree.
#pragma once

#include <cstddef>
#include <memory>

#include "hbmalloc/allocator.hpp"
#include "hbmalloc/stacks.hpp"

namespace hbmalloc {

// The allocator of `device`, created when missing. Throws Error (a device out
// of range, no GPU, a bad HBMALLOC_CONF).
Allocator& device_allocator(int device);
// The allocator of `device` when it exists already, else nullptr. Never throws.
Allocator* existing_allocator(int device) noexcept;
// How many device slots the registry has.
constexpr int kMaxDevices = 64;
// The device whose allocator handed out ptr (and has not got it back), or -1.
// Devices' blocks never overlap, so at most one owns it. Never throws.
int device_owning(const void* ptr) noexcept;

// Allocation stacks for the process's recorder (HBMALLOC_TRACE,
// HBMALLOC_OOM_DUMP, hbm_trace_start): the namer goes to the recorder there
// is and to any made later; nullptr names what waits, then takes it back.
void set_stack_namer(std::shared_ptr<StackNamer> namer);
// Names the stacks the process's recorder holds waiting (Recorder::name_stacks);
// 0 without a recorder. Takes no allocator lock.
size_t name_stacks();

}  // namespace hbmalloc
