#include "app/invoice_command.h"
#include "app/render_settings.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "postline/invoice.h"
#include "postline/mime.h"

namespace postline::app {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct InvoiceOptions {
  std::vector<std::string> files;
  std::string output;
  std::string format = "pdf";
  std::vector<std::string> to;
  std::vector<std::string> cc;
  bool attach_xml = false;
  bool quiet = false;
};

// Prefixes an error with the file it came from, unless it already names it.
Error InFile(Error e, const std::string& file) {
  if (e.message.find(file) == std::string::npos) e.message = fmt::format("{}: {}", file, e.message);
  return e;
}

Result<std::vector<Address>> ParseAll(const std::vector<std::string>& list, std::string_view field) {
  std::vector<Address> out;
  for (const auto& text : list) {
    auto addrs = ParseAddressList(text, field);
    if (!addrs) return std::unexpected(addrs.error());
    out.insert(out.end(), addrs->begin(), addrs->end());
  }
  return out;
}

Result<Email> BuildEmail(const Context& ctx, const invoice::Invoice& inv, const InvoiceOptions& o,
                         const std::string& file) {
  auto from = ParseAddress(ctx.settings.from, "POSTLINE_FROM");
  if (!from) return std::unexpected(from.error());
  auto to = ParseAll(o.to, "--to");
  if (!to) return std::unexpected(to.error());
  auto cc = ParseAll(o.cc, "--cc");
  if (!cc) return std::unexpected(cc.error());
  auto email = invoice::BuildInvoiceEmail(inv, RenderSettingsFrom(ctx.settings), *from, *to,
                                          o.attach_xml);
  if (!email) return std::unexpected(InFile(email.error(), file));
  email->cc = *cc;
  return email;
}

// Writes `bytes` to `path`: "-" is stdout; a device or FIFO is written in
// place; a regular file (or a new one) is replaced atomically through a
// unique temporary file in the same folder (fsync, rename). A symbolic link
// is followed: its target is replaced, not the link.
Result<void> WriteFile(const std::string& path, std::string_view bytes) {
  if (path == "-") {
    std::cout.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    std::cout.flush();
    return {};
  }
  auto failed = [&](std::string_view what) {
    return MakeError(ErrorKind::kTransient, "write_failed",
                     fmt::format("cannot write \"{}\": {}", path, what), "-o");
  };
  auto write_all = [&](int fd) {
    std::size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<std::size_t>(n);
    }
    return true;
  };
  std::error_code ec;
  fs::path target = fs::weakly_canonical(fs::path(path), ec);
  if (ec) target = fs::path(path);
  const auto st = fs::status(target, ec);
  if (!ec && fs::exists(st) && !fs::is_regular_file(st)) {
    if (fs::is_directory(st)) return failed("it is a directory");
    int fd = ::open(target.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return failed(std::strerror(errno));
    const bool ok = write_all(fd);
    const int saved = errno;
    ::close(fd);
    if (!ok) return failed(std::strerror(saved));
    return {};
  }
  if (target.has_parent_path()) fs::create_directories(target.parent_path(), ec);
  std::string tmp = (target.parent_path() / ("." + target.filename().string() + ".XXXXXX")).string();
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) return failed(std::strerror(errno));
  const bool ok = write_all(fd) && ::fsync(fd) == 0;
  const int saved = errno;
  ::fchmod(fd, 0644);
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    return failed(std::strerror(saved));
  }
  if (::rename(tmp.c_str(), target.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return failed(std::strerror(err));
  }
  return {};
}

int RunRender(Context& ctx, const InvoiceOptions& o) {
  if (o.files.size() != 1) {
    return PrintError({ErrorKind::kInvalidInput, "usage", "render takes exactly one FILE", "FILE"},
                      kExitUsage);
  }
  const std::string& file = o.files[0];
  auto inv = invoice::LoadInvoiceFile(file);
  if (!inv) return PrintError(InFile(inv.error(), file), ExitCodeFor(inv.error()));
  std::string bytes;
  std::string ext;
  if (o.format == "pdf") {
    auto pdf = invoice::RenderInvoicePdf(*inv, RenderSettingsFrom(ctx.settings));
    if (!pdf) return PrintError(InFile(pdf.error(), file), ExitCodeFor(pdf.error()));
    bytes = std::move(*pdf);
    ext = ".pdf";
  } else if (o.format == "html") {
    auto content = invoice::RenderInvoiceEmailContent(*inv, RenderSettingsFrom(ctx.settings));
    if (!content) return PrintError(InFile(content.error(), file), ExitCodeFor(content.error()));
    bytes = std::move(content->html);
    ext = ".html";
  } else {  // eml
    auto email = BuildEmail(ctx, *inv, o, file);
    if (!email) return PrintError(email.error(), ExitCodeFor(email.error()));
    email->id = NewEnvelopeId();
    if (auto ok = ValidateEmail(*email); !ok) return PrintError(InFile(ok.error(), file), kExitDataErr);
    auto eml = ComposeMessage(*email, ComposeOptions{SystemClock()->Now()});
    if (!eml) return PrintError(InFile(eml.error(), file), ExitCodeFor(eml.error()));
    bytes = std::move(*eml);
    ext = ".eml";
  }
  std::string out = o.output;
  if (out.empty()) {
    out = invoice::PdfFileName(*inv);
    out = fs::path(out).replace_extension(ext).string();
  }
  if (auto w = WriteFile(out, bytes); !w) return PrintError(w.error(), kExitFailure);
  if (out != "-") std::cerr << fmt::format("postline: wrote {} ({} bytes)\n", out, bytes.size());
  return kExitOk;
}

