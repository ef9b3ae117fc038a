// E-mail subject and bodies from mustache templates, and the invoice Email.

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <kainjow/mustache.hpp>
#include <sstream>

#include "internal.h"
#include "postline/invoice.h"

namespace postline::invoice {
namespace {

namespace fs = std::filesystem;
using kainjow::mustache::data;
using kainjow::mustache::mustache;

constexpr const char* kSubjectTemplate = "invoice_subject.mustache";
constexpr const char* kTextTemplate = "invoice.txt.mustache";
constexpr const char* kHtmlTemplate = "invoice.html.mustache";

struct TemplateFile {
  std::string path;
  std::string text;
};

Result<TemplateFile> FindTemplate(const InvoiceRenderSettings& settings, const char* name) {
  std::vector<std::string> tried;
  for (const std::string& dir : {settings.template_dir, settings.default_template_dir}) {
    if (dir.empty()) continue;
    fs::path path = fs::path(dir) / name;
    tried.push_back(path.string());
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) continue;
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    if (!in.good() && !in.eof()) {
      return InvalidInput("template_error",
                          fmt::format("template {}: cannot be read", path.string()), path.string());
    }
    return TemplateFile{path.string(), s.str()};
  }
  return MakeError(ErrorKind::kNotFound, "template_not_found",
                   fmt::format("template {} not found (tried: {}); set template_dir or "
                               "default_template_dir to a folder that has it",
                               name,
                               tried.empty() ? std::string("no folder set")
                                             : fmt::format("{}", fmt::join(tried, ", "))),
                   name);
}

Result<std::string> RenderTemplate(const InvoiceRenderSettings& settings, const char* name,
                                   const data& values, bool html) {
  auto file = FindTemplate(settings, name);
  if (!file) return std::unexpected(file.error());
  mustache tmpl(file->text);
  if (!tmpl.is_valid()) {
    return InvalidInput("template_error",
                        fmt::format("template {}: {}", file->path, tmpl.error_message()),
                        file->path);
  }
  // Only HTML needs escaping; subject and plain text take values verbatim.
  if (!html) tmpl.set_custom_escape([](const std::string& s) { return s; });
  std::string out = tmpl.render(values);
  if (!tmpl.is_valid()) {
    return InvalidInput("template_error",
                        fmt::format("template {}: {}", file->path, tmpl.error_message()),
                        file->path);
  }
  return out;
}

data TemplateValues(const Invoice& invoice, const internal::Formatted& f) {
  // Empty values are left out, so {{#key}} sections test for presence (the
  // mustache library treats an empty string as true).
  struct Values : data {
    void set(const std::string& key, const std::string& value) {
      if (!value.empty()) data::set(key, value);
    }
    void set(const std::string& key, const char* value) { set(key, std::string(value)); }
    void set(const std::string& key, bool value) { data::set(key, data(value)); }
    void set(const std::string& key, const data& value) { data::set(key, value); }
  };
  Values d;
  const bool credit = invoice.type == DocumentType::kCreditNote;
  d.set("number", invoice.number);
  d.set("document", credit ? "credit note" : "invoice");
  d.set("Document", credit ? "Credit note" : "Invoice");
  d.set("is_credit_note", credit);
  d.set("issue_date", f.issue_date);
  d.set("due_date", f.due_date);
  d.set("currency", invoice.currency);
  d.set("seller_name", invoice.seller.name);
  d.set("seller_email", invoice.seller.email);
  d.set("buyer_name", invoice.buyer.name);
  d.set("student", invoice.student);
  d.set("class", invoice.class_name);
  d.set("term", invoice.term);
  d.set("has_pupil", !invoice.student.empty());
  d.set("line_total", f.line_total);
  d.set("tax_exclusive", f.tax_exclusive);
  d.set("tax", f.tax);
  d.set("tax_inclusive", f.tax_inclusive);
  d.set("prepaid", f.prepaid);
  d.set("has_prepaid", !invoice.totals.prepaid.IsZero());
  d.set("payable", f.payable);
  d.set("payment_url", f.payment_url);
  d.set("payment_terms", invoice.payment_terms);
  d.set("iban", invoice.payment.iban);
  d.set("bic", invoice.payment.bic);
  d.set("account_name", invoice.payment.account_name);
  d.set("reference", invoice.payment.reference);
  data lines{data::type::list};
  for (size_t i = 0; i < invoice.lines.size(); ++i) {
    Values line;
    line.set("id", invoice.lines[i].id);
    line.set("description", invoice.lines[i].description);
    line.set("quantity", f.lines[i].quantity);
    line.set("unit_code", invoice.lines[i].unit_code);
    line.set("unit_price", f.lines[i].unit_price);
    line.set("tax_rate", f.lines[i].tax_rate);
    line.set("net_amount", f.lines[i].net_amount);
    lines.push_back(line);
  }
  d.set("lines", lines);
  data taxes{data::type::list};
  for (const auto& g : f.tax_groups) {
    Values t;
    t.set("label", g.label);
    t.set("amount", g.amount);
    taxes.push_back(t);
  }
  d.set("tax_groups", taxes);
  data notes{data::type::list};
  for (const auto& n : invoice.notes) notes.push_back(data(n));
  d.set("notes", notes);
  return d;
}

}  // namespace

