// postline/money.h — exact decimal amounts and currency facts for invoices.
//
// Money, quantities, prices and rates are `Decimal`s: a signed 128-bit integer
// count of units of 10^-scale. They are parsed from and printed to decimal
// strings ("1234.56") and never pass through binary floating point.
//
// Rounding rule (docs/invoice.md, "Rounding"): RoundHalfUp rounds half away
// from zero ("1.005" → "1.01", "-1.005" → "-1.01"), the rule EN 16931 uses for
// amounts rounded to the currency's minor unit.
//
// Thread-safety: Decimal is a plain value. The free functions are reentrant
// (ICU formatters are created per call).
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "postline/error.h"

namespace postline::invoice {

// A signed 128-bit integer (GCC/Clang extension; __extension__ keeps
// -Wpedantic quiet).
__extension__ typedef __int128 Int128;

class Decimal {
 public:
  // Largest scale (digits after the point) Parse accepts.
  static constexpr int kMaxParseScale = 9;
  // Largest number of significant digits Parse accepts.
  static constexpr int kMaxParseDigits = 20;

  constexpr Decimal() = default;

  // `units` × 10^-scale; REQUIRES: 0 <= scale <= 36.
  static Decimal FromUnits(Int128 units, int scale);
  static Decimal FromInt(long long value) { return FromUnits(value, 0); }

  // Parses a plain decimal string: optional sign, digits, optional "."
  // followed by digits ("1234.56", "-3", "+0.5", ".5" is refused). Surrounding
  // ASCII white space is ignored. No exponent, no grouping separators.
  // Errors: kInvalidInput "invalid_decimal" (message names `field` and the
  // allowed form) for anything else, more than kMaxParseScale decimals or more
  // than kMaxParseDigits digits.
  static Result<Decimal> Parse(std::string_view text, std::string_view field = "amount");

  Int128 units() const { return units_; }
  int scale() const { return scale_; }
  bool IsZero() const { return units_ == 0; }
  bool IsNegative() const { return units_ < 0; }

  // The value in units of 10^-scale, rounded half away from zero when
  // `scale` is smaller than scale(). Throws std::overflow_error when the
  // result does not fit (only for absurd inputs; readers turn it into an
  // "amount_overflow" error).
  Int128 UnitsAt(int scale) const;
  // Rounds half away from zero to `scale` decimals (or extends exactly).
  Decimal RoundHalfUp(int scale) const { return FromUnits(UnitsAt(scale), scale); }

  // Exact arithmetic; the result's scale is the larger scale (sum) or the
  // sum of scales (product). Throw std::overflow_error on overflow.
  friend Decimal operator+(const Decimal& a, const Decimal& b);
  friend Decimal operator-(const Decimal& a, const Decimal& b);
  friend Decimal operator*(const Decimal& a, const Decimal& b);
  Decimal operator-() const { return FromUnits(-units_, scale_); }
  Decimal& operator+=(const Decimal& b) { return *this = *this + b; }
  Decimal& operator-=(const Decimal& b) { return *this = *this - b; }
  Decimal Abs() const { return units_ < 0 ? -*this : *this; }

  // a / b rounded half away from zero to `scale` decimals.
  // REQUIRES: !b.IsZero(). Throws std::overflow_error on overflow.
  static Decimal DivideRoundHalfUp(const Decimal& a, const Decimal& b, int scale);

  // Numeric comparison (1.50 == 1.5).
  friend std::strong_ordering operator<=>(const Decimal& a, const Decimal& b);
  friend bool operator==(const Decimal& a, const Decimal& b) {
    return (a <=> b) == std::strong_ordering::equal;
  }

  // Plain form with exactly scale() decimals: "-1234.50", "0.000", "7".
  std::string ToString() const;
  // Plain form with exactly `scale` decimals after RoundHalfUp(scale).
  std::string ToString(int scale) const { return RoundHalfUp(scale).ToString(); }
  // Plain form without trailing zero decimals: "1.5", "25", "0.125".
  std::string ToTrimmedString() const;

 private:
  Int128 units_ = 0;
  int scale_ = 0;
};

// The number of minor-unit digits of an ISO 4217 currency according to ICU
// (ucurr_getDefaultFractionDigits): EUR 2, JPY 0, KWD 3, NGN 2.
// Errors: kInvalidInput "unknown_currency" when `code` is not three letters
// or ICU does not know it as a currency at any date.
Result<int> CurrencyMinorUnits(std::string_view code);

// Formats `amount` as money for `locale` (ICU locale id such as "de_DE",
// "en_IN", "ar_KW@numbers=latn") with the currency's symbol and its minor
// units (rounded half up): "1.234,56 €" (de_DE), "₹1,23,456.00" (en_IN).
// The decimal string is handed to ICU as a decimal number (formatDecimal),
// never as a double. Errors: kInvalidInput "unknown_currency"; kInternal
// "icu_error" when ICU fails.
Result<std::string> FormatMoney(const Decimal& amount, std::string_view currency,
                                std::string_view locale);

// Formats a plain number (quantities, rates) for `locale` with at most
// `max_fraction_digits` decimals and no trailing zeros: "1.234,5" (de_DE).
// Errors: kInternal "icu_error".
Result<std::string> FormatNumber(const Decimal& value, std::string_view locale,
                                 int max_fraction_digits = 6);

}  // namespace postline::invoice
