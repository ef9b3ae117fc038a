// Helpers shared by the invoice module's tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace postline::invoice::testing {

namespace fs = std::filesystem;

inline fs::path SourceDir() { return fs::path(POSTLINE_SOURCE_DIR); }

inline fs::path UblDir() {
  if (const char* env = std::getenv("POSTLINE_UBL_DIR"); env && *env) return env;
  return fs::path(POSTLINE_SOURCE_DIR "/../shared/data/ubl");
}

inline std::vector<fs::path> FilesWithExtension(const fs::path& dir, const std::string& ext,
                                                bool recursive) {
  std::vector<fs::path> files;
  auto add = [&](const fs::directory_entry& e) {
    if (e.is_regular_file() && e.path().extension() == ext) files.push_back(e.path());
  };
  if (recursive) {
    for (const auto& e : fs::recursive_directory_iterator(dir)) add(e);
  } else {
    for (const auto& e : fs::directory_iterator(dir)) add(e);
  }
  std::sort(files.begin(), files.end());
  return files;
}

inline std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A file in a fresh temporary folder, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "postline-invoice-XXXXXX").string();
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) != nullptr) path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// The text of each page of `pdf`, extracted by poppler's pdftotext (pages
// are separated by form feeds in its output).
inline std::vector<std::string> PdfPagesText(const std::string& pdf) {
  TempDir dir;
  fs::path file = dir.path() / "doc.pdf";
  {
    std::ofstream out(file, std::ios::binary);
    out << pdf;
  }
  std::string cmd = "pdftotext -enc UTF-8 '" + file.string() + "' - 2>/dev/null";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), &pclose);
  std::string text;
  if (pipe) {
    std::array<char, 4096> buf;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0) text.append(buf.data(), n);
  }
  std::vector<std::string> pages;
  size_t start = 0;
  for (size_t ff = text.find('\f'); ff != std::string::npos; ff = text.find('\f', start)) {
    pages.push_back(text.substr(start, ff - start));
    start = ff + 1;
  }
  if (start < text.size() && text.find_first_not_of(" \n", start) != std::string::npos) {
    pages.push_back(text.substr(start));
  }
  return pages;
}

inline std::string PdfText(const std::string& pdf) {
  std::string all;
  for (const auto& p : PdfPagesText(pdf)) all += p + "\n";
  return all;
}

// Removes white space (ASCII, U+00A0, U+202F), bidi control marks and, when
// `drop_arabic`, Arabic letters (pdftotext gives Arabic currency symbols in
// visual order), so formatted amounts compare regardless of line breaks and
// no-break spaces.
inline std::string Squeeze(const std::string& s, bool drop_arabic = false) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
    std::string_view ch(s.data() + i, std::min(len, s.size() - i));
    i += len;
    if (ch == " " || ch == "\n" || ch == "\t" || ch == "\r" || ch == "\u00a0" || ch == "\u202f" ||
        ch == "\u200e" || ch == "\u200f" || ch == "\u061c" ||
        (ch >= "\u202a" && ch <= "\u202e" && ch.size() == 3) ||
        (ch >= "\u2066" && ch <= "\u2069" && ch.size() == 3)) {
      continue;
    }
    if (drop_arabic && ch.size() == 2 && ch >= "\u0600" && ch <= "\u06ff") continue;
    out.append(ch);
  }
  return out;
}

inline int CountOccurrences(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t pos = text.find(needle); pos != std::string::npos;
       pos = text.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

}  // namespace postline::invoice::testing
