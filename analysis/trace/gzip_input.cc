#include "trace/gzip_input.h"

#include <zlib.h>

#include <algorithm>
#include <climits>

#include "hbmalloc/error.hpp"

namespace hbmalloc::trace {
namespace {

[[noreturn]] void fail(const std::string& source, const std::string& problem) {
  throw Error(ErrorCode::kInvalidArgument, source + ": " + problem);
}

// Owns a z_stream set up for gzip decoding; inflateEnd runs on every path out.
class Inflater {
 public:
  explicit Inflater(const std::string& source) {
    if (inflateInit2(&z_, 16 + MAX_WBITS) != Z_OK) fail(source, "cannot start zlib");
  }
  ~Inflater() { inflateEnd(&z_); }
  Inflater(const Inflater&) = delete;
  Inflater& operator=(const Inflater&) = delete;
  z_stream& z() { return z_; }

 private:
  z_stream z_{};
};

}  // namespace

bool is_gzip(std::string_view bytes) {
  return bytes.size() >= 2 && static_cast<unsigned char>(bytes[0]) == 0x1f &&
         static_cast<unsigned char>(bytes[1]) == 0x8b;
}

std::string inflate_gzip(std::string_view bytes, const std::string& source, uint64_t max_bytes,
                         const std::function<void(std::string_view)>& accept_start) {
  Inflater inflater(source);
  z_stream& z = inflater.z();
  std::string out;
  // The trailer's size (mod 2^32) is exact for one member under 4 GiB: reserving
  // it keeps the string from doubling past what it holds.
  if (bytes.size() >= 18) {
    const auto* tail = reinterpret_cast<const unsigned char*>(bytes.data() + bytes.size() - 4);
    const uint64_t hint = uint64_t(tail[0]) | uint64_t(tail[1]) << 8 | uint64_t(tail[2]) << 16 | uint64_t(tail[3]) << 24;
    out.reserve(size_t(std::min<uint64_t>(hint, max_bytes) + 1));
  }
  bool started = false;
  constexpr size_t kChunk = size_t{1} << 20;
  size_t offset = 0;  // input consumed so far
  while (true) {
    // zlib counts in uInt; feed at most UINT_MAX at a time.
    size_t feed = std::min<size_t>(bytes.size() - offset, UINT_MAX);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data() + offset));
    z.avail_in = static_cast<uInt>(feed);
    // One byte past the cap is enough to know the cap was passed.
    size_t before = out.size();
    size_t room = static_cast<size_t>(std::min<uint64_t>(kChunk, max_bytes - before + 1));
    out.resize(before + room);
    z.next_out = reinterpret_cast<Bytef*>(out.data() + before);
    z.avail_out = static_cast<uInt>(room);
    int rc = inflate(&z, Z_NO_FLUSH);
    out.resize(before + (room - z.avail_out));
    offset += feed - z.avail_in;
    if (!started && accept_start && (out.size() >= 4096 || rc == Z_STREAM_END)) {
      accept_start(out);
      started = true;
    }
    if (out.size() > max_bytes)
      fail(source, "gzip stream inflates past " + std::to_string(max_bytes) +
                       " bytes (refused as a decompression bomb; " + kMaxInputFlag + " raises the limit)");
    if (rc == Z_STREAM_END) {
      // Another gzip member may follow (concatenated .gz files are valid).
      if (offset == bytes.size()) return out;
      if (!is_gzip(bytes.substr(offset)))
        fail(source, "garbage after the gzip stream at byte " + std::to_string(offset));
      if (inflateReset(&z) != Z_OK) fail(source, "cannot restart zlib");
    } else if (rc == Z_BUF_ERROR || (rc == Z_OK && offset == bytes.size() && z.avail_out != 0)) {
      // All input used, room left for output, and no end of stream: cut short.
      fail(source, "truncated gzip stream (ends at byte " + std::to_string(offset) + ")");
    } else if (rc != Z_OK) {
      fail(source, std::string("corrupt gzip stream: ") + (z.msg != nullptr ? z.msg : "zlib error"));
    }
  }
}

}  // namespace hbmalloc::trace
