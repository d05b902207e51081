// A small pickle emitter (protocol 4, builtin types only) that Python's
// pickle.load and PyTorch's memory viewer read. Values are written in order;
// containers are opened and closed around their items. Repeated strings are
// written once and referenced through the memo, as pickle.dump does.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hbmalloc::trace {

class PickleWriter {
 public:
  PickleWriter();

  void none();
  void boolean(bool v);
  void integer(int64_t v);
  void uinteger(uint64_t v);  // up to 2^64-1
  void floating(double v);
  void str(std::string_view s);  // UTF-8 text, memoized
  void bytes(std::string_view b);

  // A dict's items are key, value, key, value...
  void begin_dict();
  // The same, remembered in the memo: what it returns names the dict (filled
  // by then) to memo_get, so an object written many times is written once.
  uint32_t begin_memoized_dict();
  void memo_get(uint32_t index);
  void begin_list();
  void begin_tuple();
  void end();  // closes the innermost open container

  // Closes the pickle (every container must be closed) and returns it.
  std::string finish();

 private:
  enum class Open : uint8_t { kDict, kList, kTuple };
  struct Frame {
    Open kind;
    bool marked;  // a MARK was written before its first item
  };
  void before_value();
  void op(uint8_t code) { out_.push_back(static_cast<char>(code)); }
  void le(uint64_t v, int n);
  // The 1-, 4- or 8-byte length form of a str or bytes opcode, then the data.
  void length_prefixed(uint8_t op1, uint8_t op4, uint8_t op8, std::string_view data);

  std::string out_;
  std::vector<Frame> open_;
  std::unordered_map<std::string, uint32_t> memo_;  // strings, by their memo index
  uint32_t memo_count_ = 0;                         // memo entries so far (strings and dicts)
};

}  // namespace hbmalloc::trace
