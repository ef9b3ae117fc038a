// Line, VAT breakdown and document totals (docs/invoice.md, "Rounding"), and
// the comparison with the figures an input states.

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <stdexcept>

#include "internal.h"
#include "postline/invoice.h"

namespace postline::invoice {
namespace {

constexpr std::array<std::string_view, 9> kTaxCategories = {"S", "Z", "E", "AE", "K",
                                                            "G", "O", "L", "M"};

bool IsTaxCategory(std::string_view code) {
  return std::find(kTaxCategories.begin(), kTaxCategories.end(), code) != kTaxCategories.end();
}

// Category and rate together (EN 16931 BR-S-05, BR-Z-05, BR-E-05, BR-AE-05,
// BR-IC-05, BR-G-05, BR-O-05): S needs a rate above 0; Z, E, AE, K, G and O
// have rate 0; L and M (Canary Islands, Ceuta/Melilla) take any rate >= 0.
Result<void> CheckCategory(std::string_view code, const Decimal& rate, std::string_view field) {
  if (IsTaxCategory(code)) {
    const Decimal zero;
    bool ok = code == "S"                    ? rate > zero
              : (code == "L" || code == "M") ? rate >= zero
                                             : rate == zero;
    if (ok) return {};
    return InvalidInput("invalid_tax_rate",
                        fmt::format("{}: tax rate {} % is not allowed for category {}; allowed: {}",
                                    field, rate.ToTrimmedString(), code,
                                    code == "S"                  ? "a rate above 0"
                                    : code == "L" || code == "M" ? "a rate of 0 or more"
                                                                 : "0"),
                        std::string(field));
  }
  return InvalidInput("invalid_tax_category",
                      fmt::format("{}: tax category \"{}\" is not allowed; allowed: S, Z, E, AE, "
                                  "K, G, O, L, M (UNTDID 5305 subset of EN 16931)",
                                  field, code),
                      std::string(field));
}

TaxSubtotal& GroupFor(std::vector<TaxSubtotal>& groups, const std::string& category,
                      const Decimal& rate) {
  for (auto& g : groups) {
    if (g.category == category && g.rate == rate) return g;
  }
  TaxSubtotal g;
  g.category = category;
  g.rate = rate;
  g.taxable_amount = Decimal::FromUnits(0, 0);
  g.tax_amount = Decimal::FromUnits(0, 0);
  groups.push_back(g);
  return groups.back();
}

// Line net amounts (BT-131) from quantity, price and line allowances/charges.
void ComputeLineNets(Invoice& invoice) {
  const int m = invoice.minor_units;
  for (InvoiceLine& line : invoice.lines) {
    Decimal base = line.base_quantity.IsZero() ? Decimal::FromInt(1) : line.base_quantity;
    Decimal net = Decimal::DivideRoundHalfUp(line.quantity * line.unit_price, base, m);
    for (const auto& ac : line.allowances_charges) {
      Decimal amount = ac.amount.RoundHalfUp(m);
      net = ac.is_charge ? net + amount : net - amount;
    }
    line.net_amount = net.RoundHalfUp(m);
  }
}

// VAT breakdown and document totals from the line net amounts.
void ComputeSummary(Invoice& invoice) {
  const int m = invoice.minor_units;
  const Decimal zero = Decimal::FromUnits(0, m);
  std::vector<TaxSubtotal> groups;
  Totals& t = invoice.totals;
  t.line_total = zero;
  t.allowance_total = zero;
  t.charge_total = zero;
  for (const InvoiceLine& line : invoice.lines) {
    t.line_total += line.net_amount;
    GroupFor(groups, line.tax_category, line.tax_rate).taxable_amount += line.net_amount;
  }
  for (const AllowanceCharge& ac : invoice.allowances_charges) {
    Decimal amount = ac.amount.RoundHalfUp(m);
    TaxSubtotal& g = GroupFor(groups, ac.tax_category, ac.tax_rate);
    if (ac.is_charge) {
      t.charge_total += amount;
      g.taxable_amount += amount;
    } else {
      t.allowance_total += amount;
      g.taxable_amount -= amount;
    }
  }
  t.tax = zero;
  for (auto& g : groups) {
    g.taxable_amount = g.taxable_amount.RoundHalfUp(m);
    g.tax_amount = Decimal::DivideRoundHalfUp(g.taxable_amount * g.rate, Decimal::FromInt(100), m);
    t.tax += g.tax_amount;
    // Keep exemption reasons a previous computation (or a reader) recorded.
    for (const auto& old : invoice.tax_breakdown) {
      if (old.category == g.category && old.rate == g.rate) {
        g.exemption_reason = old.exemption_reason;
      }
    }
  }
  invoice.tax_breakdown = std::move(groups);
  t.tax_exclusive = t.line_total - t.allowance_total + t.charge_total;
  t.tax_inclusive = t.tax_exclusive + t.tax;
  t.prepaid = t.prepaid.RoundHalfUp(m);
  t.rounding = t.rounding.RoundHalfUp(m);
  t.payable = t.tax_inclusive - t.prepaid + t.rounding;
}

Result<void> OverflowError() {
  return InvalidInput("amount_overflow",
                      "an amount, quantity or price is too large to compute exactly; allowed: "
                      "up to 20 significant digits");
}

}  // namespace

Result<void> ComputeTotals(Invoice& invoice) {
  auto minor = CurrencyMinorUnits(invoice.currency);
  if (!minor) return std::unexpected(minor.error());
  invoice.minor_units = *minor;
  for (size_t i = 0; i < invoice.lines.size(); ++i) {
    if (auto ok = CheckCategory(invoice.lines[i].tax_category, invoice.lines[i].tax_rate,
                                fmt::format("lines[{}].tax_category", i));
        !ok) {
      return ok;
    }
  }
  for (size_t i = 0; i < invoice.allowances_charges.size(); ++i) {
    if (auto ok = CheckCategory(invoice.allowances_charges[i].tax_category,
                                invoice.allowances_charges[i].tax_rate,
                                fmt::format("allowances_charges[{}].tax_category", i));
        !ok) {
      return ok;
    }
  }
  try {
    ComputeLineNets(invoice);
    ComputeSummary(invoice);
  } catch (const std::overflow_error&) {
    return OverflowError();
  }
  return {};
}

namespace internal {

std::string LineColumn(std::string_view bytes, size_t offset) {
  size_t line = 1;
  size_t col = 1;
  for (size_t i = 0; i < offset && i < bytes.size(); ++i) {
    if (bytes[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return fmt::format("line {}, column {} (byte {})", line, col, offset);
}

std::string SourceLabel(std::string_view source_name) {
  return source_name.empty() ? std::string("<memory>") : std::string(source_name);
}

bool IsIsoDate(std::string_view date) {
  if (date.size() != 10 || date[4] != '-' || date[7] != '-') return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9}) {
    if (date[i] < '0' || date[i] > '9') return false;
  }
  auto num = [&](size_t pos, size_t len) {
    int v = 0;
    for (size_t i = pos; i < pos + len; ++i) v = v * 10 + (date[i] - '0');
    return v;
  };
  std::chrono::year_month_day ymd{std::chrono::year(num(0, 4)),
                                  std::chrono::month(static_cast<unsigned>(num(5, 2))),
                                  std::chrono::day(static_cast<unsigned>(num(8, 2)))};
  return ymd.ok();
}

Result<void> ValidateCommon(Invoice& invoice, std::string_view source, bool ubl) {
  const std::string label = SourceLabel(source);
  const std::string issue_field = ubl ? "cbc:IssueDate" : "/issue_date";
  const std::string due_field = ubl ? "cbc:DueDate" : "/due_date";
  const std::string currency_field = ubl ? "cbc:DocumentCurrencyCode" : "/currency";
  if (!IsIsoDate(invoice.issue_date)) {
    return InvalidInput("invalid_field",
                        fmt::format("{}: {} \"{}\" is not a date; allowed: YYYY-MM-DD", label,
                                    issue_field, invoice.issue_date),
                        issue_field);
  }
  if (!invoice.due_date.empty()) {
    if (!IsIsoDate(invoice.due_date)) {
      return InvalidInput("invalid_field",
                          fmt::format("{}: {} \"{}\" is not a date; allowed: YYYY-MM-DD", label,
                                      due_field, invoice.due_date),
                          due_field);
    }
    if (invoice.due_date < invoice.issue_date) {
      return InvalidInput("due_before_issue",
                          fmt::format("{}: {} {} is before the issue date {}; allowed: the issue "
                                      "date or later",
                                      label, due_field, invoice.due_date, invoice.issue_date),
                          due_field);
    }
  }
  auto minor = CurrencyMinorUnits(invoice.currency);
  if (!minor) {
    Error e = minor.error();
    e.message = fmt::format("{}: {}: {}", label, currency_field, e.message);
    e.field = currency_field;
    return std::unexpected(e);
  }
  invoice.minor_units = *minor;
  return {};
}

Result<void> ComputeAndCheck(Invoice& invoice, const StatedFigures& stated,
                             std::string_view source) {
  const std::string label = SourceLabel(source);
  if (auto ok = ComputeTotals(invoice); !ok) {
    Error e = ok.error();
    e.message = fmt::format("{}: {}", label, e.message);
    return std::unexpected(e);
  }
  const int m = invoice.minor_units;
  auto mismatch = [&](const std::string& field, const Decimal& said, const Decimal& computed,
                      std::string_view what) {
    return InvalidInput("totals_mismatch",
                        fmt::format("{}: {}: invoice says {}, {} compute {}; allowed: the "
                                    "figure computed from the lines (docs/invoice.md, Rounding)",
                                    label, field, said.ToString(std::max(m, said.scale())), what,
                                    computed.ToString(std::max(m, said.scale()))),
                        field);
  };
  // EN 16931 makes the stated line net amount (BT-131) the figure the totals
  // add up (BR-CO-10); PEPPOL-EN16931-R120 lets it differ from quantity ×
  // price by 0.02, which is what a price given to more decimals than the
  // currency produces. Within that slack the stated figure is used.
  bool lines_adjusted = false;
  for (size_t i = 0; i < stated.line_nets.size() && i < invoice.lines.size(); ++i) {
    const auto& s = stated.line_nets[i];
    InvoiceLine& line = invoice.lines[i];
    if (!s.value || *s.value == line.net_amount) continue;
    Int128 diff = (*s.value - line.net_amount).Abs().UnitsAt(std::max(m, 2));
    bool within_slack = stated.en16931_tolerances && m == 2 && diff <= 2;
    if (!within_slack) {
      return mismatch(s.field, *s.value, line.net_amount,
                      "quantity × price − allowances + charges");
    }
    invoice.remarks.push_back(
        fmt::format("{}: stated line amount {} accepted; quantity × price "
                    "computes {}",
                    s.field, s.value->ToString(), line.net_amount.ToString()));
    line.net_amount = s.value->RoundHalfUp(m);
    lines_adjusted = true;
  }
  if (lines_adjusted) {
    try {
      ComputeSummary(invoice);
    } catch (const std::overflow_error&) {
      return OverflowError();
    }
  }
  if (!stated.tax_groups.empty()) {
    Decimal tax_total = Decimal::FromUnits(0, m);
    for (auto& g : invoice.tax_breakdown) {
      auto it = std::find_if(
          stated.tax_groups.begin(), stated.tax_groups.end(),
          [&](const StatedTaxGroup& s) { return s.category == g.category && s.rate == g.rate; });
      if (it == stated.tax_groups.end()) {
        return InvalidInput(
            "totals_mismatch",
            fmt::format("{}: TaxTotal/TaxSubtotal: no VAT breakdown for category {} at {}% "
                        "although lines or allowances/charges use it; allowed: one TaxSubtotal "
                        "per category and rate used",
                        label, g.category, g.rate.ToTrimmedString()),
            "TaxTotal/TaxSubtotal");
      }
      if (it->taxable && *it->taxable != g.taxable_amount) {
        return mismatch(it->field + "/cbc:TaxableAmount", *it->taxable, g.taxable_amount,
                        "lines and allowances/charges");
      }
      if (!it->exemption_reason.empty()) g.exemption_reason = it->exemption_reason;
      if (it->tax && *it->tax != g.tax_amount) {
        // Per-line rounding of VAT may differ from per-group rounding by up to
        // half a minor unit per line of the group (at least one minor unit).
        long long count = 0;
        for (const auto& line : invoice.lines) {
          if (line.tax_category == g.category && line.tax_rate == g.rate) ++count;
        }
        for (const auto& ac : invoice.allowances_charges) {
          if (ac.tax_category == g.category && ac.tax_rate == g.rate) ++count;
        }
        Int128 tolerance = std::max<Int128>(1, (count + 1) / 2);
        Int128 diff = (*it->tax - g.tax_amount).Abs().UnitsAt(m);
        if (!stated.en16931_tolerances || diff > tolerance) {
          return mismatch(it->field + "/cbc:TaxAmount", *it->tax, g.tax_amount,
                          fmt::format("taxable × rate (within {} minor units) ",
                                      static_cast<long long>(tolerance)) +
                              "would");
        }
        invoice.remarks.push_back(fmt::format(
            "{}: stated VAT {} for category {} at {}% accepted; rounding per group computes {}",
            it->field, it->tax->ToString(m), g.category, g.rate.ToTrimmedString(),
            g.tax_amount.ToString(m)));
        g.tax_amount = it->tax->RoundHalfUp(m);
      }
      tax_total += g.tax_amount;
    }
    for (const auto& s : stated.tax_groups) {
      bool found = std::any_of(
          invoice.tax_breakdown.begin(), invoice.tax_breakdown.end(),
          [&](const TaxSubtotal& g) { return g.category == s.category && g.rate == s.rate; });
      if (!found) {
        return InvalidInput(
            "totals_mismatch",
            fmt::format("{}: {}: VAT breakdown for category {} at {}% is not used by any line or "
                        "allowance/charge; allowed: only categories and rates in use",
                        label, s.field, s.category, s.rate.ToTrimmedString()),
            s.field);
      }
    }
    Totals& t = invoice.totals;
    t.tax = tax_total;
    t.tax_inclusive = t.tax_exclusive + t.tax;
    t.payable = t.tax_inclusive - t.prepaid + t.rounding;
  }
  const Totals& t = invoice.totals;
  struct Check {
    const StatedAmount* stated;
    const Decimal* computed;
  };
  const Check checks[] = {
      {&stated.line_total, &t.line_total},
      {&stated.allowance_total, &t.allowance_total},
      {&stated.charge_total, &t.charge_total},
      {&stated.tax_exclusive, &t.tax_exclusive},
      {&stated.tax, &t.tax},
      {&stated.tax_inclusive, &t.tax_inclusive},
      {&stated.payable, &t.payable},
  };
  for (const auto& c : checks) {
    if (c.stated->value && *c.stated->value != *c.computed) {
      return mismatch(c.stated->field, *c.stated->value, *c.computed, "lines");
    }
  }
  return {};
}

}  // namespace internal
}  // namespace postline::invoice
