#include "trace/pickle_reader.h"

#include <bit>
#include <cstdio>
#include <cstring>

#include "hbmalloc/error.hpp"
#include "record/pickle_opcodes.h"

namespace hbmalloc::trace {
namespace {

using namespace pickle_op;


// Opcodes a data-only reader refuses by name: they import, call, build
// objects or reach outside the pickle.
const char* refused_name(uint8_t op) {
  switch (op) {
    case 'c': return "GLOBAL";
    case 0x93: return "STACK_GLOBAL";
    case 'R': return "REDUCE";
    case 'b': return "BUILD";
    case 'i': return "INST";
    case 'o': return "OBJ";
    case 0x81: return "NEWOBJ";
    case 0x92: return "NEWOBJ_EX";
    case 'P': return "PERSID";
    case 'Q': return "BINPERSID";
    case 0x82: return "EXT1";
    case 0x83: return "EXT2";
    case 0x84: return "EXT4";
    case 0x97: return "NEXT_BUFFER";
    case 0x98: return "READONLY_BUFFER";
    default: return nullptr;
  }
}

constexpr PickleNode kNoNode = UINT32_MAX;
constexpr size_t kMaxMarks = 10000;  // nesting deeper than this is not a snapshot

}  // namespace

const char* pickle_kind_name(PickleKind kind) {
  switch (kind) {
    case PickleKind::kNone: return "None";
    case PickleKind::kBool: return "bool";
    case PickleKind::kInt: return "int";
    case PickleKind::kFloat: return "float";
    case PickleKind::kStr: return "str";
    case PickleKind::kBytes: return "bytes";
    case PickleKind::kTuple: return "tuple";
    case PickleKind::kList: return "list";
    case PickleKind::kDict: return "dict";
    case PickleKind::kSet: return "set";
    case PickleKind::kFrozenSet: return "frozenset";
  }
  return "unknown";
}

size_t PickleTree::size(PickleNode n) const {
  const Node& node = nodes_[n];
  if (!is_container(n)) return 0;
  return node.kind == PickleKind::kDict ? node.value.u / 2 : node.value.u;
}

std::optional<PickleNode> PickleTree::find(PickleNode dict, std::string_view key) const {
  std::optional<PickleNode> found;
  for_each_pair(dict, [&](PickleNode k, PickleNode v) {
    if (!found && is_str(k) && as_str(k) == key) found = v;
  });
  return found;
}

// One pass over the opcodes; the stack holds node indices, `marks_` the stack
// heights at each MARK. Nothing recurses, so nesting depth costs no C++ stack.
class PickleParser {
 public:
  PickleParser(std::string_view bytes, const std::string& source) : in_(bytes), source_(source) {
    t_.input_ = bytes;
    t_.nodes_.reserve(bytes.size() / 8 + 16);
    t_.items_.reserve(bytes.size() / 4 + 16);
    t_.runs_.reserve(bytes.size() / 32 + 16);
    stack_.reserve(256);
    memo_.reserve(bytes.size() / 16 + 16);
    // Shared constants: None, False, True.
    t_.nodes_.push_back(scalar(PickleKind::kNone, 0));
    t_.nodes_.push_back(scalar(PickleKind::kBool, 0));
    t_.nodes_.push_back(scalar(PickleKind::kBool, 1));
  }

