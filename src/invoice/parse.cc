// Format detection and file loading for invoices.

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "internal.h"
#include "postline/invoice.h"

namespace postline::invoice {

Result<Invoice> ParseInvoice(std::string_view bytes, FormatHint hint,
                             std::string_view source_name) {
  FormatHint format = hint;
  if (format == FormatHint::kAuto) {
    std::string_view rest = bytes;
    // A UTF-8 byte order mark is not content.
    if (rest.starts_with("\xEF\xBB\xBF")) rest.remove_prefix(3);
    size_t first = rest.find_first_not_of(" \t\r\n");
    format = first != std::string_view::npos && rest[first] == '<' ? FormatHint::kUbl
                                                                   : FormatHint::kJson;
  }
  Result<Invoice> invoice = format == FormatHint::kUbl
                                ? internal::ParseUblInvoice(bytes, source_name)
                                : internal::ParseJsonInvoice(bytes, source_name);
  if (!invoice) return invoice;
  invoice->source_bytes = std::string(bytes);
  invoice->source_path = std::string(source_name);
  return invoice;
}

Result<Invoice> LoadInvoiceFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int err = errno;
    if (err == ENOENT) {
      return MakeError(ErrorKind::kNotFound, "file_not_found",
                       fmt::format("{}: no such invoice file", path), "path");
    }
    return InvalidInput(
        "unreadable_file",
        fmt::format("{}: cannot read the invoice file: {}", path, std::strerror(err)), "path");
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) {
    return InvalidInput("unreadable_file", fmt::format("{}: read error", path), "path");
  }
  return ParseInvoice(buffer.str(), FormatHint::kAuto, path);
}

}  // namespace postline::invoice
