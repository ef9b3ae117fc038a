// Tests of the PDF renderer: text comes back out of the PDF with poppler's
// pdftotext, pages break with the table header repeated, output is
// deterministic, and every real UBL file and every example renders.

#include <cairo.h>
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "postline/invoice.h"
#include "test_util.h"

namespace postline::invoice {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace postline::invoice::testing;

// A small JSON invoice with the given parties, currency and lines.
std::string JsonInvoice(const std::string& seller, const std::string& country,
                        const std::string& buyer, const std::string& currency,
                        const std::string& lines_json, const std::string& number = "T-1",
                        const std::string& extra = "") {
  return fmt::format(R"({{
    "number": "{}", "issue_date": "2026-03-01", "due_date": "2026-03-15", "currency": "{}",
    "seller": {{"name": "{}", "country": "{}", "address_lines": ["Street 1"], "city": "City"}},
    "buyer": {{"name": "{}", "email": "buyer@example.com"}},
    "lines": [{}] {} }})",
                     number, currency, seller, country, buyer, lines_json, extra);
}

std::string Line(const std::string& description, const std::string& qty, const std::string& price,
                 const std::string& rate = "0", const std::string& category = "Z") {
  return fmt::format(
      R"({{"description": "{}", "quantity": "{}", "unit_price": "{}", "tax_category": "{}", "tax_rate": "{}"}})",
      description, qty, price, category, rate);
}

// Substring test that doesn't print the (binary) haystack on failure.
bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

Invoice Parse(const std::string& json) {
  auto inv = ParseInvoice(json, FormatHint::kJson, "test.json");
  EXPECT_TRUE(inv.has_value()) << inv.error().ToString();
  return inv.value_or(Invoice{});
}

std::string Render(const Invoice& inv, const InvoiceRenderSettings& settings = {}) {
  auto pdf = RenderInvoicePdf(inv, settings);
  EXPECT_TRUE(pdf.has_value()) << pdf.error().ToString();
  return pdf.value_or("");
}

TEST(PdfRenderTest, NamesInManyScriptsComeBackAsText) {
  Invoice inv = Parse(
      JsonInvoice("Şükrü Çağlayan İnşaat", "TR", "Zoë Müller", "TRY",
                  Line("株式会社テスト", "1", "99.90") + "," + Line("شركة المثال", "1", "10")));
  std::string pdf = Render(inv);
  ASSERT_TRUE(pdf.starts_with("%PDF-"));
  std::string text = PdfText(pdf);
  EXPECT_THAT(text, HasSubstr("Şükrü Çağlayan İnşaat"));
  EXPECT_THAT(text, HasSubstr("Zoë Müller"));
  EXPECT_THAT(text, HasSubstr("株式会社テスト"));
  // pdftotext gives Arabic in logical order but may put a space where a
  // letter does not join the next one (its word-gap heuristic); compare
  // without white space.
  EXPECT_THAT(Squeeze(text), HasSubstr(Squeeze("شركة المثال")));
  EXPECT_THAT(text, HasSubstr("₺99,90"));  // tr_TR from the seller's country
}

TEST(PdfRenderTest, CurrencySignsAreRealGlyphsAndAmountsFollowTheLocale) {
  struct Case {
    std::string country, currency, price, expected, sign;
  };
  const Case cases[] = {
      {"DE", "EUR", "1234.56", "1.234,56 €", "\u20ac"},
      {"IN", "INR", "123456", "₹1,23,456.00", "\u20b9"},
      {"NG", "NGN", "25000.5", "₦25,000.50", "\u20a6"},
      {"TR", "TRY", "99.9", "₺99,90", "\u20ba"},
  };
  for (const auto& c : cases) {
    Invoice inv =
        Parse(JsonInvoice("Seller", c.country, "Buyer", c.currency, Line("Item", "1", c.price)));
    auto formatted = FormatMoney(inv.totals.payable, c.currency, LocaleFor(inv, {}));
    ASSERT_TRUE(formatted.has_value());
    EXPECT_EQ(Squeeze(*formatted), Squeeze(c.expected)) << c.currency;
    std::string text = PdfText(Render(inv));
    EXPECT_THAT(text, HasSubstr(c.sign)) << c.currency;
    EXPECT_THAT(Squeeze(text), HasSubstr(Squeeze(c.expected))) << c.currency;
  }
}

