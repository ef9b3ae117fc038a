// Locale selection, payment link and attachment file names.

#include <fmt/format.h>
#include <glib.h>
#include <unicode/datefmt.h>
#include <unicode/numberformatter.h>
#include <unicode/timezone.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <utility>

#include "internal.h"
#include "postline/invoice.h"

namespace postline::invoice {
namespace {

// Country → locale for the countries whose main language is not obvious
// from "en_<CC>" (docs/invoice.md, "Locale").
constexpr std::array<std::pair<std::string_view, std::string_view>, 40> kCountryLocales = {{
    {"AE", "ar_AE@numbers=latn"},
    {"AT", "de_AT"},
    {"BE", "nl_BE"},
    {"BG", "bg_BG"},
    {"BH", "ar_BH@numbers=latn"},
    {"BR", "pt_BR"},
    {"CH", "de_CH"},
    {"CN", "zh_CN"},
    {"CZ", "cs_CZ"},
    {"DE", "de_DE"},
    {"DK", "da_DK"},
    {"EE", "et_EE"},
    {"EG", "ar_EG@numbers=latn"},
    {"ES", "es_ES"},
    {"FI", "fi_FI"},
    {"FR", "fr_FR"},
    {"GR", "el_GR"},
    {"HR", "hr_HR"},
    {"HU", "hu_HU"},
    {"IT", "it_IT"},
    {"JP", "ja_JP"},
    {"KR", "ko_KR"},
    {"KW", "ar_KW@numbers=latn"},
    {"LT", "lt_LT"},
    {"LU", "fr_LU"},
    {"LV", "lv_LV"},
    {"NL", "nl_NL"},
    {"NO", "nb_NO"},
    {"PL", "pl_PL"},
    {"PT", "pt_PT"},
    {"QA", "ar_QA@numbers=latn"},
    {"RO", "ro_RO"},
    {"RU", "ru_RU"},
    {"SA", "ar_SA@numbers=latn"},
    {"SE", "sv_SE"},
    {"SI", "sl_SI"},
    {"SK", "sk_SK"},
    {"TR", "tr_TR"},
    {"UA", "uk_UA"},
    {"RS", "sr_RS"},
}};

}  // namespace

std::string LocaleFor(const Invoice& invoice, const InvoiceRenderSettings& settings) {
  std::string chosen = !settings.locale.empty() ? settings.locale : invoice.locale;
  if (chosen.empty()) {
    const std::string& cc = invoice.seller.country_code;
    if (cc.size() != 2) return "en_GB";
    for (const auto& [country, locale] : kCountryLocales) {
      if (country == cc) return std::string(locale);
    }
    return fmt::format("en_{}", cc);
  }
  // Arabic locales print Latin digits so amounts read (and extract) the same
  // everywhere; an explicit numbering system is kept.
  if (chosen.starts_with("ar") && chosen.find("numbers=") == std::string::npos) {
    chosen += chosen.find('@') == std::string::npos ? "@numbers=latn" : ";numbers=latn";
  }
  return chosen;
}

std::string PaymentUrl(const Invoice& invoice, const InvoiceRenderSettings& settings) {
  if (settings.frontend_url.empty()) return {};
  std::unique_ptr<char, decltype(&g_free)> escaped(
      g_uri_escape_string(invoice.number.c_str(), nullptr, FALSE), &g_free);
  std::string path = settings.pay_path;
  const std::string placeholder = "{number}";
  for (size_t pos = path.find(placeholder); pos != std::string::npos;
       pos = path.find(placeholder, pos)) {
    path.replace(pos, placeholder.size(), escaped.get());
    pos += std::strlen(escaped.get());
  }
  std::string base = settings.frontend_url;
  while (!base.empty() && base.back() == '/' && !path.empty() && path.front() == '/') {
    base.pop_back();
  }
  return base + path;
}

std::string PdfFileName(const Invoice& invoice) {
  std::string name = invoice.number;
  for (char& c : name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) c = '_';
  }
  while (!name.empty() && name.front() == '.') name.front() = '_';
  if (name.empty()) name = "invoice";
  return name + ".pdf";
}

}  // namespace postline::invoice

namespace postline::invoice::internal {

Result<std::string> FormatDate(std::string_view iso_date, std::string_view locale) {
  if (iso_date.empty()) return std::string();
  if (!IsIsoDate(iso_date)) return std::string(iso_date);
  auto num = [&](size_t pos, size_t len) {
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) v = v * 10 + (iso_date[i] - '0');
    return v;
  };
  std::chrono::sys_days days{std::chrono::year_month_day{
      std::chrono::year(num(0, 4)), std::chrono::month(static_cast<unsigned>(num(5, 2))),
      std::chrono::day(static_cast<unsigned>(num(8, 2)))}};
  UDate millis = static_cast<UDate>(days.time_since_epoch().count()) * 86400000.0;
  icu::Locale loc(std::string(locale).c_str());
  std::unique_ptr<icu::DateFormat> format(
      icu::DateFormat::createDateInstance(icu::DateFormat::kMedium, loc));
  if (!format) {
    return MakeError(ErrorKind::kInternal, "icu_error",
                     fmt::format("ICU has no date format for locale {}", locale));
  }
  format->adoptTimeZone(icu::TimeZone::createTimeZone("Etc/UTC"));
  icu::UnicodeString out;
  format->format(millis, out);
  std::string utf8;
  out.toUTF8String(utf8);
  return utf8;
}

