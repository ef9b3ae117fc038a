// Internal interfaces shared by the invoice module's readers and renderers.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "postline/invoice.h"

namespace postline::invoice::internal {

// An amount the input states, with the name of the field it came from
// ("LegalMonetaryTotal/PayableAmount", "/totals/payable").
struct StatedAmount {
  std::optional<Decimal> value;
  std::string field;
};

struct StatedTaxGroup {
  std::string category;
  Decimal rate;
  std::optional<Decimal> taxable;
  std::optional<Decimal> tax;
  std::string exemption_reason;
  std::string field;  // e.g. "TaxTotal/TaxSubtotal[2]"
};

// Figures an input states; each is checked against the computed one.
struct StatedFigures {
  std::vector<StatedAmount> line_nets;  // one per invoice line (may be empty)
  StatedAmount line_total, allowance_total, charge_total, tax_exclusive, tax, tax_inclusive,
      payable;
  std::vector<StatedTaxGroup> tax_groups;  // empty: nothing stated
  // When true (UBL), stated figures are authoritative within the slack
  // EN 16931 / PEPPOL permit: a line net amount within 0.02 of quantity ×
  // price, a group VAT amount within the per-line rounding of its lines.
  bool en16931_tolerances = false;
};

// ComputeTotals followed by the comparison with `stated`; on success the
// invoice carries the accepted figures. `source` prefixes error messages.
Result<void> ComputeAndCheck(Invoice& invoice, const StatedFigures& stated,
                             std::string_view source);

// "file.json: " or "<memory>: ".
std::string SourceLabel(std::string_view source_name);

// "line L, column C (byte B)" of a byte offset in a parsed document.
std::string LineColumn(std::string_view bytes, size_t offset);

// True when `date` is a valid "YYYY-MM-DD" calendar date.
bool IsIsoDate(std::string_view date);

// Shared validation after a reader filled the invoice: currency, dates,
// tax categories. `field_prefix` selects the field naming style.
Result<void> ValidateCommon(Invoice& invoice, std::string_view source, bool ubl);

// Formats a "YYYY-MM-DD" date with ICU's medium date style for `locale`
// ("10.01.2026" de_DE, "10 Jan 2026" en_GB). Errors: kInternal "icu_error".
Result<std::string> FormatDate(std::string_view iso_date, std::string_view locale);

// `text` without Unicode bidi control marks (ICU puts RLM/ALM into Arabic
// numbers and dates; the renderers lay text out left to right and let the
// bidi algorithm order Arabic runs).
std::string StripBidiMarks(std::string_view text);

// Display strings (amounts, dates, quantities) of an invoice for one locale,
// shared by the PDF and the e-mail templates.
struct Formatted {
  std::string locale;
  std::string issue_date, due_date;
  std::string line_total, allowance_total, charge_total, tax_exclusive, tax, tax_inclusive, prepaid,
      rounding, payable;
  struct Line {
    std::string quantity, unit_price, tax_rate, net_amount;
    std::vector<std::string> adjustments;  // "Discount: −5.00 €"
  };
  std::vector<Line> lines;
  struct TaxGroup {
    std::string label;  // "VAT S 19 % of 100,00 €"
    std::string amount;
  };
  std::vector<TaxGroup> tax_groups;
  struct Adjustment {
    std::string label;   // "Allowance: Sibling discount"
    std::string amount;  // signed, formatted
  };
  std::vector<Adjustment> document_adjustments;
  std::string title;  // "INVOICE" or "CREDIT NOTE"
  std::string payment_url;
};
Result<Formatted> FormatInvoice(const Invoice& invoice, const InvoiceRenderSettings& settings);

Result<Invoice> ParseJsonInvoice(std::string_view bytes, std::string_view source);
Result<Invoice> ParseUblInvoice(std::string_view bytes, std::string_view source);

}  // namespace postline::invoice::internal
