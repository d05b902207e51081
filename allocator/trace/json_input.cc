#include "trace/json_input.h"

#include <charconv>

#include "hbmalloc/error.hpp"

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
  std::string out;
  for (char c : text.substr(0, limit)) {
    auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? '?' : c);
  }
  if (text.size() > limit) out += "...";
  return out;
}

Json parse_json(std::string_view text, const std::string& where, const Json::parser_callback_t& keep) {
  try {
    return Json::parse(text.begin(), text.end(), keep, /*allow_exceptions=*/true);
  } catch (const Json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, where + ": not valid JSON: " + printable(e.what(), 200));
  }
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
