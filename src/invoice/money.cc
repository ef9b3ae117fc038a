#include "postline/money.h"

#include <fmt/format.h>
#include <unicode/locid.h>
#include <unicode/numberformatter.h>
#include <unicode/ucurr.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace postline::invoice {
namespace {

constexpr int kMaxScale = 36;

Int128 Pow10(int n) {
  Int128 r = 1;
  for (int i = 0; i < n; ++i) r *= 10;
  return r;
}

Int128 CheckedMul(Int128 a, Int128 b) {
  Int128 r;
  if (__builtin_mul_overflow(a, b, &r)) throw std::overflow_error("decimal overflow");
  return r;
}

Int128 CheckedAdd(Int128 a, Int128 b) {
  Int128 r;
  if (__builtin_add_overflow(a, b, &r)) throw std::overflow_error("decimal overflow");
  return r;
}

// q = n / d rounded half away from zero; d != 0.
Int128 DivRoundHalfUp(Int128 n, Int128 d) {
  bool negative = (n < 0) != (d < 0);
  Int128 an = n < 0 ? -n : n;
  Int128 ad = d < 0 ? -d : d;
  Int128 q = an / ad;
  Int128 r = an % ad;
  if (r * 2 >= ad) ++q;
  return negative ? -q : q;
}

std::string Int128ToString(Int128 v) {
  if (v == 0) return "0";
  bool negative = v < 0;
  std::string s;
  while (v != 0) {
    int digit = static_cast<int>(v % 10);
    s.push_back(static_cast<char>('0' + (digit < 0 ? -digit : digit)));
    v /= 10;
  }
  if (negative) s.push_back('-');
  std::reverse(s.begin(), s.end());
  return s;
}

std::string IcuToUtf8(const icu::UnicodeString& u) {
  std::string out;
  u.toUTF8String(out);
  return out;
}

}  // namespace

Decimal Decimal::FromUnits(Int128 units, int scale) {
  Decimal d;
  d.units_ = units;
  d.scale_ = std::clamp(scale, 0, kMaxScale);
  return d;
}

Result<Decimal> Decimal::Parse(std::string_view text, std::string_view field) {
  auto fail = [&]() {
    return InvalidInput(
        "invalid_decimal",
        fmt::format("{}: \"{}\" is not a decimal number; allowed: digits with an optional sign "
                    "and up to {} decimals after a '.', e.g. \"1234.56\"",
                    field, text, kMaxParseScale),
        std::string(field));
  };
  std::string_view s = text;
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  bool negative = false;
  if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  if (s.empty() || !std::isdigit(static_cast<unsigned char>(s.front()))) return fail();
  Int128 units = 0;
  int scale = 0;
  int digits = 0;
  bool seen_point = false;
  for (char c : s) {
    if (c == '.') {
      if (seen_point) return fail();
      seen_point = true;
      continue;
    }
    if (!std::isdigit(static_cast<unsigned char>(c))) return fail();
    if (digits > 0 || c != '0') ++digits;
    if (seen_point) ++scale;
    units = units * 10 + (c - '0');
  }
  if (seen_point && scale == 0) return fail();
  if (scale > kMaxParseScale || digits > kMaxParseDigits) return fail();
  return FromUnits(negative ? -units : units, scale);
}

Int128 Decimal::UnitsAt(int scale) const {
  if (scale >= scale_) return CheckedMul(units_, Pow10(scale - scale_));
  return DivRoundHalfUp(units_, Pow10(scale_ - scale));
}

Decimal operator+(const Decimal& a, const Decimal& b) {
  int scale = std::max(a.scale_, b.scale_);
  return Decimal::FromUnits(CheckedAdd(a.UnitsAt(scale), b.UnitsAt(scale)), scale);
}

Decimal operator-(const Decimal& a, const Decimal& b) { return a + (-b); }

Decimal operator*(const Decimal& a, const Decimal& b) {
  int scale = a.scale_ + b.scale_;
  if (scale > kMaxScale) throw std::overflow_error("decimal scale overflow");
  return Decimal::FromUnits(CheckedMul(a.units_, b.units_), scale);
}

