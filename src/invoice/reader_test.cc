// Tests of Decimal, currencies, the JSON and UBL readers and totals checking.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "postline/invoice.h"
#include "postline/money.h"
#include "test_util.h"

namespace postline::invoice {
namespace {

using ::testing::HasSubstr;
using namespace postline::invoice::testing;

Decimal D(std::string_view s) {
  auto d = Decimal::Parse(s);
  EXPECT_TRUE(d.has_value()) << s;
  return d.value_or(Decimal());
}

std::vector<fs::path> UblFiles() { return FilesWithExtension(UblDir(), ".xml", true); }

TEST(DecimalTest, ParsesMinorUnits) {
  EXPECT_EQ(D("144.20").UnitsAt(2), 14420);
  EXPECT_EQ(D("144.2").UnitsAt(2), 14420);
  EXPECT_EQ(D("-0.05").UnitsAt(2), -5);
  EXPECT_EQ(D("7").ToString(), "7");
  EXPECT_EQ(D("0.5").ToString(2), "0.50");
  EXPECT_EQ(D("-1234.5").ToString(), "-1234.5");
}

TEST(DecimalTest, RefusesNonDecimals) {
  for (std::string_view bad : {"", "1e3", "1,5", "12.", ".5", "abc", "1.2.3", "--1", "1.1234567890",
                               "123456789012345678901"}) {
    auto d = Decimal::Parse(bad, "/lines/0/unit_price");
    ASSERT_FALSE(d.has_value()) << bad;
    EXPECT_EQ(d.error().code, "invalid_decimal");
    EXPECT_THAT(d.error().message, HasSubstr("/lines/0/unit_price"));
  }
}

TEST(DecimalTest, RoundsHalfAwayFromZero) {
  EXPECT_EQ(D("1.005").RoundHalfUp(2).ToString(), "1.01");
  EXPECT_EQ(D("1.004").RoundHalfUp(2).ToString(), "1.00");
  EXPECT_EQ(D("-1.005").RoundHalfUp(2).ToString(), "-1.01");
  EXPECT_EQ(D("2.5").RoundHalfUp(0).ToString(), "3");
  EXPECT_EQ(D("0.0005").RoundHalfUp(3).ToString(), "0.001");
}

TEST(DecimalTest, VatOfTwentyPercentIsExact) {
  Decimal tax = Decimal::DivideRoundHalfUp(D("302.00") * D("20"), Decimal::FromInt(100), 2);
  EXPECT_EQ(tax.ToString(), "60.40");
  EXPECT_EQ(tax.UnitsAt(2), 6040);
}

TEST(DecimalTest, ArithmeticAndComparison) {
  EXPECT_EQ(D("0.1") + D("0.2"), D("0.3"));
  EXPECT_EQ((D("1.50") - D("2")).ToString(), "-0.50");
  EXPECT_EQ((D("3") * D("0.333")).ToString(), "0.999");
  EXPECT_LT(D("-1"), D("0.001"));
  EXPECT_EQ(D("1.50"), D("1.5"));
  EXPECT_EQ(Decimal::DivideRoundHalfUp(D("100"), D("366"), 4).ToString(), "0.2732");
}

TEST(CurrencyTest, MinorUnitsComeFromIcu) {
  EXPECT_EQ(CurrencyMinorUnits("JPY").value_or(-1), 0);
  EXPECT_EQ(CurrencyMinorUnits("KWD").value_or(-1), 3);
  EXPECT_EQ(CurrencyMinorUnits("EUR").value_or(-1), 2);
  EXPECT_EQ(CurrencyMinorUnits("NGN").value_or(-1), 2);
  for (std::string_view bad : {"XYZ", "eur", "EURO", ""}) {
    auto r = CurrencyMinorUnits(bad);
    ASSERT_FALSE(r.has_value()) << bad;
    EXPECT_EQ(r.error().code, "unknown_currency");
  }
}

TEST(CurrencyTest, FormatsPerLocaleWithoutDouble) {
  EXPECT_EQ(FormatMoney(D("1234.56"), "EUR", "de_DE").value(), "1.234,56\u00a0€");
  EXPECT_EQ(FormatMoney(D("123456"), "INR", "en_IN").value(), "₹1,23,456.00");
  EXPECT_EQ(FormatMoney(D("99.9"), "TRY", "tr_TR").value(), "₺99,90");
  EXPECT_EQ(FormatMoney(D("1500"), "JPY", "ja_JP").value(), "￥1,500");
  EXPECT_THAT(FormatMoney(D("25000.5"), "NGN", "en_NG").value(), HasSubstr("₦25,000.50"));
  // 20 significant digits survive formatting (a double would lose them).
  EXPECT_THAT(FormatMoney(D("123456789012345678.91"), "EUR", "en_IE").value(),
              HasSubstr("123,456,789,012,345,678.91"));
}

constexpr std::string_view kJson = R"({
  "number": "INV-1",
  "issue_date": "2026-01-10",
  "due_date": "2026-02-10",
  "currency": "EUR",
  "seller": {"name": "Schule Süd", "country": "DE", "address_lines": ["Hauptstraße 1"],
             "city": "Köln", "postcode": "50667", "tax_id": "DE123456789"},
  "buyer": {"name": "Zoë Müller", "email": "zoe@example.com"},
  "lines": [
    {"description": "Tuition", "quantity": "1", "unit_price": "302.00",
     "tax_category": "S", "tax_rate": "20"},
    {"description": "Books", "quantity": "3", "unit_price": "3.335", "tax_category": "S",
     "tax_rate": "20", "allowances": [{"amount": "1.00", "reason": "sibling"}]}
  ],
  "charges": [{"amount": "5", "reason": "Postage", "tax_category": "S", "tax_rate": "20"}],
  "prepaid_amount": "10.00"
})";