std::string StripBidiMarks(std::string_view text) {
  // U+061C ALM, U+200E LRM, U+200F RLM, U+202A–U+202E embeddings and
  // overrides, U+2066–U+2069 isolates.
  static constexpr std::string_view kMarks[] = {"\u061C", "\u200E", "\u200F", "\u202A",
                                                "\u202B", "\u202C", "\u202D", "\u202E",
                                                "\u2066", "\u2067", "\u2068", "\u2069"};
  std::string out(text);
  for (std::string_view mark : kMarks) {
    for (size_t pos = out.find(mark); pos != std::string::npos; pos = out.find(mark, pos)) {
      out.erase(pos, mark.size());
    }
  }
  return out;
}

Result<Formatted> FormatInvoice(const Invoice& invoice, const InvoiceRenderSettings& settings) {
  Formatted f;
  f.locale = LocaleFor(invoice, settings);
  const std::string& cur = invoice.currency;
  auto money = [&](const Decimal& d, std::string& out) -> Result<void> {
    auto s = FormatMoney(d, cur, f.locale);
    if (!s) return std::unexpected(s.error());
    out = StripBidiMarks(*s);
    return {};
  };
#define PL_TRY(expr)                                   \
  do {                                                 \
    auto pl_r_ = (expr);                               \
    if (!pl_r_) return std::unexpected(pl_r_.error()); \
  } while (0)
  auto issue = FormatDate(invoice.issue_date, f.locale);
  if (!issue) return std::unexpected(issue.error());
  f.issue_date = StripBidiMarks(*issue);
  auto due = FormatDate(invoice.due_date, f.locale);
  if (!due) return std::unexpected(due.error());
  f.due_date = StripBidiMarks(*due);
  const Totals& t = invoice.totals;
  PL_TRY(money(t.line_total, f.line_total));
  PL_TRY(money(t.allowance_total, f.allowance_total));
  PL_TRY(money(t.charge_total, f.charge_total));
  PL_TRY(money(t.tax_exclusive, f.tax_exclusive));
  PL_TRY(money(t.tax, f.tax));
  PL_TRY(money(t.tax_inclusive, f.tax_inclusive));
  PL_TRY(money(t.prepaid, f.prepaid));
  PL_TRY(money(t.rounding, f.rounding));
  PL_TRY(money(t.payable, f.payable));
  for (const InvoiceLine& line : invoice.lines) {
    Formatted::Line fl;
    auto q = FormatNumber(line.quantity, f.locale);
    if (!q) return std::unexpected(q.error());
    fl.quantity = StripBidiMarks(*q);
    auto rate = FormatNumber(line.tax_rate, f.locale, 3);
    if (!rate) return std::unexpected(rate.error());
    fl.tax_rate = *rate + " %";
    // Unit prices keep their own precision (e.g. 0.1973 per kWh), at least
    // the currency's minor units.
    auto price = FormatMoney(line.unit_price, cur, f.locale);
    if (!price) return std::unexpected(price.error());
    fl.unit_price = StripBidiMarks(*price);
    if (line.unit_price.RoundHalfUp(invoice.minor_units) != line.unit_price) {
      UErrorCode status = U_ZERO_ERROR;
      icu::UnicodeString ucode = icu::UnicodeString::fromUTF8(cur);
      icu::CurrencyUnit unit(ucode.getTerminatedBuffer(), status);
      std::string value = line.unit_price.ToTrimmedString();
      icu::UnicodeString out =
          icu::number::NumberFormatter::withLocale(icu::Locale(f.locale.c_str()))
              .unit(unit)
              .precision(icu::number::Precision::minMaxFraction(invoice.minor_units, 9))
              .formatDecimal(icu::StringPiece(value), status)
              .toString(status);
      if (U_SUCCESS(status)) {
        fl.unit_price.clear();
        out.toUTF8String(fl.unit_price);
        fl.unit_price = StripBidiMarks(fl.unit_price);
      }
    }
    PL_TRY(money(line.net_amount, fl.net_amount));
    for (const auto& ac : line.allowances_charges) {
      std::string amount;
      PL_TRY(money(ac.is_charge ? ac.amount : -ac.amount, amount));
      std::string label = ac.reason.empty() ? (ac.is_charge ? "Charge" : "Allowance") : ac.reason;
      fl.adjustments.push_back(fmt::format("{}: {}", label, amount));
    }
    f.lines.push_back(std::move(fl));
  }
  for (const auto& ac : invoice.allowances_charges) {
    Formatted::Adjustment a;
    a.label = fmt::format("{}{}", ac.is_charge ? "Charge" : "Allowance",
                          ac.reason.empty() ? "" : ": " + ac.reason);
    PL_TRY(money(ac.is_charge ? ac.amount : -ac.amount, a.amount));
    f.document_adjustments.push_back(std::move(a));
  }
  for (const auto& g : invoice.tax_breakdown) {
    Formatted::TaxGroup fg;
    std::string taxable;
    PL_TRY(money(g.taxable_amount, taxable));
    auto rate = FormatNumber(g.rate, f.locale, 3);
    if (!rate) return std::unexpected(rate.error());
    fg.label = fmt::format("VAT {} {} % of {}", g.category, *rate, taxable);
    PL_TRY(money(g.tax_amount, fg.amount));
    f.tax_groups.push_back(std::move(fg));
  }
#undef PL_TRY
  f.title = invoice.type == DocumentType::kCreditNote ? "CREDIT NOTE" : "INVOICE";
  f.payment_url = PaymentUrl(invoice, settings);
  return f;
}

}  // namespace postline::invoice::internal
