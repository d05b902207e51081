// Sharing a block between two processes through the C ABI (hbm_ipc_export,
// hbm_ipc_open, hbm_ipc_close) on the cuda backend: the descriptors travel
// over a Unix socket, bytes written by one process are read by the other, and
// the block stays readable in the importer after the exporter freed it and
// emptied its cache. Every process that touches CUDA is a fresh child of the
// test (forked before any CUDA call), as two training processes would be.
// Skips without a CUDA device.
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "gpu_support.h"
#include "hbmalloc/allocator.hpp"
#include "hbmalloc/error.hpp"
#include "hbmalloc/hbmalloc.h"
#include "hbmalloc/ipc.hpp"

namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr int kMaxPieces = 64;

// What the exporter sends beside the descriptors.
struct Header {
  long pieces = 0;
  hbm_ipc_block block{};
  uint64_t bytes[kMaxPieces] = {};
};

bool send_block(int sock, const Header& h, const hbm_ipc_piece* pieces) {
  std::vector<int> fds;
  for (long i = 0; i < h.pieces; ++i) fds.push_back(pieces[i].fd);
  iovec io{const_cast<Header*>(&h), sizeof h};
  msghdr msg{};
  msg.msg_iov = &io;
  msg.msg_iovlen = 1;
  if (fds.empty()) return sendmsg(sock, &msg, 0) == ssize_t(sizeof h);  // a plain segment: the handle only
  std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  return sendmsg(sock, &msg, 0) == ssize_t(sizeof h);
}

bool receive_block(int sock, Header& h, hbm_ipc_piece* pieces) {
  iovec io{&h, sizeof h};
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxPieces));
  msghdr msg{};
  msg.msg_iov = &io;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  if (recvmsg(sock, &msg, MSG_WAITALL) != ssize_t(sizeof h)) return false;
  if (h.pieces == 0) return h.block.segment == 1;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_type != SCM_RIGHTS || h.pieces < 0 || h.pieces > kMaxPieces) return false;
  std::vector<int> fds(size_t(h.pieces));
  std::memcpy(fds.data(), CMSG_DATA(c), sizeof(int) * fds.size());
  for (long i = 0; i < h.pieces; ++i) pieces[i] = {fds[size_t(i)], h.bytes[i]};
  return true;
}

bool say(int sock, char c) { return write(sock, &c, 1) == 1; }
bool hear(int sock, char want) {
  char c = 0;
  return read(sock, &c, 1) == 1 && c == want;
}

uint8_t pattern(uint64_t i, int round) { return uint8_t((i * 131 + i / 4096 + round * 7) & 0xFF); }

// Whether the device bytes at p are pattern `round` on [from, to) (other rounds elsewhere are not checked).
bool holds(const void* p, uint64_t from, uint64_t to, int round) {
  std::vector<uint8_t> host(to - from);
  if (cudaMemcpy(host.data(), static_cast<const uint8_t*>(p) + from, host.size(), cudaMemcpyDeviceToHost) != cudaSuccess)
    return false;
  for (uint64_t i = from; i < to; ++i)
    if (host[i - from] != pattern(i, round)) return false;
  return true;
}
bool fill(void* p, uint64_t from, uint64_t to, int round) {
  std::vector<uint8_t> host(to - from);
  for (uint64_t i = from; i < to; ++i) host[i - from] = pattern(i, round);
  return cudaMemcpy(static_cast<uint8_t*>(p) + from, host.data(), host.size(), cudaMemcpyHostToDevice) == cudaSuccess;
}