TEST(JsonReaderTest, ComputesLinesTaxAndTotals) {
  auto inv = ParseInvoice(kJson, FormatHint::kAuto, "a.json");
  ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
  EXPECT_EQ(inv->source_format, SourceFormat::kJson);
  EXPECT_EQ(inv->buyer.name, "Zoë Müller");
  ASSERT_EQ(inv->lines.size(), 2u);
  EXPECT_EQ(inv->lines[0].net_amount.ToString(), "302.00");
  EXPECT_EQ(inv->lines[1].net_amount.ToString(), "9.01");  // 10.005 → 10.01 − 1.00
  ASSERT_EQ(inv->tax_breakdown.size(), 1u);
  EXPECT_EQ(inv->tax_breakdown[0].taxable_amount.ToString(), "316.01");
  EXPECT_EQ(inv->tax_breakdown[0].tax_amount.ToString(), "63.20");
  EXPECT_EQ(inv->totals.line_total.ToString(), "311.01");
  EXPECT_EQ(inv->totals.charge_total.ToString(), "5.00");
  EXPECT_EQ(inv->totals.tax_exclusive.ToString(), "316.01");
  EXPECT_EQ(inv->totals.tax_inclusive.ToString(), "379.21");
  EXPECT_EQ(inv->totals.payable.ToString(), "369.21");
}

std::string Replace(std::string_view text, std::string_view from, std::string_view to) {
  std::string s(text);
  auto pos = s.find(from);
  EXPECT_NE(pos, std::string::npos) << from;
  if (pos != std::string::npos) s.replace(pos, from.size(), to);
  return s;
}

TEST(JsonReaderTest, StatedTotalsAreChecked) {
  auto ok =
      ParseInvoice(Replace(kJson, R"("prepaid_amount")",
                           R"("totals": {"payable": "369.21", "tax": "63.20"}, "prepaid_amount")"));
  EXPECT_TRUE(ok.has_value()) << ok.error().ToString();
  auto bad = ParseInvoice(
      Replace(kJson, R"("prepaid_amount")", R"("totals": {"payable": "369.22"}, "prepaid_amount")"),
      FormatHint::kJson, "fees.json");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, "totals_mismatch");
  EXPECT_THAT(bad.error().message,
              HasSubstr("fees.json: /totals/payable: invoice says 369.22, lines compute 369.21"));
}

