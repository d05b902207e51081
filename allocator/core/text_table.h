// Plain-text layout: a title, section headings, and a table whose columns
// are padded to their widest cell. The live memory summary and the
// analyser's text reports are drawn with them.
#pragma once

#include <algorithm>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace hbmalloc {

// The page title, underlined with '='; sections below use heading().
inline void title(std::ostream& out, const std::string& text) {
  out << text << '\n' << std::string(text.size(), '=') << '\n';
}
inline void heading(std::ostream& out, const std::string& text) {
  out << '\n' << text << '\n' << std::string(text.size(), '-') << '\n';
}

class TextTable {
 public:
  // `align` holds 'l' or 'r' per column (columns past it: the first left, the rest right).
  explicit TextTable(std::string align = "") : align_(std::move(align)) {}
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  void write(std::ostream& out, const std::string& indent = "  ") const {
    std::vector<size_t> width;
    for (const auto& r : rows_)
      for (size_t i = 0; i < r.size(); ++i) {
        if (width.size() <= i) width.push_back(0);
        width[i] = std::max(width[i], r[i].size());
      }
    for (const auto& r : rows_) {
      std::string line = indent;
      for (size_t i = 0; i < r.size(); ++i) {
        std::string pad(width[i] - r[i].size(), ' ');
        bool left = i < align_.size() ? align_[i] == 'l' : i == 0;
        line += (i == 0 ? "" : "  ") + (left ? r[i] + pad : pad + r[i]);
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      out << line << '\n';
    }
  }

 private:
  std::string align_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace hbmalloc