int RunSendInvoices(Context& ctx, const InvoiceOptions& o) {
  if (auto ok = OpenQueues(ctx); !ok) return PrintError(ok.error(), kExitUnavailable);
  const bool progress = o.files.size() > 5 && !o.quiet;
  std::vector<std::pair<std::string, Error>> failures;
  std::size_t queued = 0;
  int worst = kExitOk;
  for (std::size_t i = 0; i < o.files.size(); ++i) {
    const std::string& file = o.files[i];
    Result<EnqueueResult> result = [&]() -> Result<EnqueueResult> {
      auto inv = invoice::LoadInvoiceFile(file);
      if (!inv) return std::unexpected(InFile(inv.error(), file));
      auto email = BuildEmail(ctx, *inv, o, file);
      if (!email) return std::unexpected(email.error());
      auto q = EnqueueEmail(ctx.queues, std::move(*email), *SystemClock(), OpenStateOrWarn(ctx).get());
      if (!q) return std::unexpected(InFile(q.error(), file));
      return q;
    }();
    if (result) {
      ++queued;
      std::cout << json{{"file", file}, {"id", result->id}, {"queue", result->queue}}.dump()
                << "\n";
    } else {
      std::cerr << "postline: " << result.error().ToString() << "\n";
      failures.emplace_back(file, result.error());
      if (worst == kExitOk) worst = ExitCodeFor(result.error());
    }
    if (progress) {
      std::cerr << fmt::format("postline: {}/{} invoices processed ({} queued, {} failed)\n",
                               i + 1, o.files.size(), queued, failures.size());
    }
  }
  std::cerr << fmt::format("postline: queued {} of {} invoices", queued, o.files.size());
  if (!failures.empty()) {
    std::cerr << "; failed:";
    for (const auto& [file, e] : failures) std::cerr << " " << file;
  }
  std::cerr << "\n";
  return worst;
}

}  // namespace

Command RegisterInvoiceCommand(CLI::App& app) {
  auto opts = std::make_shared<InvoiceOptions>();
  CLI::App* cmd = app.add_subcommand("invoice", "Invoices (our JSON or UBL 2.1) → PDF + e-mail");
  cmd->require_subcommand(1);
  CLI::App* render = cmd->add_subcommand("render", "Render an invoice to PDF, the e-mail (.eml) or its HTML");
  render->add_option("FILE", opts->files, "Invoice file (JSON or UBL XML)")->required();
  render->add_option("-o,--output", opts->output, "Output path; - for stdout (default <number>.<format>)");
  render->add_option("--format", opts->format, "pdf | eml | html")
      ->check(CLI::IsMember({"pdf", "eml", "html"}));
  render->add_option("--to", opts->to, "Recipient for --format eml (default: the buyer's e-mail)");
  render->add_flag("--attach-xml", opts->attach_xml, "For UBL input, attach the original XML too");
  CLI::App* send = cmd->add_subcommand("send", "Queue invoice e-mails at priority 5");
  send->add_option("FILE", opts->files, "Invoice files (JSON or UBL XML)")->required();
  send->add_option("--to", opts->to, "Recipient (default: the buyer's contact e-mail); repeatable");
  send->add_option("--cc", opts->cc, "Cc recipient; repeatable");
  send->add_flag("--attach-xml", opts->attach_xml, "For UBL input, attach the original XML too");
  send->add_flag("-q,--quiet", opts->quiet, "No progress lines");
  return Command{cmd, [opts, render](Context& ctx) {
                   return render->parsed() ? RunRender(ctx, *opts) : RunSendInvoices(ctx, *opts);
                 }};
}

}  // namespace postline::app
