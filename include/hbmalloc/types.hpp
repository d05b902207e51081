// The words every layer shares, and nothing else: streams, events, pools and
// physical granules. The bottom of the include graph: it includes only the
// standard library, so any header may include it.
#pragma once

#include <compare>
#include <cstdint>

namespace hbmalloc {

// A stream as an opaque integer (a cudaStream_t on the cuda backend; 0 is the
// default stream).
using StreamId = std::uintptr_t;

// A backend's marker of the work queued on a stream (a cudaEvent_t on cuda).
using EventId = std::uintptr_t;

// PyTorch's two pools: small requests (<= 1 MiB) and large ones.
enum class Pool : uint8_t { kSmall = 0, kLarge = 1 };

// A private pool's name (PyTorch's MempoolId_t: a CUDA graph's capture id or a
// graph_pool_handle). {0, 0} is the default pool and names no private pool.
struct PoolId {
  uint64_t first = 0, second = 0;
  auto operator<=>(const PoolId&) const = default;
};

// A physical memory handle of the VMM interface (0 is never a handle).
using GranuleId = std::uintptr_t;

// Granules created together, with consecutive ids first .. first + count - 1:
// policies keep runs, so their bookkeeping grows with how often memory was
// mapped, never with how many bytes are.
struct GranuleRun {
  GranuleId first = 0;
  uint64_t count = 0;
  GranuleId end() const { return first + count; }
};

}  // namespace hbmalloc
