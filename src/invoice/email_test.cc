// Tests of the e-mail content (mustache templates) and BuildInvoiceEmail.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "postline/invoice.h"
#include "test_util.h"

namespace postline::invoice {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace postline::invoice::testing;

InvoiceRenderSettings DefaultSettings() {
  InvoiceRenderSettings s;
  s.default_template_dir = (SourceDir() / "templates").string();
  s.frontend_url = "https://school.example.com";
  return s;
}

Invoice LoadExample(const std::string& name) {
  auto inv = LoadInvoiceFile((SourceDir() / "examples" / name).string());
  EXPECT_TRUE(inv.has_value()) << inv.error().ToString();
  return inv.value_or(Invoice{});
}

void WriteFile(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

TEST(EmailContentTest, DefaultTemplatesCarryTheInvoice) {
  Invoice inv = LoadExample("schulgeld-de.json");
  auto content = RenderInvoiceEmailContent(inv, DefaultSettings());
  ASSERT_TRUE(content.has_value()) << content.error().ToString();
  auto payable = FormatMoney(inv.totals.payable, "EUR", "de_DE");
  ASSERT_TRUE(payable.has_value());
  EXPECT_THAT(content->subject, HasSubstr("SG-2026/0815"));
  EXPECT_THAT(content->subject, HasSubstr(*payable));
  EXPECT_EQ(content->subject.find('\n'), std::string::npos);
  EXPECT_THAT(content->text, HasSubstr("Dear Zoë Müller,"));
  EXPECT_THAT(content->text, HasSubstr("Student: Jürgen Weiß"));
  EXPECT_THAT(content->text, HasSubstr("Amount due: " + *payable));
  EXPECT_THAT(content->text,
              HasSubstr("Pay online: https://school.example.com/invoices/SG-2026%2F0815/pay"));
  EXPECT_THAT(content->html, HasSubstr("<!DOCTYPE html>"));
  EXPECT_THAT(content->html, HasSubstr("Zoë Müller"));
  EXPECT_THAT(content->html, HasSubstr(*payable));
}

TEST(EmailContentTest, HtmlEscapesValuesTextDoesNot) {
  Invoice inv = LoadExample("schulgeld-de.json");
  inv.buyer.name = "Tom & <Jerry>";
  auto content = RenderInvoiceEmailContent(inv, DefaultSettings());
  ASSERT_TRUE(content.has_value()) << content.error().ToString();
  EXPECT_THAT(content->html, HasSubstr("Tom &amp; &lt;Jerry&gt;"));
  EXPECT_THAT(content->html, Not(HasSubstr("<Jerry>")));
  EXPECT_THAT(content->text, HasSubstr("Dear Tom & <Jerry>,"));
}

TEST(EmailContentTest, OverrideFolderReplacesFileByFile) {
  TempDir dir;
  WriteFile(dir.path() / "invoice_subject.mustache", "Rechnung {{number}}\n über {{payable}}\n");
  InvoiceRenderSettings settings = DefaultSettings();
  settings.template_dir = dir.path().string();
  Invoice inv = LoadExample("schulgeld-de.json");
  auto content = RenderInvoiceEmailContent(inv, settings);
  ASSERT_TRUE(content.has_value()) << content.error().ToString();
  EXPECT_EQ(content->subject, "Rechnung SG-2026/0815 über 421,12\u00a0€");
  EXPECT_THAT(content->text, HasSubstr("Dear Zoë Müller,"));  // default text template
}

TEST(EmailContentTest, BrokenOrMissingTemplateIsNamed) {
  TempDir dir;
  WriteFile(dir.path() / "invoice.html.mustache", "<p>{{#lines}}{{description}}</p>");
  InvoiceRenderSettings settings = DefaultSettings();
  settings.template_dir = dir.path().string();
  Invoice inv = LoadExample("schulgeld-de.json");
  auto broken = RenderInvoiceEmailContent(inv, settings);
  ASSERT_FALSE(broken.has_value());
  EXPECT_EQ(broken.error().code, "template_error");
  EXPECT_THAT(broken.error().message, HasSubstr((dir.path() / "invoice.html.mustache").string()));

  InvoiceRenderSettings nowhere;
  nowhere.default_template_dir = (dir.path() / "none").string();
  auto missing = RenderInvoiceEmailContent(inv, nowhere);
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, "template_not_found");
  EXPECT_EQ(missing.error().kind, ErrorKind::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr("invoice_subject.mustache"));
}

TEST(BuildInvoiceEmailTest, RecipientFromBuyerAndPdfAttached) {
  Invoice inv = LoadExample("school-fees-ng.json");
  const Address from{"Bursary", "bursary@example.org"};
  auto email = BuildInvoiceEmail(inv, DefaultSettings(), from, {}, true);
  ASSERT_TRUE(email.has_value()) << email.error().ToString();
  EXPECT_EQ(email->priority, kInvoicePriority);
  EXPECT_EQ(email->from, from);
  ASSERT_EQ(email->to.size(), 1u);
  EXPECT_EQ(email->to[0].email, "funmilayo.adebayo@example.com");
  EXPECT_EQ(email->to[0].name, "Mrs Fúnmiláyọ̀ Adébáyọ̀");
  // A JSON source is never attached, even when asked.
  ASSERT_EQ(email->attachments.size(), 1u);
  EXPECT_EQ(email->attachments[0].filename, "LGS-2026-T2-0147.pdf");
  EXPECT_EQ(email->attachments[0].content_type, "application/pdf");
  EXPECT_TRUE(email->attachments[0].content.starts_with("%PDF-"));
  EXPECT_THAT(email->subject, HasSubstr("LGS-2026-T2-0147"));
  EXPECT_FALSE(email->text.empty());
  EXPECT_FALSE(email->html.empty());

  auto explicit_to =
      BuildInvoiceEmail(inv, DefaultSettings(), from, {Address{"", "other@example.net"}}, false);
  ASSERT_TRUE(explicit_to.has_value()) << explicit_to.error().ToString();
  ASSERT_EQ(explicit_to->to.size(), 1u);
  EXPECT_EQ(explicit_to->to[0].email, "other@example.net");
}

TEST(BuildInvoiceEmailTest, UblSourceAttachedOnRequest) {
  if (!fs::is_directory(UblDir())) GTEST_SKIP() << "UBL data set not found at " << UblDir();
  const fs::path file = UblDir() / "peppol/base-example.xml";
  auto inv = LoadInvoiceFile(file.string());
  ASSERT_TRUE(inv.has_value()) << inv.error().ToString();
  const Address from{"", "billing@example.org"};
  auto with = BuildInvoiceEmail(*inv, DefaultSettings(), from, {}, true);
  ASSERT_TRUE(with.has_value()) << with.error().ToString();
  EXPECT_EQ(with->to[0].email, "lj@buyer.se");
  ASSERT_EQ(with->attachments.size(), 2u);
  EXPECT_EQ(with->attachments[1].filename, "Snippet1.xml");
  EXPECT_EQ(with->attachments[1].content_type, "application/xml");
  EXPECT_EQ(with->attachments[1].content, ReadFile(file));
  auto without = BuildInvoiceEmail(*inv, DefaultSettings(), from, {}, false);
  ASSERT_TRUE(without.has_value());
  EXPECT_EQ(without->attachments.size(), 1u);
}

TEST(BuildInvoiceEmailTest, NoRecipientAtAllIsAnError) {
  Invoice inv = LoadExample("juku-jp.json");
  inv.buyer.email.clear();
  auto email = BuildInvoiceEmail(inv, DefaultSettings(), Address{"", "a@example.org"}, {}, false);
  ASSERT_FALSE(email.has_value());
  EXPECT_EQ(email.error().kind, ErrorKind::kInvalidInput);
  EXPECT_EQ(email.error().code, "missing_recipient");
  EXPECT_THAT(email.error().message, HasSubstr("juku-jp.json"));
}

}  // namespace
}  // namespace postline::invoice