TEST(PdfRenderTest, LongInvoiceBreaksPagesWithHeaderOnEachAndTotalsOnLast) {
  std::string lines;
  for (int i = 1; i <= 60; ++i) {
    if (i > 1) lines += ",";
    lines += Line(fmt::format("Item number {} of the long invoice", i), "2", "10.50", "19", "S");
  }
  Invoice inv = Parse(JsonInvoice("Seller GmbH", "DE", "Buyer AG", "EUR", lines, "LONG-60"));
  std::vector<std::string> pages = PdfPagesText(Render(inv));
  ASSERT_GE(pages.size(), 2u);
  const int n = static_cast<int>(pages.size());
  int items_seen = 0;
  for (int p = 0; p < n; ++p) {
    const std::string& page = pages[static_cast<size_t>(p)];
    EXPECT_EQ(CountOccurrences(page, "Unit price"), 1) << "page " << p + 1;
    EXPECT_THAT(page, HasSubstr(fmt::format("Page {} of {}", p + 1, n)));
    EXPECT_EQ(CountOccurrences(page, "Amount due"), p == n - 1 ? 1 : 0) << "page " << p + 1;
    EXPECT_GE(CountOccurrences(page, "of the long invoice"), 1) << "page " << p + 1;
    items_seen += CountOccurrences(page, "of the long invoice");
  }
  EXPECT_EQ(items_seen, 60);
  EXPECT_THAT(pages.back(), HasSubstr("Item number 60 of"));
  // 60 × 21.00 = 1260.00, VAT 19 % = 239.40.
  EXPECT_THAT(Squeeze(pages.back()), HasSubstr("1.499,40€"));
}

TEST(PdfRenderTest, SameInputGivesIdenticalBytes) {
  Invoice inv = Parse(JsonInvoice("Seller", "DE", "Zoë Müller", "EUR", Line("Item", "1", "5")));
  std::string first = Render(inv);
  std::string second = Render(inv);
  ASSERT_FALSE(first.empty());
  EXPECT_TRUE(first == second) << "PDF bytes differ between two renderings";
  // Document dates are the issue date, never the current time.
  EXPECT_TRUE(Contains(first, "/CreationDate (20260301000000Z)"));
}

TEST(PdfRenderTest, UndrawableCharacterIsAnErrorNamingTheField) {
  Invoice inv = Parse(
      JsonInvoice("Seller", "DE", "Buyer", "EUR", Line("Private use \U0010FFFD here", "1", "5")));
  auto pdf = RenderInvoicePdf(inv, {});
  ASSERT_FALSE(pdf.has_value());
  EXPECT_EQ(pdf.error().code, "missing_glyph");
  EXPECT_THAT(pdf.error().message, HasSubstr("lines[0].Description"));
  EXPECT_THAT(pdf.error().message, HasSubstr("Private use"));
}

TEST(PdfRenderTest, PaymentLinkIsPrintedAndClickable) {
  Invoice inv =
      Parse(JsonInvoice("Seller", "DE", "Buyer", "EUR", Line("Item", "1", "5"), "2026/07 A"));
  InvoiceRenderSettings settings;
  settings.frontend_url = "https://pay.example.com/";
  const std::string url = "https://pay.example.com/invoices/2026%2F07%20A/pay";
  EXPECT_EQ(PaymentUrl(inv, settings), url);
  EXPECT_EQ(PdfFileName(inv), "2026_07_A.pdf");
  std::string pdf = Render(inv, settings);
  EXPECT_TRUE(Contains(pdf, "/URI (" + url + ")"));
  EXPECT_THAT(PdfText(pdf), HasSubstr(url));
  settings.pay_path = "/p?invoice={number}";
  EXPECT_EQ(PaymentUrl(inv, settings), "https://pay.example.com/p?invoice=2026%2F07%20A");
  settings.frontend_url.clear();
  EXPECT_EQ(PaymentUrl(inv, settings), "");
  EXPECT_THAT(PdfText(Render(inv, settings)), Not(HasSubstr("Pay online")));
}

