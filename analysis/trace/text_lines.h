// Walking a text trace (JSON lines, CSV) line by line, counting from 1 so
// errors can name the line.
#pragma once

#include <cstddef>
#include <string_view>

namespace hbmalloc::trace {

// `s` without surrounding spaces, tabs and the '\r' of a CRLF file.
inline std::string_view trim_blanks(std::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  return s;
}

class TextLines {
 public:
  explicit TextLines(std::string_view text) : text_(text) {
    if (text_.substr(0, 3) == "\xef\xbb\xbf") text_.remove_prefix(3);  // UTF-8 byte order mark
  }

  // The next line, trimmed; false at the end of the text.
  bool next(std::string_view& line) {
    if (pos_ >= text_.size()) return false;
    size_t end = text_.find('\n', pos_);
    if (end == std::string_view::npos) end = text_.size();
    line = trim_blanks(text_.substr(pos_, end - pos_));
    pos_ = end + 1;
    ++number_;
    return true;
  }
  size_t number() const { return number_; }

 private:
  std::string_view text_;
  size_t pos_ = 0;
  size_t number_ = 0;
};

}  // namespace hbmalloc::trace
