// A block of device memory shared with another process (IPC), in one of two
// forms: page-mapped memory as POSIX file descriptors, one per piece (a
// granule), which the other process maps in order; or a plain segment
// (cudaMalloc) as its CUDA IPC handle. Descriptors travel between processes
// over a Unix socket (SCM_RIGHTS); whoever holds an IpcBlock owns its
// descriptors and closes them once sent or opened.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
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

// A block as bytes that travel wherever bytes do, inside a pickle as
// torch.multiprocessing sends CUDA tensors: a plain segment's CUDA IPC handle
// as it is; page-mapped memory's descriptors by the exporting process's id
// and their numbers there, which the importer takes with pidfd_getfd (Linux
// 5.6 or later, and leave to trace the exporter, as PyTorch's expandable
// segments need). The exporter keeps those descriptors open for as long as
// the handle may be opened.
std::string ipc_handle_bytes(const IpcBlock& block);
// The block a handle names, its descriptors duplicated into this process
// (the caller's to close). Throws Error(kInvalidArgument) for bytes that are
// no handle, Error(kBackend) naming the call when a descriptor cannot be taken.
IpcBlock ipc_block_from_handle(std::string_view bytes);

}  // namespace hbmalloc