  PickleTree parse() {
    if (in_.size() > UINT32_MAX) fail("larger than 4 GiB; not supported");
    if (in_.size() < 2 || static_cast<uint8_t>(in_[0]) != kProto)
      fail("not a pickle of protocol 2 to 5 (no PROTO opcode at offset 0)");
    for (;;) {
      if (pos_ >= in_.size()) fail("truncated pickle: no STOP opcode before the end of the data");
      op_pos_ = pos_;
      const uint8_t op = static_cast<uint8_t>(in_[pos_++]);
      switch (op) {
        case kProto: {
          const uint8_t proto = u8();
          if (proto < 2 || proto > 5) fail("pickle protocol " + std::to_string(proto) + " is not supported (2 to 5 are)");
          break;
        }
        case kFrame: {
          const uint64_t len = le(8);
          if (len > in_.size() - pos_) truncated();
          break;  // frames only batch I/O; the opcodes inside are read as usual
        }
        case kStop: {
          if (!marks_.empty() || stack_.size() != 1)
            fail("malformed pickle: STOP at offset " + std::to_string(op_pos_) + " leaves " +
                 std::to_string(stack_.size()) + " items and " + std::to_string(marks_.size()) + " marks");
          t_.root_ = stack_[0];
          return std::move(t_);
        }
        case kMark:
          if (marks_.size() >= kMaxMarks) fail("nesting deeper than " + std::to_string(kMaxMarks) + " levels");
          marks_.push_back(stack_.size());
          break;
        case kPop:
          if (available() > 0) {
            stack_.pop_back();
          } else if (!marks_.empty()) {
            marks_.pop_back();
          } else {
            underflow();
          }
          break;
        case kPopMark:
          stack_.resize(pop_mark());
          break;
        case kDup:
          push(top());
          break;
        case kNone: push(0); break;
        case kNewFalse: push(1); break;
        case kNewTrue: push(2); break;
        case kBinInt: push_int(static_cast<int32_t>(le(4))); break;
        case kBinInt1: push_int(u8()); break;
        case kBinInt2: push_int(static_cast<int64_t>(le(2))); break;
        case kLong1: push_long(u8()); break;
        case kLong4: {
          const int64_t n = static_cast<int32_t>(le(4));
          if (n < 0) fail_at("negative LONG4 length");
          push_long(static_cast<uint64_t>(n));
          break;
        }
        case kBinFloat: {
          const uint64_t bits = __builtin_bswap64(le(8));  // big-endian on the wire
          PickleTree::Node n = scalar(PickleKind::kFloat, 0);
          n.value.f = std::bit_cast<double>(bits);
          push_node(n);
          break;
        }
        case kShortBinUnicode: push_text(PickleKind::kStr, u8()); break;
        case kBinUnicode: push_text(PickleKind::kStr, le(4)); break;
        case kBinUnicode8: push_text(PickleKind::kStr, le(8)); break;
        case kShortBinString: push_text(PickleKind::kBytes, u8()); break;
        case kBinString: {
          const int64_t n = static_cast<int32_t>(le(4));
          if (n < 0) fail_at("negative BINSTRING length");
          push_text(PickleKind::kBytes, static_cast<uint64_t>(n));
          break;
        }
        case kShortBinBytes: push_text(PickleKind::kBytes, u8()); break;
        case kBinBytes: push_text(PickleKind::kBytes, le(4)); break;
        case kBinBytes8:
        case kByteArray8: push_text(PickleKind::kBytes, le(8)); break;
        case kEmptyDict: push_node(container(PickleKind::kDict)); break;
        case kEmptyList: push_node(container(PickleKind::kList)); break;
        case kEmptySet: push_node(container(PickleKind::kSet)); break;
        case kEmptyTuple: push_node(container(PickleKind::kTuple)); break;
        case kTuple1: push_tuple_of(1); break;
        case kTuple2: push_tuple_of(2); break;
        case kTuple3: push_tuple_of(3); break;
        case kTuple: build_from_mark(PickleKind::kTuple); break;
        case kList: build_from_mark(PickleKind::kList); break;
        case kDict: build_from_mark(PickleKind::kDict); break;
        case kFrozenSet: build_from_mark(PickleKind::kFrozenSet); break;
        case kAppend: add_to(PickleKind::kList, 1, "APPEND"); break;
        case kSetItem: add_to(PickleKind::kDict, 2, "SETITEM"); break;
        case kAppends: add_from_mark(PickleKind::kList, "APPENDS"); break;
        case kSetItems: add_from_mark(PickleKind::kDict, "SETITEMS"); break;
        case kAddItems: add_from_mark(PickleKind::kSet, "ADDITEMS"); break;
        case kBinPut: put(u8()); break;
        case kLongBinPut: put(le(4)); break;
        case kMemoize: put(memo_count_); break;
        case kBinGet: get(u8()); break;
        case kLongBinGet: get(le(4)); break;
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          const char* name = refused_name(op);
          fail(std::string("unsupported opcode ") + hex + (name ? std::string(" ") + name : std::string()) +
               " at offset " + std::to_string(op_pos_) +
               (name ? " (a data-only reader never imports or calls)" : ""));
        }
      }
    }
  }

