// nlohmann's to_json/from_json for the analyser's output structs, each
// described once by its fields (HBM_JSON_FIELDS). Reading is strict: a saved
// report is input like any other, and nlohmann's own get<> turns -1 into
// 2^64 - 1 and 1.5 into 1 without a word. A bad field throws FieldError
// carrying its path ("run.capacity", "maps[0].segments[2]"), which the
// caller turns into an Error naming the file.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace hbmalloc::report::json_io {

using nlohmann::json;

struct FieldError {
  std::string path;  // grows as the error unwinds: ".capacity", then ".run.capacity"
  std::string what;
  // "run.capacity" (the leading dot dropped)
  std::string where() const { return path.starts_with(".") ? path.substr(1) : path; }
};

[[noreturn]] inline void fail(const std::string& what) { throw FieldError{"", what}; }

inline void read(const json& v, uint64_t& out) {
  // Built in code, a small positive number may be stored signed.
  if (v.is_number_unsigned()) {
    out = v.get<uint64_t>();
  } else if (v.is_number_integer() && v.get<int64_t>() >= 0) {
    out = uint64_t(v.get<int64_t>());
  } else {
    fail("expected a non-negative integer");
  }
}
inline void read(const json& v, int64_t& out) {
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX)))
    fail("expected an integer");
  out = v.get<int64_t>();
}
inline void read(const json& v, int& out) {
  int64_t wide = 0;
  read(v, wide);
  if (wide < std::numeric_limits<int>::min() || wide > std::numeric_limits<int>::max()) fail("out of range");
  out = int(wide);
}
inline void read(const json& v, double& out) {
  if (!v.is_number()) fail("expected a number");
  out = v.get<double>();
}
inline void read(const json& v, bool& out) {
  if (!v.is_boolean()) fail("expected true or false");
  out = v.get<bool>();
}
inline void read(const json& v, std::string& out) {
  if (!v.is_string()) fail("expected a string");
  out = v.get<std::string>();
}
// A struct or enum: its own from_json (found by argument-dependent lookup),
// which checks the value's shape.
template <typename T>
void read(const json& v, T& out) {
  from_json(v, out);
}
template <typename T>
void read(const json& v, std::optional<T>& out) {
  if (v.is_null()) {
    out.reset();
    return;
  }
  out.emplace();
  read(v, *out);
}
template <typename A, typename B>
void read(const json& v, std::pair<A, B>& out);
template <typename T>
void read(const json& v, std::vector<T>& out) {
  if (!v.is_array()) fail("expected an array");
  out.clear();
  out.reserve(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    try {
      read(v[i], out.emplace_back());
    } catch (FieldError& e) {
      e.path = "[" + std::to_string(i) + "]" + e.path;
      throw;
    }
  }
}
template <typename A, typename B>
void read(const json& v, std::pair<A, B>& out) {
  if (!v.is_array() || v.size() != 2) fail("expected a pair [first, second]");
  read(v[0], out.first);
  read(v[1], out.second);
}

// Calls read(obj[key]), errors placed under key; a missing key is an error.
template <typename F>
void within(const json& obj, const char* key, F&& read_value) {
  if (!obj.is_object()) fail("expected an object");
  auto it = obj.find(key);
  if (it == obj.end()) throw FieldError{std::string(".") + key, "missing"};
  try {
    read_value(*it);
  } catch (FieldError& e) {
    e.path = std::string(".") + key + e.path;
    throw;
  }
}
// obj[key] read into out; a missing key is an error.
template <typename T>
void field(const json& obj, const char* key, T& out) {
  within(obj, key, [&](const json& v) { read(v, out); });
}
// The same for a key that files of an earlier version lack: out keeps its value.
template <typename T>
void optional_field(const json& obj, const char* key, T& out) {
  if (obj.is_object() && obj.contains(key)) field(obj, key, out);
}

// Element i of a fixed-length array (compact forms such as [addr, size, ...]).
template <typename T>
void element(const json& arr, size_t i, T& out) {
  try {
    read(arr[i], out);
  } catch (FieldError& e) {
    e.path = "[" + std::to_string(i) + "]" + e.path;
    throw;
  }
}
// A compact array read into its fields, in order; `shape` names them for the
// error ("[addr, size, requested, allocated]").
template <typename... T>
void elements(const json& v, const char* shape, T&... out) {
  if (!v.is_array() || v.size() != sizeof...(T)) fail(std::string("expected ") + shape);
  size_t i = 0;
  (element(v, i++, out), ...);
}

// Writing: an empty optional is null, the rest is nlohmann's.
template <typename T>
void write(json& j, const T& v) {
  j = v;
}
template <typename T>
void write(json& j, const std::optional<T>& v) {
  j = v ? json(*v) : json(nullptr);
}

}  // namespace hbmalloc::report::json_io

#define HBM_JSON_WRITE_FIELD(f) ::hbmalloc::report::json_io::write(hbm_json_[#f], hbm_value_.f);
#define HBM_JSON_READ_FIELD(f) ::hbmalloc::report::json_io::field(hbm_json_, #f, hbm_value_.f);

// to_json and from_json for a struct whose JSON object has a key per listed
// field, named as the field. Use in the struct's own namespace.
#define HBM_JSON_FIELDS(Type, ...)                                                    \
  [[maybe_unused]] void to_json(nlohmann::json& hbm_json_, const Type& hbm_value_) {  \
    hbm_json_ = nlohmann::json::object();                                             \
    NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(HBM_JSON_WRITE_FIELD, __VA_ARGS__))      \
  }                                                                                   \
  [[maybe_unused]] void from_json(const nlohmann::json& hbm_json_, Type& hbm_value_) { \
    NLOHMANN_JSON_EXPAND(NLOHMANN_JSON_PASTE(HBM_JSON_READ_FIELD, __VA_ARGS__))       \
  }