Decimal Decimal::DivideRoundHalfUp(const Decimal& a, const Decimal& b, int scale) {
  // a/b = (ua / 10^sa) / (ub / 10^sb); in units of 10^-scale:
  // ua × 10^(scale + sb − sa) / ub.
  int shift = scale + b.scale_ - a.scale_;
  Int128 n = a.units_;
  Int128 d = b.units_;
  if (shift >= 0) {
    n = CheckedMul(n, Pow10(shift));
  } else {
    d = CheckedMul(d, Pow10(-shift));
  }
  return FromUnits(DivRoundHalfUp(n, d), scale);
}

std::strong_ordering operator<=>(const Decimal& a, const Decimal& b) {
  int scale = std::max(a.scale_, b.scale_);
  return a.UnitsAt(scale) <=> b.UnitsAt(scale);
}

std::string Decimal::ToString() const {
  std::string digits = Int128ToString(units_ < 0 ? -units_ : units_);
  if (scale_ > 0) {
    if (static_cast<int>(digits.size()) <= scale_) {
      digits.insert(0, static_cast<size_t>(scale_ - static_cast<int>(digits.size()) + 1), '0');
    }
    digits.insert(digits.size() - static_cast<size_t>(scale_), 1, '.');
  }
  return units_ < 0 ? "-" + digits : digits;
}

std::string Decimal::ToTrimmedString() const {
  std::string s = ToString();
  if (s.find('.') == std::string::npos) return s;
  while (s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

Result<int> CurrencyMinorUnits(std::string_view code) {
  auto unknown = [&]() {
    return InvalidInput("unknown_currency",
                        fmt::format("currency \"{}\" is not an ISO 4217 code known to ICU; "
                                    "allowed: three upper-case letters such as EUR, NGN, JPY",
                                    code),
                        "currency");
  };
  if (code.size() != 3 ||
      !std::all_of(code.begin(), code.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) {
    return unknown();
  }
  icu::UnicodeString ucode = icu::UnicodeString::fromUTF8(icu::StringPiece(code.data(), 3));
  UErrorCode status = U_ZERO_ERROR;
  UBool available = ucurr_isAvailable(ucode.getTerminatedBuffer(), U_DATE_MIN, U_DATE_MAX, &status);
  if (U_FAILURE(status) || !available) return unknown();
  status = U_ZERO_ERROR;
  int32_t digits = ucurr_getDefaultFractionDigits(ucode.getTerminatedBuffer(), &status);
  if (U_FAILURE(status)) return unknown();
  return static_cast<int>(digits);
}

Result<std::string> FormatMoney(const Decimal& amount, std::string_view currency,
                                std::string_view locale) {
  auto minor = CurrencyMinorUnits(currency);
  if (!minor) return std::unexpected(minor.error());
  UErrorCode status = U_ZERO_ERROR;
  icu::UnicodeString ucode = icu::UnicodeString::fromUTF8(icu::StringPiece(currency.data(), 3));
  icu::CurrencyUnit unit(ucode.getTerminatedBuffer(), status);
  icu::Locale loc(std::string(locale).c_str());
  std::string value = amount.ToString(*minor);
  icu::number::FormattedNumber formatted =
      icu::number::NumberFormatter::withLocale(loc)
          .unit(unit)
          .precision(icu::number::Precision::fixedFraction(*minor))
          .formatDecimal(icu::StringPiece(value), status);
  icu::UnicodeString out = formatted.toString(status);
  if (U_FAILURE(status)) {
    return MakeError(ErrorKind::kInternal, "icu_error",
                     fmt::format("ICU could not format {} {} for locale {}: {}", value, currency,
                                 locale, u_errorName(status)));
  }
  return IcuToUtf8(out);
}

Result<std::string> FormatNumber(const Decimal& value, std::string_view locale,
                                 int max_fraction_digits) {
  UErrorCode status = U_ZERO_ERROR;
  icu::Locale loc(std::string(locale).c_str());
  std::string text = value.ToTrimmedString();
  icu::number::FormattedNumber formatted =
      icu::number::NumberFormatter::withLocale(loc)
          .precision(icu::number::Precision::maxFraction(max_fraction_digits))
          .formatDecimal(icu::StringPiece(text), status);
  icu::UnicodeString out = formatted.toString(status);
  if (U_FAILURE(status)) {
    return MakeError(ErrorKind::kInternal, "icu_error",
                     fmt::format("ICU could not format {} for locale {}: {}", text, locale,
                                 u_errorName(status)));
  }
  return IcuToUtf8(out);
}

}  // namespace postline::invoice
