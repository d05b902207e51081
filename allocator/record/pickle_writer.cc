#include "record/pickle_writer.h"

#include <bit>
#include <cstring>

#include "hbmalloc/error.hpp"
#include "record/pickle_opcodes.h"

namespace hbmalloc::trace {
using namespace pickle_op;

PickleWriter::PickleWriter() {
  op(kProto);
  op(4);
}

void PickleWriter::le(uint64_t v, int n) {
  for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void PickleWriter::before_value() {
  if (open_.empty() || open_.back().marked) return;
  op(kMark);
  open_.back().marked = true;
}

void PickleWriter::none() {
  before_value();
  op(kNone);
}

void PickleWriter::boolean(bool v) {
  before_value();
  op(v ? kNewTrue : kNewFalse);
}

void PickleWriter::integer(int64_t v) {
  before_value();
  if (v >= 0 && v <= 0xff) {
    op(kBinInt1);
    le(static_cast<uint64_t>(v), 1);
  } else if (v >= 0 && v <= 0xffff) {
    op(kBinInt2);
    le(static_cast<uint64_t>(v), 2);
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    op(kBinInt);
    le(static_cast<uint64_t>(v), 4);
  } else {
    // Shortest two's complement that keeps the sign bit right.
    int n = 8;
    while (n > 1) {
      const int64_t shifted = v >> (8 * (n - 1) - 1);
      if (shifted != 0 && shifted != -1) break;
      --n;
    }
    op(kLong1);
    op(static_cast<uint8_t>(n));
    le(static_cast<uint64_t>(v), n);
  }
}

void PickleWriter::uinteger(uint64_t v) {
  if (v <= static_cast<uint64_t>(INT64_MAX)) return integer(static_cast<int64_t>(v));
  before_value();
  op(kLong1);
  op(9);  // eight bytes and a zero byte that keeps it positive
  le(v, 8);
  op(0);
}

void PickleWriter::floating(double v) {
  before_value();
  op(kBinFloat);
  const auto bits = std::bit_cast<uint64_t>(v);
  for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
}

void PickleWriter::memo_get(uint32_t index) {
  before_value();
  if (index <= 0xff) {
    op(kBinGet);
    le(index, 1);
  } else {
    op(kLongBinGet);
    le(index, 4);
  }
}

void PickleWriter::str(std::string_view s) {
  if (auto it = memo_.find(std::string(s)); it != memo_.end()) return memo_get(it->second);
  before_value();
  length_prefixed(kShortBinUnicode, kBinUnicode, kBinUnicode8, s);
  if (memo_count_ < UINT32_MAX) {
    op(kMemoize);
    memo_.emplace(std::string(s), memo_count_++);
  }
}

uint32_t PickleWriter::begin_memoized_dict() {
  if (memo_count_ == UINT32_MAX) throw Error(ErrorCode::kInvalidArgument, "pickle writer: memo full");
  begin_dict();
  op(kMemoize);
  return memo_count_++;
}

void PickleWriter::bytes(std::string_view b) {
  before_value();
  length_prefixed(kShortBinBytes, kBinBytes, kBinBytes8, b);
}

void PickleWriter::length_prefixed(uint8_t op1, uint8_t op4, uint8_t op8, std::string_view data) {
  if (data.size() <= 0xff) {
    op(op1);
    le(data.size(), 1);
  } else if (data.size() <= UINT32_MAX) {
    op(op4);
    le(data.size(), 4);
  } else {
    op(op8);
    le(data.size(), 8);
  }
  out_.append(data);
}

void PickleWriter::begin_dict() {
  before_value();
  op(kEmptyDict);
  open_.push_back({Open::kDict, false});
}

void PickleWriter::begin_list() {
  before_value();
  op(kEmptyList);
  open_.push_back({Open::kList, false});
}

void PickleWriter::begin_tuple() {
  before_value();
  open_.push_back({Open::kTuple, false});
}

void PickleWriter::end() {
  if (open_.empty()) throw Error(ErrorCode::kInvalidArgument, "pickle writer: end() with no open container");
  const Frame f = open_.back();
  open_.pop_back();
  switch (f.kind) {
    case Open::kDict:
      if (f.marked) op(kSetItems);
      break;
    case Open::kList:
      if (f.marked) op(kAppends);
      break;
    case Open::kTuple:
      op(f.marked ? kTuple : kEmptyTuple);
      break;
  }
}

std::string PickleWriter::finish() {
  if (!open_.empty()) throw Error(ErrorCode::kInvalidArgument, "pickle writer: finish() with open containers");
  op(kStop);
  return std::move(out_);
}

}  // namespace hbmalloc::trace
