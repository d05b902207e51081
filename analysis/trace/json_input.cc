#include "trace/json_input.h"

#include <charconv>

#include "hbmalloc/error.hpp"
#include "record/safe_text.h"

namespace hbmalloc::trace {
namespace {

[[noreturn]] void bad_field(std::string_view key, const std::string& where, const char* expected) {
  throw Error(ErrorCode::kInvalidArgument,
              where + ": \"" + printable(key) + "\" must be " + expected);
}

// Whole-string integer parse in `base`; false on any leftover or overflow.
template <typename Int>
bool parse_int(std::string_view text, Int& value, int base = 10) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, base);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

std::string printable(std::string_view text, size_t limit) {
  std::string out = safe_text(text.substr(0, limit));
  if (text.size() > limit) out += "...";
  return out;
}

bool json_nests_deeper_than(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

namespace {

void check_depth(std::string_view text, const std::string& where) {
  if (json_nests_deeper_than(text))
    throw Error(ErrorCode::kInvalidArgument,
                where + ": JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels (refused)");
}

// Builds the document from nlohmann's SAX events, deciding on each element of
// one top-level array as soon as it ends. Only the value on top of the stack
// grows, so the pointers below it stay valid.
class KeepingBuilder {
 public:
  KeepingBuilder(std::string_view array_key, const std::function<bool(const Json&)>& keep)
      : array_key_(array_key), keep_(keep) {}

  bool null() { return add(nullptr); }
  bool boolean(bool v) { return add(v); }
  bool number_integer(Json::number_integer_t v) { return add(v); }
  bool number_unsigned(Json::number_unsigned_t v) { return add(v); }
  bool number_float(Json::number_float_t v, const Json::string_t&) { return add(v); }
  bool string(Json::string_t& v) { return add(std::move(v)); }
  bool binary(Json::binary_t& v) { return add(Json::binary(std::move(v))); }
  bool start_object(std::size_t) { return open(Json::object()); }
  bool key(Json::string_t& k) {
    key_ = std::move(k);
    return true;
  }
  bool end_object() { return close(); }
  bool start_array(std::size_t) {
    const bool filtered = stack_.size() == 1 && key_ == array_key_;
    open(Json::array());
    if (filtered) filtered_ = stack_.back();
    return true;
  }
  bool end_array() { return close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception& e) {
    message_ = e.what();
    return false;
  }

  Json& root() { return root_; }
  const std::string& message() const { return message_; }

 private:
  // Places `v` in the value on top of the stack; returns where it went.
  Json* place(Json&& v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return &root_;
    }
    Json& parent = *stack_.back();
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    Json& slot = parent[key_];
    slot = std::move(v);
    return &slot;
  }
  bool add(Json&& v) {
    place(std::move(v));
    return true;
  }
  bool open(Json&& v) {
    stack_.push_back(place(std::move(v)));
    return true;
  }
  bool close() {
    Json* done = stack_.back();
    stack_.pop_back();
    if (!stack_.empty() && stack_.back() == filtered_ && filtered_ != nullptr && !keep_(*done))
      filtered_->erase(filtered_->size() - 1);
    return true;
  }

  std::string_view array_key_;
  const std::function<bool(const Json&)>& keep_;
  Json root_;
  std::vector<Json*> stack_;
  Json* filtered_ = nullptr;
  Json::string_t key_;
  std::string message_;
};

}  // namespace

Json parse_json(std::string_view text, const std::string& where) {
  check_depth(text, where);
  try {
    return Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/true);
  } catch (const Json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, where + ": not valid JSON: " + printable(e.what(), 200));
  }
}

Json parse_json_keeping(std::string_view text, const std::string& where, std::string_view array_key,
                        const std::function<bool(const Json&)>& keep) {
  check_depth(text, where);
  KeepingBuilder builder(array_key, keep);
  if (!Json::sax_parse(text.begin(), text.end(), &builder, nlohmann::detail::input_format_t::json, true))
    throw Error(ErrorCode::kInvalidArgument, where + ": not valid JSON: " + printable(builder.message(), 200));
  return std::move(builder.root());
}

const Json* json_field(const Json& object, std::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

std::optional<uint64_t> json_u64(const Json& object, std::string_view key, const std::string& where) {
  const Json* v = json_field(object, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_number_unsigned()) return v->get<uint64_t>();
  if (v->is_number_integer() && v->get<int64_t>() >= 0) return static_cast<uint64_t>(v->get<int64_t>());
  uint64_t parsed = 0;
  if (v->is_string() && parse_int(v->get_ref<const std::string&>(), parsed)) return parsed;
  bad_field(key, where, "a non-negative integer below 2^64");
}

std::optional<int64_t> json_i64(const Json& object, std::string_view key, const std::string& where) {
  const Json* v = json_field(object, key);
  if (v == nullptr) return std::nullopt;
  if (v->is_number_integer() && !v->is_number_unsigned()) return v->get<int64_t>();
  if (v->is_number_unsigned() && v->get<uint64_t>() <= uint64_t{INT64_MAX})
    return static_cast<int64_t>(v->get<uint64_t>());
  int64_t parsed = 0;
  if (v->is_string() && parse_int(v->get_ref<const std::string&>(), parsed)) return parsed;
  bad_field(key, where, "an integer in the int64 range");
}

std::optional<uint64_t> json_address(const Json& object, std::string_view key,
                                     const std::string& where) {
  const Json* v = json_field(object, key);
  if (v != nullptr && v->is_string()) {
    std::string_view s = v->get_ref<const std::string&>();
    uint64_t parsed = 0;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && parse_int(s.substr(2), parsed, 16))
      return parsed;
  }
  return json_u64(object, key, where);
}

std::optional<std::string> json_string(const Json& object, std::string_view key,
                                       const std::string& where) {
  const Json* v = json_field(object, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) bad_field(key, where, "a string");
  return v->get<std::string>();
}

std::optional<bool> json_bool(const Json& object, std::string_view key, const std::string& where) {
  const Json* v = json_field(object, key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) bad_field(key, where, "true or false");
  return v->get<bool>();
}

}  // namespace hbmalloc::trace
