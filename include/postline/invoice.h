// postline/invoice.h — the invoice model (EN 16931 business terms), its
// readers (postline JSON and UBL 2.1 Invoice/CreditNote), totals checking,
// the PDF renderer and the e-mail content built from an invoice.
//
// This module never sends or queues anything: BuildInvoiceEmail only
// constructs a postline::Email for the caller to queue.
//
// Formats and rules are documented in docs/invoice.md; the JSON format's
// schema is docs/invoice.schema.json.
//
// Thread-safety: all types are plain values. All functions are reentrant and
// may run concurrently on different threads (each call creates its own cairo
// surface, pango context and ICU formatters; fontconfig is thread-safe).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "postline/envelope.h"
#include "postline/error.h"
#include "postline/money.h"

namespace postline::invoice {

// A seller or buyer (EN 16931 BG-4 / BG-7 with their addresses BG-5 / BG-8).
struct Party {
  std::string name;                        // BT-27 / BT-44 (or trading name)
  std::vector<std::string> address_lines;  // BT-35, BT-36, BT-162 / BT-50, BT-51, BT-163
  std::string city;                        // BT-37 / BT-52
  std::string postcode;                    // BT-38 / BT-53
  std::string country_code;                // BT-40 / BT-55, ISO 3166-1 alpha-2 ("DE")
  std::string tax_id;                      // BT-31 / BT-48 (VAT identifier)
  std::string email;                       // BT-43 / BT-58 contact e-mail
  std::string logo_path;                   // seller only: a PNG file printed in the header
};

// A document-level (BG-20 / BG-21) or line-level (BG-27 / BG-28) allowance
// or charge.
struct AllowanceCharge {
  bool is_charge = false;    // false: allowance (reduces), true: charge (adds)
  Decimal amount;            // positive amount without VAT
  std::string reason;        // BT-97 / BT-104 / BT-139 / BT-144
  std::string tax_category;  // document level only: BT-95 / BT-102
  Decimal tax_rate;          // document level only: BT-96 / BT-103, percent
};

struct InvoiceLine {
  std::string id;                               // BT-126
  std::string description;                      // BT-153 item name (plus BT-154 when present)
  Decimal quantity;                             // BT-129; may be negative (UBL corrections)
  std::string unit_code;                        // BT-130, UN/ECE rec 20 ("C62", "HUR")
  Decimal unit_price;                           // BT-146 net price
  Decimal base_quantity = Decimal::FromInt(1);  // BT-149
  std::vector<AllowanceCharge> allowances_charges;
  std::string tax_category;  // BT-151: S, Z, E, AE, K, G, O, L, M
  Decimal tax_rate;          // BT-152, percent ("19", "7.5")
  // BT-131, computed by the reader (see docs/invoice.md, "Rounding"):
  // round(quantity × unit_price / base_quantity) − allowances + charges.
  Decimal net_amount;
};

// One VAT breakdown group (BG-23), per category and rate.
struct TaxSubtotal {
  std::string category;          // BT-118
  Decimal rate;                  // BT-119, percent
  Decimal taxable_amount;        // BT-116, computed
  Decimal tax_amount;            // BT-117: computed, or the stated one (UBL, see docs)
  std::string exemption_reason;  // BT-120
};

// Document totals (BG-22), all rounded to the currency's minor units.
struct Totals {
  Decimal line_total;       // BT-106 sum of line net amounts
  Decimal allowance_total;  // BT-107
  Decimal charge_total;     // BT-108
  Decimal tax_exclusive;    // BT-109 = line_total − allowance_total + charge_total
  Decimal tax;              // BT-110 sum of the breakdown's tax amounts
  Decimal tax_inclusive;    // BT-112 = tax_exclusive + tax
  Decimal prepaid;          // BT-113 (input)
  Decimal rounding;         // BT-114 (input)
  Decimal payable;          // BT-115 = tax_inclusive − prepaid + rounding
};

// Credit transfer details (BG-16 / BG-17).
struct PaymentMeans {
  std::string iban;          // BT-84
  std::string bic;           // BT-86
  std::string account_name;  // BT-85
  std::string reference;     // BT-83 remittance information
};

enum class DocumentType { kInvoice, kCreditNote };
enum class SourceFormat { kJson, kUbl };
enum class FormatHint { kAuto, kJson, kUbl };

struct Invoice {
  std::string number;  // BT-1
  DocumentType type = DocumentType::kInvoice;
  std::string issue_date;  // BT-2, "YYYY-MM-DD"
  std::string due_date;    // BT-9, "YYYY-MM-DD" or empty
  std::string currency;    // BT-5, ISO 4217
  int minor_units = 2;     // the currency's minor units (ICU)
  std::string locale;      // ICU locale id for formatting; empty: from the seller's country
  Party seller;
  Party buyer;
  // School fees (postline JSON only; printed when set).
  std::string student;
  std::string class_name;  // JSON field "class"
  std::string term;
  std::vector<InvoiceLine> lines;
  std::vector<AllowanceCharge> allowances_charges;  // document level
  std::vector<TaxSubtotal> tax_breakdown;           // computed, in first-use order
  Totals totals;                                    // computed
  std::string payment_terms;                        // BT-20
  PaymentMeans payment;
  std::vector<std::string> notes;  // BT-22
  // Remarks the reader made while accepting the input (e.g. a stated VAT
  // amount that differs from the computed one by permitted rounding).
  std::vector<std::string> remarks;
  // The input as read: bytes, format and path ("" when parsed from memory).
  std::string source_bytes;
  SourceFormat source_format = SourceFormat::kJson;
  std::string source_path;
};

// Parses an invoice from `bytes` (UTF-8). With kAuto the format follows the
// content: the first non-white-space character '<' means UBL XML, anything
// else postline JSON. `source_name` (a path, or "" for "<memory>") prefixes
// error messages and is stored as source_path. The reader computes lines,
// tax breakdown and totals and checks any totals the input states.
// Errors (all kInvalidInput, message starting with the source name):
//   "malformed_json" / "malformed_xml" with line and column;
//   "json_too_deep" (more than kMaxJsonDepth levels) and
//     "number_out_of_range" (beyond double range), naming the JSON pointer
//     (postline/json.h);
//   "missing_field" naming the JSON pointer or XPath ("/Invoice/cbc:ID is
//     required");
//   "invalid_field" for a wrong type, value or date (field named);
//   "invalid_decimal", "unknown_currency";
//   "negative_quantity" (JSON only: quantities must be >= 0; UBL allows
//     negative quantities as EN 16931 does);
//   "unknown_field" (JSON: a key the format doesn't have);
//   "due_before_issue"; "invalid_tax_category"; "invalid_tax_rate" (e.g.
//     category E with a rate other than 0, S with rate 0);
//   "totals_mismatch" naming the field and both figures
//     ("LegalMonetaryTotal/PayableAmount: invoice says 1000.00, lines compute 999.99");
//   "amount_overflow" for amounts beyond 10^20.
Result<Invoice> ParseInvoice(std::string_view bytes, FormatHint hint = FormatHint::kAuto,
                             std::string_view source_name = "");

// Reads the file at `path` and parses it with ParseInvoice (format by
// content). Errors: kNotFound "file_not_found" / kInvalidInput
// "unreadable_file" when it can't be read; otherwise as ParseInvoice.
Result<Invoice> LoadInvoiceFile(const std::string& path);

// Recomputes line net amounts, tax breakdown and totals of `invoice` from its
// lines, allowances/charges, prepaid and rounding amounts (docs/invoice.md,
// "Rounding"). Readers call it; callers that build an Invoice in code call it
// before rendering. Errors: kInvalidInput "invalid_tax_category",
// "invalid_tax_rate", "amount_overflow", "unknown_currency".
Result<void> ComputeTotals(Invoice& invoice);

enum class PageSize { kA4, kLetter };

struct InvoiceRenderSettings {
  // ICU locale id for numbers, amounts and dates; empty: invoice.locale, then
  // the seller's country (see LocaleFor).
  std::string locale;
  PageSize page = PageSize::kA4;
  // FRONTEND_URL; when empty no payment link is printed.
  std::string frontend_url;
  // Appended to frontend_url; "{number}" is replaced by the URL-encoded
  // invoice number.
  std::string pay_path = "/invoices/{number}/pay";
  // A folder whose templates replace the defaults file by file; may be empty.
  std::string template_dir;
  // The folder with the default templates (templates/ of the source tree or
  // its installed copy).
  std::string default_template_dir;
};

// The ICU locale used to format `invoice`: settings.locale, else
// invoice.locale, else derived from the seller's country (DE → de_DE,
// NG → en_NG, IN → en_IN, TR → tr_TR, JP → ja_JP, KW → ar_KW@numbers=latn,
// NO → nb_NO, ...; unknown → en_<CC>, no country → en_GB). Arabic locales
// always use Latin digits (docs/invoice.md).
std::string LocaleFor(const Invoice& invoice, const InvoiceRenderSettings& settings);

// frontend_url + pay_path with "{number}" replaced by the percent-encoded
// invoice number (RFC 3986 unreserved characters kept). "" when frontend_url
// is empty.
std::string PaymentUrl(const Invoice& invoice, const InvoiceRenderSettings& settings);

// "<number>.pdf" with characters outside [A-Za-z0-9._-] replaced by '_'.
std::string PdfFileName(const Invoice& invoice);

// Renders the invoice as a PDF (A4 or US Letter) and returns its bytes.
// The same invoice and settings give byte-identical output (document dates
// are the issue date). Text is shaped by pango/HarfBuzz, fonts are embedded
// as subsets with ToUnicode maps, so the text can be extracted.
// Errors: kInvalidInput "missing_glyph" naming the field and text when no
// installed font can draw a character; "unreadable_logo" when the seller's
// logo is not a readable PNG; "unknown_currency"; kInternal "pdf_error" when
// cairo fails.
Result<std::string> RenderInvoicePdf(const Invoice& invoice, const InvoiceRenderSettings& settings);

struct InvoiceEmailContent {
  std::string subject;  // one line, UTF-8
  std::string text;     // text/plain body
  std::string html;     // text/html body
};

// Renders templates invoice_subject.mustache, invoice.txt.mustache and
// invoice.html.mustache (each taken from settings.template_dir when present
// there, else from settings.default_template_dir). The HTML template escapes
// {{values}} for HTML; subject and text templates do not escape. Line breaks
// in the rendered subject are folded to spaces.
// Errors: kNotFound "template_not_found" naming the paths tried;
// kInvalidInput "template_error" naming the template file and the parser's
// message; "unknown_currency".
Result<InvoiceEmailContent> RenderInvoiceEmailContent(const Invoice& invoice,
                                                      const InvoiceRenderSettings& settings);

// Builds the e-mail for `invoice` (priority kInvoicePriority, empty id):
// subject/text/html from RenderInvoiceEmailContent, attachment
// PdfFileName(invoice) "application/pdf" and, when `attach_source` is true
// and the invoice was read from UBL, its source bytes as "<number>.xml"
// "application/xml". `to` empty → the buyer's contact e-mail.
// Errors: kInvalidInput "missing_recipient" naming the source file when
// neither `to` nor the buyer's e-mail is set; errors of RenderInvoicePdf and
// RenderInvoiceEmailContent. The Email is not validated here (the envelope
// module does that when it is queued).
Result<Email> BuildInvoiceEmail(const Invoice& invoice, const InvoiceRenderSettings& settings,
                                const Address& from, std::vector<Address> to, bool attach_source);

}  // namespace postline::invoice
