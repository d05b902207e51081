// A block of device memory shared with another process (IPC), in one of two
// forms: page-mapped memory as POSIX file descriptors, one per piece (a
// granule), which the other process maps in order; or a plain segment
// (cudaMalloc) as its CUDA IPC handle. Descriptors travel between processes
// over a Unix socket (SCM_RIGHTS); whoever holds an IpcBlock owns its
// descriptors and closes them once sent or opened.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace hbmalloc {

struct IpcPiece {
  int fd = -1;
  uint64_t bytes = 0;
};

struct IpcBlock {
  std::vector<IpcPiece> pieces;  // page-mapped memory, in address order
  // A plain segment instead (no pieces): its cudaIpcMemHandle_t.
  bool segment = false;
  std::array<unsigned char, 64> segment_handle{};
  uint64_t offset = 0;  // where the block starts in the first piece, or in the segment
  uint64_t size = 0;    // the block's bytes (what was asked for)
};

}  // namespace hbmalloc