TEST(JsonReaderTest, BadInputNamesFileAndField) {
  struct Case {
    std::string json;
    std::string code;
    std::string text;
  };
  const Case cases[] = {
      {"{\n  \"number\": \"x\",\n  oops\n}", "malformed_json", "line 3, column 3"},
      {Replace(kJson, R"("number": "INV-1",)", ""), "missing_field", "/number is required"},
      {Replace(kJson, R"("currency": "EUR")", R"("currency": "XQQ")"), "unknown_currency", "XQQ"},
      {Replace(kJson, R"("quantity": "3")", R"("quantity": "-3")"), "negative_quantity",
       "/lines/1/quantity"},
      {Replace(kJson, R"("due_date": "2026-02-10")", R"("due_date": "2026-01-09")"),
       "due_before_issue", "/due_date 2026-01-09 is before the issue date 2026-01-10"},
      {Replace(kJson, R"("issue_date": "2026-01-10")", R"("issue_date": "2026-02-30")"),
       "invalid_field", "/issue_date"},
      {Replace(kJson, R"("unit_price": "302.00")", R"("unit_price": 302.5)"), "invalid_field",
       "/lines/0/unit_price"},
      {Replace(kJson, R"("tax_category": "S", "tax_rate": "20"},)",
               R"("tax_category": "X", "tax_rate": "20"},)"),
       "invalid_tax_category", "allowed: S, Z, E, AE"},
      {Replace(kJson, R"("name": "Zoë Müller", )", ""), "missing_field", "/buyer/name"},
      {Replace(kJson, R"("tax_category": "S", "tax_rate": "20"},)",
               R"("tax_category": "E", "tax_rate": "20"},)"),
       "invalid_tax_rate", "tax rate 20 % is not allowed for category E; allowed: 0"},
      {Replace(kJson, R"("prepaid_amount")", R"("prepaid")"), "unknown_field",
       "/prepaid is not a field"},
      {Replace(kJson, R"("unit_price": "302.00")", R"("price": "302.00")"), "unknown_field",
       "/lines/0/price"},
      {Replace(kJson, R"("unit_price": "302.00")", R"("unit_price": "1e3")"), "invalid_decimal",
       "/lines/0/unit_price"},
      // Numbers beyond double range threw out_of_range past the reader.
      {Replace(kJson, R"("quantity": "3")", R"("quantity": 1e400)"), "number_out_of_range",
       "/lines/1/quantity: number 1e400 is out of range"},
      {Replace(kJson, R"("prepaid_amount": "10.00")",
               R"("prepaid_amount": "10.00", "x": -)" + std::string(400, '1')),
       "number_out_of_range", "/x: number"},
      {Replace(
           kJson, R"("prepaid_amount": "10.00")",
           R"("prepaid_amount": "10.00", "notes": )" + std::string(40, '[') + std::string(40, ']')),
       "json_too_deep", "/notes/0/0/0"},
  };
  for (const auto& c : cases) {
    auto r = ParseInvoice(c.json, FormatHint::kAuto, "bad.json");
    ASSERT_FALSE(r.has_value()) << c.code;
    EXPECT_EQ(r.error().code, c.code) << r.error().ToString();
    EXPECT_THAT(r.error().message, HasSubstr("bad.json: ")) << c.code;
    EXPECT_THAT(r.error().message, HasSubstr(c.text)) << r.error().ToString();
  }
}

TEST(UblReaderTest, EveryRealFileLoadsAndMatchesItsLegalMonetaryTotal) {
  if (!fs::is_directory(UblDir())) {
    GTEST_SKIP() << "UBL data set not found at " << UblDir()
                 << " (set POSTLINE_UBL_DIR to its folder)";
  }
  auto files = UblFiles();
  EXPECT_EQ(files.size(), 43u);
  int credit_notes = 0;
  for (const auto& file : files) {
    auto inv = LoadInvoiceFile(file.string());
    ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
    EXPECT_EQ(inv->source_format, SourceFormat::kUbl);
    EXPECT_EQ(inv->source_path, file.string());
    EXPECT_FALSE(inv->number.empty());
    if (inv->type == DocumentType::kCreditNote) ++credit_notes;
    // The computed totals equal the stated LegalMonetaryTotal (the reader
    // already refuses a mismatch; this pins the figures independently).
    std::string xml = ReadFile(file);
    auto payable_pos = xml.find("PayableAmount");
    ASSERT_NE(payable_pos, std::string::npos);
    auto start = xml.find('>', payable_pos) + 1;
    auto stated = Decimal::Parse(xml.substr(start, xml.find('<', start) - start));
    ASSERT_TRUE(stated.has_value()) << file;
    EXPECT_EQ(inv->totals.payable, *stated)
        << file << ": computed " << inv->totals.payable.ToString();
  }
  EXPECT_GE(credit_notes, 1);
}