TEST(PdfRenderTest, LetterSizeAndLogo) {
  TempDir dir;
  const fs::path logo = dir.path() / "logo.png";
  {
    std::unique_ptr<cairo_surface_t, decltype(&cairo_surface_destroy)> img(
        cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 120, 40), &cairo_surface_destroy);
    std::unique_ptr<cairo_t, decltype(&cairo_destroy)> cr(cairo_create(img.get()), &cairo_destroy);
    cairo_set_source_rgb(cr.get(), 0.1, 0.4, 0.8);
    cairo_paint(cr.get());
    ASSERT_EQ(cairo_surface_write_to_png(img.get(), logo.c_str()), CAIRO_STATUS_SUCCESS);
  }
  Invoice inv = Parse(JsonInvoice("Seller", "US", "Buyer", "USD", Line("Item", "1", "5")));
  inv.seller.logo_path = logo.string();
  InvoiceRenderSettings settings;
  settings.page = PageSize::kLetter;
  std::string pdf = Render(inv, settings);
  EXPECT_TRUE(Contains(pdf, "/MediaBox [ 0 0 612 792 ]"));
  EXPECT_TRUE(Contains(pdf, "/Subtype /Image"));
  EXPECT_TRUE(Contains(Render(inv), "/MediaBox [ 0 0 595.2756 841.8898 ]"));

  inv.seller.logo_path = (dir.path() / "missing.png").string();
  auto bad = RenderInvoicePdf(inv, settings);
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, "unreadable_logo");
  EXPECT_THAT(bad.error().message, HasSubstr("missing.png"));
}

TEST(PdfRenderTest, SchoolFeeFieldsArePrinted) {
  Invoice inv =
      Parse(JsonInvoice("School", "NG", "Parent", "NGN", Line("Tuition", "1", "100"), "S-1",
                        R"(, "student": "Adébáyọ̀ Olúwaṣeun", "class": "JSS 2B",
                                     "term": "Second term")"));
  std::string text = PdfText(Render(inv));
  // pdftotext puts a space before a combining mark that follows a
  // precomposed letter (ọ + U+0300); compare without white space.
  EXPECT_THAT(Squeeze(text), HasSubstr(Squeeze("Student: Adébáyọ̀ Olúwaṣeun")));
  EXPECT_THAT(text, HasSubstr("Class: JSS 2B"));
  EXPECT_THAT(text, HasSubstr("Term: Second term"));
}

TEST(PdfRenderTest, EveryRealUblFileRenders) {
  if (!fs::is_directory(UblDir())) {
    GTEST_SKIP() << "UBL data set not found at " << UblDir()
                 << " (set POSTLINE_UBL_DIR to its folder)";
  }
  auto files = FilesWithExtension(UblDir(), ".xml", true);
  ASSERT_EQ(files.size(), 43u);
  for (const auto& file : files) {
    auto inv = LoadInvoiceFile(file.string());
    ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
    auto pdf = RenderInvoicePdf(*inv, {});
    ASSERT_TRUE(pdf.has_value()) << file << ": " << pdf.error().ToString();
    std::string text = Squeeze(PdfText(*pdf));
    auto payable = FormatMoney(inv->totals.payable, inv->currency, LocaleFor(*inv, {}));
    ASSERT_TRUE(payable.has_value());
    EXPECT_THAT(text, HasSubstr(Squeeze(inv->number))) << file;
    EXPECT_THAT(text, HasSubstr(Squeeze(inv->buyer.name))) << file;
    EXPECT_THAT(text, HasSubstr(Squeeze(*payable))) << file;
  }
}

TEST(PdfRenderTest, EveryExampleLoadsAndRenders) {
  auto files = FilesWithExtension(SourceDir() / "examples", ".json", false);
  ASSERT_GE(files.size(), 5u);
  std::set<std::string> currencies;
  for (const auto& file : files) {
    auto inv = LoadInvoiceFile(file.string());
    ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
    currencies.insert(inv->currency);
    EXPECT_FALSE(inv->buyer.email.empty()) << file;
    auto pdf = RenderInvoicePdf(*inv, {});
    ASSERT_TRUE(pdf.has_value()) << file << ": " << pdf.error().ToString();
    const std::string locale = LocaleFor(*inv, {});
    const bool arabic = locale.starts_with("ar");
    std::string text = Squeeze(PdfText(*pdf), arabic);
    auto payable = FormatMoney(inv->totals.payable, inv->currency, locale);
    ASSERT_TRUE(payable.has_value());
    EXPECT_THAT(text, HasSubstr(Squeeze(inv->number))) << file;
    EXPECT_THAT(text, HasSubstr(Squeeze(*payable, arabic))) << file;
    if (!arabic) {
      EXPECT_THAT(text, HasSubstr(Squeeze(inv->buyer.name))) << file;
    }
  }
  for (const char* c : {"NGN", "EUR", "JPY", "KWD", "RUB"}) {
    EXPECT_TRUE(currencies.contains(c)) << "no example in " << c;
  }
}

}  // namespace
}  // namespace postline::invoice
