// A block of device memory shared with another process (IPC): the physical
// memory behind it as POSIX file descriptors, one per piece (a granule of
// page-mapped memory), which the other process maps in order. Descriptors
// travel between processes over a Unix socket (SCM_RIGHTS); whoever holds an
// IpcBlock owns its descriptors and closes them once sent or opened.
#pragma once

#include <cstdint>
#include <vector>

namespace hbmalloc {

struct IpcPiece {
  int fd = -1;
  uint64_t bytes = 0;
};

struct IpcBlock {
  std::vector<IpcPiece> pieces;  // in address order
  uint64_t offset = 0;           // where the block starts in the first piece
  uint64_t size = 0;             // the block's bytes (what was asked for)
};

}  // namespace hbmalloc
