// .hbt: hbmalloc's own binary trace. A 16-byte file header (magic, version),
// then little-endian records, each prefixed by its type and payload length so
// a reader skips record types a newer minor version added. The format is
// specified byte by byte in docs/hbt-format.md; this header holds what the
// writer (record/hbt_writer.h, in the runtime) and the reader (read_hbt in
// the analyser's trace/read_trace.h) share.
#pragma once

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "record/trace.h"

namespace hbmalloc::trace {

// PNG-style: a high first byte (never a pickle's 0x80, never text), then a
// CR LF / ^Z / LF that text-mode transfers would mangle.
inline constexpr std::string_view kHbtMagic{"\x89HBT\r\n\x1a\n", 8};
constexpr uint16_t kHbtMajor = 1;  // a reader refuses other majors
constexpr uint16_t kHbtMinor = 2;  // newer minors only add record types or trailing fields (1: stacks, 2: annotations)

inline bool is_hbt(std::string_view bytes) { return bytes.substr(0, kHbtMagic.size()) == kHbtMagic; }

enum class HbtRecord : uint16_t {
  kHeader = 1,
  kDevice = 2,
  kLiveBlock = 3,
  kSegment = 4,
  kEvent = 5,
  kEnd = 6,  // last: a file without it was cut short
  // 1.1: stacks, each frame and stack once, and which stack a block's
  // allocation recorded.
  kFrame = 7,
  kStack = 8,
  kBlockStack = 9,
  // 1.2: annotations on the timeline, and the user metadata the events carry.
  kAnnotation = 10,
  kUserMetadata = 11,
};

enum class SegmentWhen : uint8_t { kAtStart = 0, kAtEnd = 1 };

struct HbtHeader {
  std::string recorder;
  std::optional<uint64_t> capacity;
  bool has_history = true;
  std::vector<std::pair<std::string, std::string>> settings;
};

// Record layout: fixed sizes and flag bits.
namespace hbt {
inline constexpr size_t kFileHeaderBytes = 16;    // magic, u16 major, u16 minor, u32 reserved
inline constexpr size_t kRecordHeaderBytes = 8;   // u16 type, u16 flags, u32 payload length
inline constexpr size_t kHeaderMinBytes = 20;     // u32 flags, u64 capacity, u32 recorder length, u32 settings
inline constexpr size_t kDeviceBytes = 4;
inline constexpr size_t kLiveBlockBytes = 40;
inline constexpr size_t kSegmentBytes = 32;       // before its blocks
inline constexpr size_t kSegmentBlockBytes = 40;
inline constexpr size_t kEventBytes = 40;
inline constexpr size_t kEndBytes = 8;            // u64 records before it
inline constexpr size_t kFrameMinBytes = 16;      // str filename, str name (lengths), i64 line
inline constexpr size_t kStackMinBytes = 4;       // u32 frame count, then the frame ids
inline constexpr size_t kBlockStackBytes = 12;    // u16 device, u16 reserved, u32 block id, u32 stack id
inline constexpr size_t kAnnotationMinBytes = 16;  // u16 device, u16 reserved, i64 time, u32 fields, then (str, str)s
inline constexpr size_t kUserMetadataMinBytes = 8; // u16 device, u16 reserved, str text

inline constexpr uint32_t kHeaderHasHistory = 1u << 0;
inline constexpr uint32_t kHeaderHasCapacity = 1u << 1;
inline constexpr uint16_t kDeviceHasSegmentPicture = 1u << 0;
inline constexpr uint8_t kSegmentSmallPool = 1u << 0;
inline constexpr uint8_t kSegmentExpandable = 1u << 1;
inline constexpr uint8_t kLastAction = static_cast<uint8_t>(Action::kMarker);
inline constexpr uint8_t kLastBlockState = static_cast<uint8_t>(BlockState::kInactive);

inline bool is_block_action(Action a) {
  return a == Action::kAlloc || a == Action::kFreeRequested || a == Action::kFree;
}
}  // namespace hbt

}  // namespace hbmalloc::trace
