#include "hbmalloc/ipc.hpp"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "hbmalloc/error.hpp"

namespace hbmalloc {

namespace {

constexpr char kMagic[8] = "hbmipc1";
constexpr uint32_t kMaxPieces = 1u << 20;

struct Head {
  char magic[8];
  uint32_t segment;  // 1: segment_handle; 0: pieces follow
  int32_t pid;
  uint64_t offset, size;
  unsigned char segment_handle[64];
  uint32_t pieces;
  uint32_t reserved;
};
struct Piece {
  int32_t fd;
  uint32_t reserved;
  uint64_t bytes;
};

[[noreturn]] void bad(const std::string& why) {
  throw Error(ErrorCode::kInvalidArgument, "not an hbmalloc IPC handle: " + why);
}

// Closes the descriptors taken so far when a later one fails.
struct Taken {
  IpcBlock& block;
  bool done = false;
  ~Taken() {
    if (!done)
      for (const IpcPiece& p : block.pieces)
        if (p.fd >= 0) ::close(p.fd);
  }
};

}  // namespace

std::string ipc_handle_bytes(const IpcBlock& block) {
  Head head{};
  std::memcpy(head.magic, kMagic, sizeof head.magic);
  head.segment = block.segment ? 1 : 0;
  head.pid = int32_t(getpid());
  head.offset = block.offset;
  head.size = block.size;
  std::memcpy(head.segment_handle, block.segment_handle.data(), sizeof head.segment_handle);
  head.pieces = uint32_t(block.pieces.size());
  std::string out(reinterpret_cast<const char*>(&head), sizeof head);
  for (const IpcPiece& p : block.pieces) {
    const Piece piece{int32_t(p.fd), 0, p.bytes};
    out.append(reinterpret_cast<const char*>(&piece), sizeof piece);
  }
  return out;
}

IpcBlock ipc_block_from_handle(std::string_view bytes) {
  Head head{};
  if (bytes.size() < sizeof head) bad(std::to_string(bytes.size()) + " bytes, fewer than its header");
  std::memcpy(&head, bytes.data(), sizeof head);
  if (std::memcmp(head.magic, kMagic, sizeof head.magic) != 0) bad("its first bytes are not hbmalloc's");
  if (head.segment > 1 || head.pieces > kMaxPieces || (head.segment == 1) != (head.pieces == 0))
    bad("a segment with pieces, or pieces without a count");
  if (bytes.size() != sizeof head + size_t(head.pieces) * sizeof(Piece))
    bad(std::to_string(bytes.size()) + " bytes for " + std::to_string(head.pieces) + " pieces");
  IpcBlock block;
  block.segment = head.segment == 1;
  block.offset = head.offset;
  block.size = head.size;
  std::memcpy(block.segment_handle.data(), head.segment_handle, sizeof head.segment_handle);
  if (block.segment) return block;

  const int pidfd = int(syscall(SYS_pidfd_open, pid_t(head.pid), 0));
  if (pidfd < 0)
    throw Error(ErrorCode::kBackend, "IPC handle: pidfd_open of the exporting process " + std::to_string(head.pid) +
                                         " failed: " + std::strerror(errno));
  Taken taken{block};
  for (uint32_t i = 0; i < head.pieces; ++i) {
    Piece piece{};
    std::memcpy(&piece, bytes.data() + sizeof head + i * sizeof piece, sizeof piece);
    const int fd = int(syscall(SYS_pidfd_getfd, pidfd, int(piece.fd), 0));
    if (fd < 0) {
      const int err = errno;
      ::close(pidfd);
      throw Error(ErrorCode::kBackend, "IPC handle: pidfd_getfd of descriptor " + std::to_string(piece.fd) +
                                           " of process " + std::to_string(head.pid) + " failed: " + std::strerror(err) +
                                           " (it may have freed the block, or this process may not trace it)");
    }
    block.pieces.push_back({fd, piece.bytes});
  }
  ::close(pidfd);
  taken.done = true;
  return block;
}

}  // namespace hbmalloc