TEST(UblReaderTest, NegativeCorrectionInvoiceKeepsNegativeQuantities) {
  if (!fs::is_directory(UblDir())) GTEST_SKIP() << "UBL data set not found at " << UblDir();
  auto inv = LoadInvoiceFile((UblDir() / "peppol/base-negative-inv-correction.xml").string());
  ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
  EXPECT_TRUE(inv->totals.payable.IsNegative()) << inv->totals.payable.ToString();
}

TEST(UblReaderTest, BuyerElectronicAddressOfSchemeEmIsTheContactEmail) {
  if (!fs::is_directory(UblDir())) GTEST_SKIP() << "UBL data set not found at " << UblDir();
  // XRechnung 01.01a gives the buyer only as cbc:EndpointID schemeID="EM".
  auto inv = LoadInvoiceFile((UblDir() / "xrechnung/01.01a-INVOICE_ubl.xml").string());
  ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
  EXPECT_EQ(inv->buyer.email, "buyer@info.de");
}

TEST(UblReaderTest, TamperedTotalsAndMissingFieldsAreNamed) {
  if (!fs::is_directory(UblDir())) GTEST_SKIP() << "UBL data set not found at " << UblDir();
  std::string xml = ReadFile(UblDir() / "peppol/base-example.xml");
  auto bad = ParseInvoice(Replace(xml, R"(<cbc:PayableAmount currencyID="EUR">1656.25<)",
                                  R"(<cbc:PayableAmount currencyID="EUR">1656.26<)"),
                          FormatHint::kAuto, "base.xml");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, "totals_mismatch");
  EXPECT_THAT(bad.error().message,
              HasSubstr("LegalMonetaryTotal/PayableAmount: invoice says 1656.26, lines compute "
                        "1656.25"));

  auto missing =
      ParseInvoice(Replace(xml, "<cbc:ID>Snippet1</cbc:ID>", ""), FormatHint::kAuto, "base.xml");
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, "missing_field");
  EXPECT_THAT(missing.error().message, HasSubstr("/Invoice/cbc:ID is required"));

  auto malformed =
      ParseInvoice(Replace(xml, "</cac:LegalMonetaryTotal>", ""), FormatHint::kAuto, "base.xml");
  ASSERT_FALSE(malformed.has_value());
  EXPECT_EQ(malformed.error().code, "malformed_xml");
  EXPECT_THAT(malformed.error().message, HasSubstr("line "));

  auto tax =
      ParseInvoice(Replace(Replace(xml, R"(<cbc:TaxAmount currencyID="EUR">331.25</cbc:TaxAmount>
        <cac:TaxSubtotal>)",
                                   R"(<cbc:TaxAmount currencyID="EUR">341.25</cbc:TaxAmount>
        <cac:TaxSubtotal>)"),
                           R"(<cbc:TaxAmount currencyID="EUR">331.25</cbc:TaxAmount>
            <cac:TaxCategory>)",
                           R"(<cbc:TaxAmount currencyID="EUR">341.25</cbc:TaxAmount>
            <cac:TaxCategory>)"),
                   FormatHint::kAuto, "base.xml");
  ASSERT_FALSE(tax.has_value());
  EXPECT_EQ(tax.error().code, "totals_mismatch");
  EXPECT_THAT(tax.error().message, HasSubstr("cbc:TaxAmount: invoice says 341.25"));
}

TEST(UblReaderTest, StatedTaxWithinPerLineRoundingIsAccepted) {
  if (!fs::is_directory(UblDir())) GTEST_SKIP() << "UBL data set not found at " << UblDir();
  std::string xml = ReadFile(UblDir() / "peppol/base-example.xml");
  // 331.25 → 331.26 everywhere: one minor unit off per-group rounding, which
  // per-line rounding of two lines and one charge can produce.
  std::string off = xml;
  for (auto [from, to] :
       {std::pair<std::string, std::string>{">331.25<", ">331.26<"}, {">1656.25<", ">1656.26<"}}) {
    for (size_t pos = off.find(from); pos != std::string::npos; pos = off.find(from, pos)) {
      off.replace(pos, from.size(), to);
    }
  }
  auto inv = ParseInvoice(off, FormatHint::kAuto, "base.xml");
  ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
  EXPECT_EQ(inv->totals.tax.ToString(), "331.26");
  EXPECT_EQ(inv->totals.payable.ToString(), "1656.26");
  ASSERT_EQ(inv->remarks.size(), 1u);
  EXPECT_THAT(inv->remarks[0], HasSubstr("331.25"));
}