Result<InvoiceEmailContent> RenderInvoiceEmailContent(const Invoice& invoice,
                                                      const InvoiceRenderSettings& settings) {
  auto formatted = internal::FormatInvoice(invoice, settings);
  if (!formatted) return std::unexpected(formatted.error());
  data values = TemplateValues(invoice, *formatted);
  InvoiceEmailContent content;
  auto subject = RenderTemplate(settings, kSubjectTemplate, values, false);
  if (!subject) return std::unexpected(subject.error());
  // A subject is one line: a line break with the blanks around it becomes
  // one space; leading and trailing blanks go.
  std::string s;
  bool folding = false;
  for (char c : *subject) {
    if (c == '\r' || c == '\n') {
      while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
      folding = true;
    } else if (folding && (c == ' ' || c == '\t')) {
      continue;
    } else {
      if (folding && !s.empty()) s.push_back(' ');
      folding = false;
      s.push_back(c);
    }
  }
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
  content.subject = std::move(s);
  auto text = RenderTemplate(settings, kTextTemplate, values, false);
  if (!text) return std::unexpected(text.error());
  content.text = std::move(*text);
  auto html = RenderTemplate(settings, kHtmlTemplate, values, true);
  if (!html) return std::unexpected(html.error());
  content.html = std::move(*html);
  return content;
}

Result<Email> BuildInvoiceEmail(const Invoice& invoice, const InvoiceRenderSettings& settings,
                                const Address& from, std::vector<Address> to, bool attach_source) {
  if (to.empty()) {
    if (invoice.buyer.email.empty()) {
      return InvalidInput(
          "missing_recipient",
          fmt::format("{}: no recipient: pass one, or give the buyer's contact e-mail "
                      "(JSON /buyer/email, UBL cac:AccountingCustomerParty/cac:Party/cac:Contact/"
                      "cbc:ElectronicMail)",
                      internal::SourceLabel(invoice.source_path)),
          "to");
    }
    to.push_back(Address{invoice.buyer.name, invoice.buyer.email});
  }
  auto content = RenderInvoiceEmailContent(invoice, settings);
  if (!content) return std::unexpected(content.error());
  auto pdf = RenderInvoicePdf(invoice, settings);
  if (!pdf) return std::unexpected(pdf.error());
  Email email;
  email.from = from;
  email.to = std::move(to);
  email.subject = std::move(content->subject);
  email.text = std::move(content->text);
  email.html = std::move(content->html);
  email.priority = kInvoicePriority;
  const std::string pdf_name = PdfFileName(invoice);
  email.attachments.push_back(Attachment{pdf_name, "application/pdf", std::move(*pdf)});
  if (attach_source && invoice.source_format == SourceFormat::kUbl) {
    std::string xml_name = pdf_name.substr(0, pdf_name.size() - 4) + ".xml";
    email.attachments.push_back(Attachment{xml_name, "application/xml", invoice.source_bytes});
  }
  return email;
}

}  // namespace postline::invoice