 private:
  static PickleTree::Node scalar(PickleKind kind, int64_t v) {
    PickleTree::Node n;
    n.kind = kind;
    n.value.i = v;
    return n;
  }
  static PickleTree::Node container(PickleKind kind) {
    PickleTree::Node n;
    n.kind = kind;
    n.value.u = 0;
    return n;
  }

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::kInvalidArgument, source_ + ": " + what);
  }
  [[noreturn]] void fail_at(const std::string& what) const {
    fail(what + " at offset " + std::to_string(op_pos_));
  }
  [[noreturn]] void truncated() const {
    fail("truncated pickle: the opcode at offset " + std::to_string(op_pos_) + " runs past the end of the data");
  }
  [[noreturn]] void underflow() const { fail_at("malformed pickle: stack underflow"); }

  uint8_t u8() {
    if (pos_ >= in_.size()) truncated();
    return static_cast<uint8_t>(in_[pos_++]);
  }
  uint64_t le(size_t n) {  // n-byte little-endian unsigned
    if (n > in_.size() - pos_) truncated();
    uint64_t v = 0;
    std::memcpy(&v, in_.data() + pos_, n);  // hosts are little-endian
    pos_ += n;
    return v;
  }

  size_t base() const { return marks_.empty() ? 0 : marks_.back(); }
  size_t available() const { return stack_.size() - base(); }
  PickleNode top() const {
    if (available() == 0) underflow();
    return stack_.back();
  }
  size_t pop_mark() {
    if (marks_.empty()) fail_at("malformed pickle: no MARK for the opcode");
    const size_t mark = marks_.back();
    marks_.pop_back();
    return mark;
  }

  void push(PickleNode n) { stack_.push_back(n); }
  void push_node(const PickleTree::Node& n) {
    if (t_.nodes_.size() >= kNoNode) fail("too many values");
    stack_.push_back(static_cast<PickleNode>(t_.nodes_.size()));
    t_.nodes_.push_back(n);
  }
  void push_int(int64_t v) { push_node(scalar(PickleKind::kInt, v)); }
  // n-byte two's complement little-endian. Beyond 8 bytes the extra bytes
  // must only extend the sign: the value has to fit int64 or uint64.
  void push_long(uint64_t n) {
    if (n > in_.size() - pos_) truncated();
    const auto* p = reinterpret_cast<const uint8_t*>(in_.data() + pos_);
    pos_ += n;
    uint64_t v = 0;
    std::memcpy(&v, p, n < 8 ? n : 8);
    if (n <= 8) {
      if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign-extend
      push_int(static_cast<int64_t>(v));
      return;
    }
    const uint8_t ext = p[n - 1] == 0xff ? 0xff : 0x00;
    for (uint64_t i = 8; i < n; ++i)
      if (p[i] != ext) fail_at("integer wider than 64 bits");
    if (ext == 0xff && !(v >> 63)) fail_at("integer wider than 64 bits");
    push_int(static_cast<int64_t>(v));
    if (ext == 0x00 && (v >> 63)) t_.nodes_.back().b = PickleTree::kBigUint;
  }
  void push_text(PickleKind kind, uint64_t len) {
    if (len > in_.size() - pos_) truncated();
    PickleTree::Node n = scalar(kind, 0);
    n.a = static_cast<uint32_t>(pos_);
    n.value.u = len;
    pos_ += len;
    push_node(n);
  }

  // Appends `count` nodes starting at stack_[from] to container `c`.
  void append_items(PickleNode c, size_t from, size_t count) {
    if (count == 0) return;
    if (t_.items_.size() + count >= UINT32_MAX || t_.runs_.size() >= UINT32_MAX - 1) fail("too many values");
    const auto run = static_cast<uint32_t>(t_.runs_.size());
    t_.runs_.push_back({static_cast<uint32_t>(t_.items_.size()), static_cast<uint32_t>(count), PickleTree::kNoRun});
    t_.items_.insert(t_.items_.end(), stack_.begin() + static_cast<ptrdiff_t>(from),
                     stack_.begin() + static_cast<ptrdiff_t>(from + count));
    PickleTree::Node& node = t_.nodes_[c];
    if (node.a == PickleTree::kNoRun) {
      node.a = run;
    } else {
      t_.runs_[node.b].next = run;
    }
    node.b = run;
    node.value.u += count;
  }

  void push_tuple_of(size_t n) {
    if (available() < n) underflow();
    const size_t from = stack_.size() - n;
    push_node(container(PickleKind::kTuple));
    const PickleNode tuple = stack_.back();
    append_items(tuple, from, n);
    stack_.erase(stack_.begin() + static_cast<ptrdiff_t>(from), stack_.end() - 1);
  }

  void build_from_mark(PickleKind kind) {
    const size_t mark = pop_mark();
    const size_t count = stack_.size() - mark;
    if (kind == PickleKind::kDict && count % 2 != 0) fail_at("malformed pickle: DICT with an odd number of items");
    push_node(container(kind));
    const PickleNode c = stack_.back();
    append_items(c, mark, count);
    stack_[mark] = c;
    stack_.resize(mark + 1);
  }

  PickleNode target(PickleKind kind, size_t below, const char* op) const {
    if (below <= base()) underflow();
    const PickleNode c = stack_[below - 1];
    if (t_.nodes_[c].kind != kind)
      fail_at(std::string(op) + " into a " + pickle_kind_name(t_.nodes_[c].kind) + ", not a " + pickle_kind_name(kind));
    return c;
  }

  void add_to(PickleKind kind, size_t n, const char* op) {
    if (available() < n + 1) underflow();
    const size_t from = stack_.size() - n;
    append_items(target(kind, from, op), from, n);
    stack_.resize(from);
  }

  void add_from_mark(PickleKind kind, const char* op) {
    const size_t mark = pop_mark();
    const size_t count = stack_.size() - mark;
    if (kind == PickleKind::kDict && count % 2 != 0) fail_at(std::string("malformed pickle: ") + op + " with an odd number of items");
    append_items(target(kind, mark, op), mark, count);
    stack_.resize(mark);
  }

  void put(uint64_t index) {
    const PickleNode n = top();
    // pickle.dump numbers memo entries densely; a valid index is below the
    // number of opcodes, hence below the input size.
    if (index >= in_.size()) fail_at("memo index " + std::to_string(index) + " out of range");
    if (index >= memo_.size()) memo_.resize(index + 1, kNoNode);
    if (memo_[index] == kNoNode) ++memo_count_;  // MEMOIZE stores at len(memo), as Python does
    memo_[index] = n;
  }
  void get(uint64_t index) {
    if (index >= memo_.size() || memo_[index] == kNoNode)
      fail_at("memo index " + std::to_string(index) + " was never stored");
    push(memo_[index]);
  }

  std::string_view in_;
  const std::string& source_;
  size_t pos_ = 0;
  size_t op_pos_ = 0;
  PickleTree t_;
  std::vector<PickleNode> stack_;
  std::vector<size_t> marks_;
  std::vector<PickleNode> memo_;
  uint64_t memo_count_ = 0;
};

PickleTree parse_pickle(std::string_view bytes, const std::string& source) {
  return PickleParser(bytes, source).parse();
}

}  // namespace hbmalloc::trace