TEST(JsonReaderTest, CreditNoteAndHugeAmounts) {
  auto credit = ParseInvoice(
      Replace(kJson, R"("number": "INV-1",)", R"("number": "CN-1", "type": "credit_note",)"));
  ASSERT_TRUE(credit.has_value()) << credit.error().ToString();
  EXPECT_EQ(credit->type, DocumentType::kCreditNote);
  EXPECT_EQ(credit->totals.payable.ToString(), "369.21");
  // 20-digit quantity × 20-digit price exceeds 128 bits.
  auto huge = ParseInvoice(Replace(kJson, R"("quantity": "3", "unit_price": "3.335")",
                                   R"("quantity": "99999999999999999999",
                                      "unit_price": "99999999999999999999")"));
  ASSERT_FALSE(huge.has_value());
  EXPECT_EQ(huge.error().code, "amount_overflow");
}

// A JSON integer above 2^63 was read with get<long long>() and wrapped:
// 18446744073709551615 became -1.
TEST(JsonReaderTest, IntegerAmountsAboveInt64AreNotWrapped) {
  auto r =
      ParseInvoice(Replace(kJson, R"("quantity": "3")", R"("quantity": 18446744073709551615)"));
  if (r) {
    EXPECT_EQ(r->lines[1].quantity.ToString(), "18446744073709551615");
  } else {
    EXPECT_NE(r.error().code, "negative_quantity") << r.error().ToString();
    EXPECT_THAT(r.error().message, ::testing::Not(HasSubstr("-1"))) << r.error().ToString();
  }
}

TEST(JsonReaderTest, SchemaDocumentsEveryFieldTheExamplesUse) {
  auto schema = nlohmann::json::parse(ReadFile(SourceDir() / "docs/invoice.schema.json"));
  const auto& top = schema["properties"];
  const auto& line = schema["$defs"]["line"]["properties"];
  auto files = FilesWithExtension(SourceDir() / "examples", ".json", false);
  ASSERT_FALSE(files.empty());
  for (const auto& file : files) {
    auto doc = nlohmann::json::parse(ReadFile(file));
    for (const auto& [key, value] : doc.items()) {
      EXPECT_TRUE(top.contains(key)) << file << ": " << key << " is not in the schema";
    }
    for (const auto& l : doc["lines"]) {
      for (const auto& [key, value] : l.items()) {
        EXPECT_TRUE(line.contains(key)) << file << ": lines/" << key << " is not in the schema";
      }
    }
    for (const auto& key : schema["required"]) {
      EXPECT_TRUE(doc.contains(key.get<std::string>())) << file << " lacks " << key;
    }
  }
}

TEST(UblReaderTest, UnknownCurrencyAndWrongRoot) {
  if (!fs::is_directory(UblDir())) GTEST_SKIP() << "UBL data set not found at " << UblDir();
  std::string xml = ReadFile(UblDir() / "peppol/base-example.xml");
  auto cur =
      ParseInvoice(Replace(xml, "<cbc:DocumentCurrencyCode>EUR<", "<cbc:DocumentCurrencyCode>EUX<"),
                   FormatHint::kAuto, "base.xml");
  ASSERT_FALSE(cur.has_value());
  EXPECT_EQ(cur.error().code, "unknown_currency");
  EXPECT_THAT(cur.error().message, HasSubstr("base.xml: cbc:DocumentCurrencyCode"));
  auto root = ParseInvoice("<Order><ID>1</ID></Order>", FormatHint::kAuto, "o.xml");
  ASSERT_FALSE(root.has_value());
  EXPECT_THAT(root.error().message, HasSubstr("allowed: UBL 2.1 <Invoice> or <CreditNote>"));
}

TEST(LoadInvoiceFileTest, MissingFileIsNotFound) {
  auto r = LoadInvoiceFile("/nonexistent/invoice.json");
  ASSERT_FALSE(r.has_value());
  EXPECT_EQ(r.error().kind, ErrorKind::kNotFound);
  EXPECT_THAT(r.error().message, HasSubstr("/nonexistent/invoice.json"));
}

}  // namespace
}  // namespace postline::invoice
