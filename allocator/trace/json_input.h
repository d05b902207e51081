// Reading JSON input (JSON lines, profiler traces) without letting a
// nlohmann exception or a wrongly typed field escape: every problem becomes
// an Error whose message names the place ("<source>:<line>") and the field.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace hbmalloc::trace {

using Json = nlohmann::ordered_json;  // keeps settings in file order

// Parses `text` as one JSON value. `keep`, when given, is nlohmann's parser
// callback (lets a reader drop what it does not need while parsing).
Json parse_json(std::string_view text, const std::string& where,
                const Json::parser_callback_t& keep = nullptr);

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

// Text for a message: control bytes replaced, cut to `limit` characters.
std::string printable(std::string_view text, size_t limit = 80);

}  // namespace hbmalloc::trace
