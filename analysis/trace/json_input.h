// Reading JSON input (JSON lines, profiler traces) without letting a
// nlohmann exception or a wrongly typed field escape: every problem becomes
// an Error whose message names the place ("<source>:<line>") and the field.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace hbmalloc::trace {

using Json = nlohmann::ordered_json;  // keeps settings in file order

// Deeper nesting than this is refused before parsing: a recursive walk (a
// dump, a destructor) of 100,000 levels would overflow the stack.
constexpr int kMaxJsonDepth = 256;
// Whether `text`'s arrays and objects nest deeper than `limit` (one linear
// scan that skips strings; it does not validate the JSON).
bool json_nests_deeper_than(std::string_view text, int limit = kMaxJsonDepth);

// Parses `text` as one JSON value, refused when it nests past kMaxJsonDepth.
Json parse_json(std::string_view text, const std::string& where);

// As parse_json, but an element of the top-level object's array `array_key`
// is kept only when `keep(element)` says so: a reader drops what it does not
// need while parsing, in time linear in the text (nlohmann's own parser
// callback rescans the array at every element it ends).
Json parse_json_keeping(std::string_view text, const std::string& where, std::string_view array_key,
                        const std::function<bool(const Json&)>& keep);

// A field of `object`, or nullptr when absent (or `object` is no object).
const Json* json_field(const Json& object, std::string_view key);

// Typed fields: nullopt when absent; Error "<where>: \"key\" must be ..." when
// present with the wrong type or range. Integers may also be written as
// decimal strings; json_address also takes "0x..." hex strings.
std::optional<uint64_t> json_u64(const Json& object, std::string_view key, const std::string& where);
std::optional<int64_t> json_i64(const Json& object, std::string_view key, const std::string& where);
std::optional<uint64_t> json_address(const Json& object, std::string_view key,
                                     const std::string& where);
std::optional<std::string> json_string(const Json& object, std::string_view key,
                                       const std::string& where);
std::optional<bool> json_bool(const Json& object, std::string_view key, const std::string& where);

// Text for a message: safe_text() of its first `limit` bytes.
std::string printable(std::string_view text, size_t limit = 80);

}  // namespace hbmalloc::trace