// Runs body in a child with HBMALLOC_CONF=conf; its exit code is body's result.
pid_t spawn(const std::string& conf, const std::function<int()>& body) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    setenv("HBMALLOC_CONF", conf.c_str(), 1);
    _exit(body());
  }
  return pid;
}
int wait_for(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// Whether a device is there, asked in a child so this process stays free of CUDA.
bool device_visible() {
  return wait_for(spawn("backend:cuda", [] { return hbmalloc::gpu_test::visible_devices() > 0 ? 0 : 1; })) == 0;
}

using DoubleHandles = uint64_t (*)(void);

int exporter(int sock, uint64_t bytes, bool plain) {
  void* p = hbm_malloc(ssize_t(bytes), 0, nullptr);
  if (p == nullptr || !fill(p, 0, bytes, 1)) return 10;
  Header h;
  hbm_ipc_piece pieces[kMaxPieces];
  h.pieces = hbm_ipc_export(p, 0, &h.block, pieces, kMaxPieces);
  if (h.pieces < 0 || (h.pieces == 0) != plain || h.block.segment != int(plain)) {
    std::fprintf(stderr, "export: %ld pieces, segment %d: %s\n", h.pieces, h.block.segment, hbm_last_error());
    return 11;
  }
  if (h.block.size != bytes) return 12;
  for (long i = 0; i < h.pieces; ++i) h.bytes[i] = pieces[i].bytes;
  if (!send_block(sock, h, pieces)) return 13;
  for (long i = 0; i < h.pieces; ++i) close(pieces[i].fd);
  if (!hear(sock, 'A')) return 14;
  // The importer's writes are here.
  if (!holds(p, 0, 4096, 2) || !holds(p, 4096, bytes, 1)) return 15;
  hbm_free(p, ssize_t(bytes), 0, nullptr);
  hbm_empty_cache();
  if (auto handles = reinterpret_cast<DoubleHandles>(dlsym(RTLD_DEFAULT, "hbm_double_handles")))
    if (handles() != 0) return 16;  // every granule given back here
  return say(sock, 'F') && hear(sock, 'B') ? 0 : 17;
}

int importer(int sock, uint64_t bytes) {
  Header h;
  hbm_ipc_piece pieces[kMaxPieces];
  if (!receive_block(sock, h, pieces)) return 20;
  void* q = hbm_ipc_open(0, &h.block, pieces, size_t(h.pieces));
  for (long i = 0; i < h.pieces; ++i) close(pieces[i].fd);  // the mapping keeps the memory
  if (q == nullptr) {
    std::fprintf(stderr, "open: %s\n", hbm_last_error());
    return 21;
  }
  if (!holds(q, 0, bytes, 1)) return 22;
  if (!fill(q, 0, 4096, 2) || !say(sock, 'A')) return 23;
  if (!hear(sock, 'F')) return 24;
  // The exporter freed the block and gave its memory back: this mapping holds it still.
  if (!holds(q, 0, 4096, 2) || !holds(q, 4096, bytes, 1)) return 25;
  if (hbm_ipc_close(q, 0) != 0) return 26;
  if (hbm_ipc_close(q, 0) != -1 || std::string(hbm_last_error()).find("not a block") == std::string::npos) return 27;
  return say(sock, 'B') ? 0 : 28;
}

// Page-mapped blocks (large, and small ones on slabs) as granule descriptors;
// with vmm:off, plain segments as their CUDA IPC handle.
TEST(CudaIpc, TwoProcessesShareABlock) {
  if (!device_visible()) GTEST_SKIP() << "no CUDA device visible";
  for (const char* conf : {"backend:cuda", "backend:cuda,vmm:off"})
    for (uint64_t bytes : {5 * kMiB + 123, uint64_t(300) << 10, 40 * kMiB}) {
      const bool plain = std::string(conf).find("vmm:off") != std::string::npos;
      int socks[2];
      ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, socks), 0);
      pid_t a = spawn(conf, [&] { return exporter(socks[0], bytes, plain); });
      pid_t b = spawn(conf, [&] { return importer(socks[1], bytes); });
      close(socks[0]);
      close(socks[1]);
      EXPECT_EQ(wait_for(a), 0) << conf << ", " << bytes << " bytes: the exporter";
      EXPECT_EQ(wait_for(b), 0) << conf << ", " << bytes << " bytes: the importer";
    }
}

