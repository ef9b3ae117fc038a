// ParseJson: nlohmann's iterative SAX parser with a document builder that
// refuses deep nesting and overflowing numbers (postline/json.h).
#include "postline/json.h"

#include <fmt/format.h>

#include <utility>
#include <vector>

namespace postline {
namespace {

constexpr std::size_t kMaxKeyShown = 40;
constexpr std::size_t kMaxPathShown = 200;
constexpr std::size_t kMaxDetailShown = 200;
constexpr std::size_t kMaxNumberShown = 24;

// Cuts `text` to at most `max` bytes (at a UTF-8 boundary), marking the cut.
std::string Cut(std::string_view text, std::size_t max) {
  if (text.size() <= max) return std::string(text);
  std::size_t end = max;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return std::string(text.substr(0, end)) + "…";
}

// `text` with control characters as \xNN, so a message stays on one line.
std::string Printable(std::string_view text) {
  std::string out;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      out += fmt::format("\\x{:02X}", u);
    } else {
      out += c;
    }
  }
  return out;
}

// nlohmann's detail without its "[json.exception…] parse error at …: "
// prefix, ASCII only (the last token read may hold invalid UTF-8), and short.
std::string Detail(std::string_view what) {
  if (auto bracket = what.find("] "); bracket != std::string_view::npos) {
    what.remove_prefix(bracket + 2);
    if (auto colon = what.find(": "); colon != std::string_view::npos) {
      what.remove_prefix(colon + 2);
    }
  }
  std::string out;
  for (char c : what) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x80 || u < 0x20) {
      out += fmt::format("\\x{:02X}", u);
    } else {
      out += c;
    }
    if (out.size() >= kMaxDetailShown) {
      out += "…";
      break;
    }
  }
  return out;
}

// Builds the document from SAX events, keeping the path of the value being
// read for error messages. Every callback returns false to stop the parser.
template <typename BasicJson>
class LimitedBuilder {
 public:
  using number_integer_t = typename BasicJson::number_integer_t;
  using number_unsigned_t = typename BasicJson::number_unsigned_t;
  using number_float_t = typename BasicJson::number_float_t;
  using string_t = typename BasicJson::string_t;
  using binary_t = typename BasicJson::binary_t;

  LimitedBuilder(BasicJson& root, std::string_view text, const JsonParseOptions& options)
      : root_(root), text_(text), options_(options) {}

  bool null() { return Scalar(nullptr); }
  bool boolean(bool value) { return Scalar(value); }
  bool number_integer(number_integer_t value) { return Scalar(value); }
  bool number_unsigned(number_unsigned_t value) { return Scalar(value); }
  bool number_float(number_float_t value, const string_t&) { return Scalar(value); }
  bool string(string_t& value) { return Scalar(std::move(value)); }
  // JSON text has no binary values; nlohmann calls this only for CBOR & co.
  bool binary(binary_t&) { return false; }

  bool start_object(std::size_t) { return Open(BasicJson::value_t::object, false); }
  bool start_array(std::size_t) { return Open(BasicJson::value_t::array, true); }
  bool key(string_t& key) {
    Frame& frame = frames_.back();
    frame.key = key;
    slot_ = &(*frame.value)[std::move(key)];
    return true;
  }
  bool end_object() { return Close(); }
  bool end_array() { return Close(); }

  bool parse_error(std::size_t position, const std::string& token,
                   const typename BasicJson::exception& ex) {
    if (ex.id == 406) {  // out_of_range: number overflow
      const std::string path = Path();
      error_ = Error{ErrorKind::kInvalidInput, "number_out_of_range",
                     fmt::format("{}: number {} is out of range; allowed: a number within "
                                 "±1.7976931348623157e308 (IEEE 754 double)",
                                 path, Cut(token, kMaxNumberShown)),
                     path};
      return false;
    }
    // position counts the bytes read, the offending one included.
    const std::size_t offset = position > 0 ? position - 1 : 0;
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < offset && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    error_ = Error{ErrorKind::kInvalidInput, "malformed_json",
                   fmt::format("{} is not valid JSON at line {}, column {} (byte {}): {}",
                               options_.document, line, column, position, Detail(ex.what())),
                   std::string(options_.field)};
    return false;
  }

  const Error& error() const { return error_; }

 private:
  struct Frame {
    BasicJson* value;
    bool array;
    std::size_t index = 0;  // arrays: the index of the element being read
    std::string key;        // objects: the key of the member being read
  };

  // The slot the next value goes to.
  BasicJson* Place() {
    if (frames_.empty()) return &root_;
    Frame& frame = frames_.back();
    if (frame.array) return &frame.value->emplace_back();
    return slot_;
  }

  // The value being read is complete: the next one in an array gets the next index.
  void Done() {
    if (!frames_.empty() && frames_.back().array) ++frames_.back().index;
  }

  template <typename Value>
  bool Scalar(Value&& value) {
    *Place() = BasicJson(std::forward<Value>(value));
    Done();
    return true;
  }

  bool Open(typename BasicJson::value_t type, bool array) {
    if (frames_.size() >= options_.max_depth) {
      const std::string path = Path();
      error_ = Error{ErrorKind::kInvalidInput, "json_too_deep",
                     fmt::format("{}: {} nests arrays and objects deeper than {} levels; "
                                 "allowed: at most {}",
                                 options_.document, path, options_.max_depth, options_.max_depth),
                     path};
      return false;
    }
    BasicJson* value = Place();
    *value = BasicJson(type);
    frames_.push_back(Frame{value, array});
    return true;
  }

  bool Close() {
    frames_.pop_back();
    Done();
    return true;
  }

  // The path of the value being read.
  std::string Path() const {
    const bool dotted = options_.paths == JsonPathStyle::kDotted;
    std::string out;
    for (const Frame& frame : frames_) {
      std::string segment;
      if (frame.array) {
        segment = dotted ? fmt::format("[{}]", frame.index) : fmt::format("/{}", frame.index);
      } else if (dotted) {
        segment = (out.empty() ? "" : ".") + Printable(Cut(frame.key, kMaxKeyShown));
      } else {
        std::string escaped;  // RFC 6901 §3: ~ → ~0, / → ~1
        for (char c : frame.key) {
          escaped += c == '~'   ? std::string("~0")
                     : c == '/' ? std::string("~1")
                                : std::string(1, c);
        }
        segment = "/" + Printable(Cut(escaped, kMaxKeyShown));
      }
      if (out.size() + segment.size() > kMaxPathShown) return out + "…";
      out += segment;
    }
    if (out.empty()) return dotted ? "(root)" : "/";
    return out;
  }

  BasicJson& root_;
  std::string_view text_;
  const JsonParseOptions& options_;
  std::vector<Frame> frames_;
  BasicJson* slot_ = nullptr;
  Error error_;
};

template <typename BasicJson>
Result<BasicJson> Parse(std::string_view text, const JsonParseOptions& options) {
  BasicJson root;
  LimitedBuilder<BasicJson> builder(root, text, options);
  const bool ok = BasicJson::sax_parse(text.data(), text.data() + text.size(), &builder,
                                       BasicJson::input_format_t::json, /*strict=*/true);
  if (!ok) return std::unexpected(builder.error());
  return Result<BasicJson>(std::move(root));
}

}  // namespace

Result<nlohmann::json> ParseJson(std::string_view text, const JsonParseOptions& options) {
  return Parse<nlohmann::json>(text, options);
}

Result<nlohmann::ordered_json> ParseOrderedJson(std::string_view text,
                                                const JsonParseOptions& options) {
  return Parse<nlohmann::ordered_json>(text, options);
}

}  // namespace postline