// The handle as bytes (what torch.multiprocessing pickles): no descriptor
// travels, the importer takes them from the exporter with pidfd_getfd.
TEST(CudaIpc, AHandleAsBytesOpensInAnotherProcess) {
  if (!device_visible()) GTEST_SKIP() << "no CUDA device visible";
  for (const char* conf : {"backend:cuda", "backend:cuda,vmm:off"}) {
    const uint64_t bytes = 6 * kMiB + 512;
    int socks[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, socks), 0);
    pid_t a = spawn(conf, [&] {
      hbmalloc::Allocator alloc(hbmalloc::Config::from_env(), 0);
      void* p = alloc.malloc(bytes);
      if (!fill(p, 0, bytes, 3)) return 1;
      hbmalloc::IpcBlock block = alloc.share(p);
      const std::string handle = hbmalloc::ipc_handle_bytes(block);
      const uint64_t n = handle.size();
      if (write(socks[0], &n, sizeof n) != ssize_t(sizeof n) || write(socks[0], handle.data(), n) != ssize_t(n)) return 2;
      if (!hear(socks[0], 'A')) return 3;  // opened and checked there: the descriptors may close
      for (const hbmalloc::IpcPiece& piece : block.pieces) close(piece.fd);
      alloc.free(p);
      return 0;
    });
    pid_t b = spawn(conf, [&] {
      uint64_t n = 0;
      if (read(socks[1], &n, sizeof n) != ssize_t(sizeof n) || n > (1u << 20)) return 10;
      std::string handle(n, '\0');
      if (recv(socks[1], handle.data(), n, MSG_WAITALL) != ssize_t(n)) return 11;
      hbmalloc::Allocator alloc(hbmalloc::Config::from_env(), 0);
      hbmalloc::IpcBlock block = hbmalloc::ipc_block_from_handle(handle);
      void* q = alloc.open_shared(block);
      for (const hbmalloc::IpcPiece& piece : block.pieces) close(piece.fd);
      if (!holds(q, 0, bytes, 3)) return 12;
      alloc.close_shared(q);
      return say(socks[1], 'A') ? 0 : 13;
    });
    close(socks[0]);
    close(socks[1]);
    EXPECT_EQ(wait_for(a), 0) << conf << ": the exporter";
    EXPECT_EQ(wait_for(b), 0) << conf << ": the importer";
  }
  // Bytes that are no handle, and a handle whose process is gone.
  EXPECT_THROW(hbmalloc::ipc_block_from_handle("hbmipc1 but nothing more"), hbmalloc::Error);
  hbmalloc::IpcBlock gone;
  gone.pieces.push_back({3, 2 * kMiB});
  gone.size = 4096;
  std::string handle = hbmalloc::ipc_handle_bytes(gone);
  const int32_t no_such_pid = 0x3FFFFFF0;
  std::memcpy(handle.data() + 12, &no_such_pid, sizeof no_such_pid);  // the pid field, after magic and kind
  try {
    hbmalloc::ipc_block_from_handle(handle);
    ADD_FAILURE() << "a handle of no process opened";
  } catch (const hbmalloc::Error& e) {
    EXPECT_EQ(e.code(), hbmalloc::ErrorCode::kBackend);
    EXPECT_NE(std::string(e.what()).find("pidfd_open"), std::string::npos) << e.what();
  }
}

// Each refusal is -1 with a message naming why, and leaks no descriptor.
TEST(CudaIpc, RefusalsAreNamed) {
  if (!device_visible()) GTEST_SKIP() << "no CUDA device visible";
  auto refused = [](void* p, const char* want) {
    hbm_ipc_piece pieces[kMaxPieces];
    hbm_ipc_block block{};
    if (hbm_ipc_export(p, 0, &block, pieces, kMaxPieces) != -1) return false;
    if (std::string(hbm_last_error()).find(want) == std::string::npos) {
      std::fprintf(stderr, "expected \"%s\" in: %s\n", want, hbm_last_error());
      return false;
    }
    return true;
  };
  const auto fds_open = [] {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
  };
  EXPECT_EQ(wait_for(spawn("backend:cuda", [&] {
              int x = 0;
              if (!refused(&x, "not a live block")) return 1;
              void* p = hbm_malloc(9 * kMiB, 0, nullptr);
              hbm_ipc_piece few[1];
              hbm_ipc_block block{};
              const size_t before = fds_open();
              const long n = hbm_ipc_export(p, 0, &block, few, 1);
              if (n < 2 || fds_open() != before) return 2;  // told how many, none opened
              hbm_ipc_piece bad{-1, 2 * kMiB};
              hbm_ipc_block bad_block{0, 4096, 0, {}};
              if (hbm_ipc_open(0, &bad_block, &bad, 1) != nullptr) return 3;
              if (hbm_ipc_open(0, &bad_block, nullptr, 0) != nullptr) return 5;  // pages without pieces
              int y = 0;
              if (hbm_ipc_close(&y, 0) != -1) return 4;
              return 0;
            })),
            0);
  EXPECT_EQ(wait_for(spawn("backend:cuda,ipc:off", [&] {
              void* p = hbm_malloc(9 * kMiB, 0, nullptr);
              return p != nullptr && refused(p, "ipc:off") ? 0 : 1;
            })),
            0);
  EXPECT_EQ(wait_for(spawn("backend:sim", [&] {
              void* p = hbm_malloc(9 * kMiB, 0, nullptr);
              return p != nullptr && refused(p, "cannot share memory with other processes") ? 0 : 1;
            })),
            0);
}

}  // namespace
