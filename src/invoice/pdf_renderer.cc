// The invoice PDF: cairo's PDF surface, text laid out and shaped by pango
// (HarfBuzz, fontconfig fallback). The page is built in two steps: every
// block is laid out and measured first, then blocks are assigned to pages
// (so "Page n of N" is known), then drawn.

#include <cairo-pdf.h>
#include <cairo.h>
#include <fmt/format.h>
#include <pango/pangocairo.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "internal.h"
#include "postline/invoice.h"

namespace postline::invoice {
namespace {

constexpr const char* kFontFamilies = "Noto Sans, Noto Sans Arabic, Noto Sans CJK JP, DejaVu Sans";
constexpr double kMargin = 42.0;
constexpr double kTopMargin = 42.0;
constexpr double kBottomMargin = 56.0;

struct SurfaceDeleter {
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
};
struct ContextDeleter {
  void operator()(cairo_t* c) const { cairo_destroy(c); }
};
struct GObjectDeleter {
  void operator()(void* o) const { g_object_unref(o); }
};
struct FontDescriptionDeleter {
  void operator()(PangoFontDescription* d) const { pango_font_description_free(d); }
};
struct FontOptionsDeleter {
  void operator()(cairo_font_options_t* o) const { cairo_font_options_destroy(o); }
};
using SurfacePtr = std::unique_ptr<cairo_surface_t, SurfaceDeleter>;
using CairoPtr = std::unique_ptr<cairo_t, ContextDeleter>;
using LayoutPtr = std::shared_ptr<PangoLayout>;
using PangoContextPtr = std::unique_ptr<PangoContext, GObjectDeleter>;
using ImagePtr = std::shared_ptr<cairo_surface_t>;

cairo_status_t AppendToString(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

// Escapes a value for a cairo tag attribute string ('…' with \' and \\).
std::string TagQuote(std::string_view s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

// One thing to draw, positioned relative to its block's top-left corner.
struct Item {
  enum Kind { kText, kRect, kImage, kLine } kind = kText;
  double x = 0, y = 0, w = 0, h = 0;
  double gray = 0;
  LayoutPtr layout;
  ImagePtr image;
  double image_scale = 1;
  std::string link;  // for kText: a URI the text links to
};

// A vertical slice of a page: drawn at some y, never split.
struct Block {
  double height = 0;
  std::vector<Item> items;
};

struct TextStyle {
  double size = 9;
  bool bold = false;
  double width = -1;  // wrap width in points; -1: no wrapping
  PangoAlignment align = PANGO_ALIGN_LEFT;
  double gray = 0;
};

class PdfBuilder {
 public:
  PdfBuilder(const Invoice& invoice, const internal::Formatted& formatted,
             const InvoiceRenderSettings& settings)
      : invoice_(invoice), f_(formatted), settings_(settings) {
    if (settings.page == PageSize::kLetter) {
      page_w_ = 612;
      page_h_ = 792;
    }
    content_w_ = page_w_ - 2 * kMargin;
  }

  Result<std::string> Render();

 private:
  // Lays out `text`; fails when a character has no glyph in any font.
  Result<LayoutPtr> Layout(const std::string& text, const TextStyle& style, std::string_view field);
  // Adds a text item to `block` at (x, y); returns its height.
  Result<double> AddText(Block& block, double x, double y, const std::string& text,
                         const TextStyle& style, std::string_view field,
                         const std::string& link = {});

  Result<Block> HeaderBlock();
  Result<Block> ContinuationBlock();
  Result<Block> TableHeaderBlock();
  Result<Block> RowBlock(size_t index);
  Result<Block> TotalsBlock();
  Result<Block> PaymentBlock();
  Result<Block> FooterBlock(int page, int pages);
  void Draw(const Block& block, double y);

  const Invoice& invoice_;
  const internal::Formatted& f_;
  const InvoiceRenderSettings& settings_;
  double page_w_ = 595.2756;  // A4: 210 × 297 mm
  double page_h_ = 841.8898;
  double content_w_ = 0;
  CairoPtr cr_;
  PangoContextPtr pango_;
  // Table columns: x offsets and widths.
  struct Column {
    const char* title;
    double width;
    PangoAlignment align;
  };
  std::vector<Column> columns_;
};

Result<LayoutPtr> PdfBuilder::Layout(const std::string& text, const TextStyle& style,
                                     std::string_view field) {
  LayoutPtr layout(pango_layout_new(pango_.get()), [](PangoLayout* l) { g_object_unref(l); });
  std::unique_ptr<PangoFontDescription, FontDescriptionDeleter> font(
      pango_font_description_from_string(kFontFamilies));
  pango_font_description_set_size(font.get(), static_cast<gint>(style.size * PANGO_SCALE));
  pango_font_description_set_weight(font.get(),
                                    style.bold ? PANGO_WEIGHT_BOLD : PANGO_WEIGHT_NORMAL);
  pango_layout_set_font_description(layout.get(), font.get());
  if (style.width > 0) {
    pango_layout_set_width(layout.get(), static_cast<int>(style.width * PANGO_SCALE));
    pango_layout_set_wrap(layout.get(), PANGO_WRAP_WORD_CHAR);
  }
  pango_layout_set_alignment(layout.get(), style.align);
  // Paragraphs are left to right, whatever script they start with; Arabic
  // runs inside them are still ordered right to left by the bidi algorithm,
  // and alignment means what it says.
  pango_layout_set_auto_dir(layout.get(), FALSE);
  pango_layout_set_text(layout.get(), text.data(), static_cast<int>(text.size()));
  if (int unknown = pango_layout_get_unknown_glyphs_count(layout.get()); unknown > 0) {
    return InvalidInput("missing_glyph",
                        fmt::format("{}: {}: no installed font can draw {} character(s) of \"{}\"; "
                                    "allowed: text the fonts {} cover",
                                    internal::SourceLabel(invoice_.source_path), field, unknown,
                                    text, kFontFamilies),
                        std::string(field));
  }
  return layout;
}

Result<double> PdfBuilder::AddText(Block& block, double x, double y, const std::string& text,
                                   const TextStyle& style, std::string_view field,
                                   const std::string& link) {
  auto layout = Layout(text, style, field);
  if (!layout) return std::unexpected(layout.error());
  int w = 0, h = 0;
  pango_layout_get_size(layout->get(), &w, &h);
  Item item;
  item.kind = Item::kText;
  item.x = x;
  item.y = y;
  item.w = static_cast<double>(w) / PANGO_SCALE;
  item.h = static_cast<double>(h) / PANGO_SCALE;
  item.gray = style.gray;
  item.layout = *layout;
  item.link = link;
  block.items.push_back(item);
  return item.h;
}

#define PL_TRY_ASSIGN(lhs, expr)                                 \
  do {                                                           \
    auto pl_result_ = (expr);                                    \
    if (!pl_result_) return std::unexpected(pl_result_.error()); \
    lhs = std::move(*pl_result_);                                \
  } while (0)

std::vector<std::string> AddressLines(const Party& p) {
  std::vector<std::string> lines = p.address_lines;
  std::string city = p.postcode.empty() ? p.city
                     : p.city.empty()   ? p.postcode
                                        : p.postcode + " " + p.city;
  if (!city.empty()) lines.push_back(city);
  if (!p.country_code.empty()) lines.push_back(p.country_code);
  return lines;
}

Result<Block> PdfBuilder::HeaderBlock() {
  Block b;
  const double left_w = content_w_ * 0.58;
  const double right_w = content_w_ - left_w;
  double y = 0;
  double h = 0;
  // Seller, with the logo above it.
  if (!invoice_.seller.logo_path.empty()) {
    std::filesystem::path path = invoice_.seller.logo_path;
    if (path.is_relative() && !invoice_.source_path.empty()) {
      path = std::filesystem::path(invoice_.source_path).parent_path() / path;
    }
    ImagePtr image(cairo_image_surface_create_from_png(path.c_str()),
                   [](cairo_surface_t* s) { cairo_surface_destroy(s); });
    if (cairo_surface_status(image.get()) != CAIRO_STATUS_SUCCESS) {
      return InvalidInput("unreadable_logo",
                          fmt::format("{}: seller logo {}: {}; allowed: a readable PNG file",
                                      internal::SourceLabel(invoice_.source_path), path.string(),
                                      cairo_status_to_string(cairo_surface_status(image.get()))),
                          "seller.logo");
    }
    double iw = cairo_image_surface_get_width(image.get());
    double ih = cairo_image_surface_get_height(image.get());
    double scale = std::min({56.0 / ih, 160.0 / iw, 1.0});
    Item item;
    item.kind = Item::kImage;
    item.image = image;
    item.image_scale = scale;
    item.w = iw * scale;
    item.h = ih * scale;
    b.items.push_back(item);
    y += item.h + 8;
  }
  PL_TRY_ASSIGN(h, AddText(b, 0, y, invoice_.seller.name,
                           {.size = 13, .bold = true, .width = left_w}, "seller.name"));
  y += h + 2;
  for (const auto& line : AddressLines(invoice_.seller)) {
    PL_TRY_ASSIGN(h, AddText(b, 0, y, line, {.size = 9, .width = left_w}, "seller.address"));
    y += h;
  }
  if (!invoice_.seller.tax_id.empty()) {
    PL_TRY_ASSIGN(h, AddText(b, 0, y, "VAT ID: " + invoice_.seller.tax_id,
                             {.size = 9, .width = left_w}, "seller.tax_id"));
    y += h;
  }
  if (!invoice_.seller.email.empty()) {
    PL_TRY_ASSIGN(
        h, AddText(b, 0, y, invoice_.seller.email, {.size = 9, .width = left_w}, "seller.email"));
    y += h;
  }
  // Title and document facts, right-aligned.
  const TextStyle right{.size = 9, .width = right_w, .align = PANGO_ALIGN_RIGHT};
  double ry = 0;
  PL_TRY_ASSIGN(h, AddText(b, left_w, ry, f_.title,
                           {.size = 20, .bold = true, .width = right_w, .align = PANGO_ALIGN_RIGHT},
                           "title"));
  ry += h + 4;
  PL_TRY_ASSIGN(h, AddText(b, left_w, ry, "No. " + invoice_.number, right, "number"));
  ry += h;
  PL_TRY_ASSIGN(h, AddText(b, left_w, ry, "Issue date: " + f_.issue_date, right, "issue_date"));
  ry += h;
  if (!f_.due_date.empty()) {
    PL_TRY_ASSIGN(h, AddText(b, left_w, ry, "Due date: " + f_.due_date, right, "due_date"));
    ry += h;
  }
  y = std::max(y, ry) + 22;

  // Parties: the buyer, and the pupil for school fees.
  const TextStyle label{.size = 8, .bold = true, .gray = 0.4};
  double by = y;
  PL_TRY_ASSIGN(
      h, AddText(b, 0, by, invoice_.type == DocumentType::kCreditNote ? "CREDIT TO" : "BILL TO",
                 label, "label"));
  by += h + 2;
  PL_TRY_ASSIGN(h, AddText(b, 0, by, invoice_.buyer.name,
                           {.size = 11, .bold = true, .width = left_w}, "buyer.name"));
  by += h + 1;
  std::vector<std::string> buyer_lines = AddressLines(invoice_.buyer);
  if (!invoice_.buyer.tax_id.empty()) buyer_lines.push_back("VAT ID: " + invoice_.buyer.tax_id);
  if (!invoice_.buyer.email.empty()) buyer_lines.push_back(invoice_.buyer.email);
  for (const auto& line : buyer_lines) {
    PL_TRY_ASSIGN(h, AddText(b, 0, by, line, {.size = 9, .width = left_w}, "buyer.address"));
    by += h;
  }
  double sy = y;
  if (!invoice_.student.empty() || !invoice_.class_name.empty() || !invoice_.term.empty()) {
    PL_TRY_ASSIGN(h, AddText(b, left_w, sy, "PUPIL", label, "label"));
    sy += h + 2;
    const std::pair<const char*, const std::string*> facts[] = {
        {"Student", &invoice_.student}, {"Class", &invoice_.class_name}, {"Term", &invoice_.term}};
    for (const auto& [name, value] : facts) {
      if (value->empty()) continue;
      PL_TRY_ASSIGN(h, AddText(b, left_w, sy, fmt::format("{}: {}", name, *value),
                               {.size = 9.5, .width = right_w}, name));
      sy += h;
    }
  }
  b.height = std::max(by, sy) + 18;
  return b;
}

Result<Block> PdfBuilder::ContinuationBlock() {
  Block b;
  double h = 0;
  PL_TRY_ASSIGN(h, AddText(b, 0, 0, fmt::format("{} {} (continued)", f_.title, invoice_.number),
                           {.size = 9, .bold = true, .gray = 0.3}, "title"));
  b.height = h + 12;
  return b;
}

Result<Block> PdfBuilder::TableHeaderBlock() {
  Block b;
  Item rect;
  rect.kind = Item::kRect;
  rect.w = content_w_;
  rect.gray = 0.9;
  b.items.push_back(rect);
  double x = 0;
  double height = 0;
  for (const auto& col : columns_) {
    double h = 0;
    PL_TRY_ASSIGN(h, AddText(b, x + 3, 4, col.title,
                             {.size = 8, .bold = true, .width = col.width - 6, .align = col.align},
                             "table header"));
    height = std::max(height, h);
    x += col.width;
  }
  b.height = height + 8;
  b.items[0].h = b.height;
  return b;
}

Result<Block> PdfBuilder::RowBlock(size_t index) {
  const InvoiceLine& line = invoice_.lines[index];
  const internal::Formatted::Line& fl = f_.lines[index];
  std::string description = line.description;
  for (const auto& adj : fl.adjustments) description += "\n" + adj;
  const std::string cells[] = {line.id,       description, fl.quantity,  line.unit_code,
                               fl.unit_price, fl.tax_rate, fl.net_amount};
  Block b;
  double x = 0;
  double height = 0;
  for (size_t c = 0; c < columns_.size(); ++c) {
    double h = 0;
    PL_TRY_ASSIGN(h,
                  AddText(b, x + 3, 4, cells[c],
                          {.size = 8.5, .width = columns_[c].width - 6, .align = columns_[c].align},
                          fmt::format("lines[{}].{}", index, columns_[c].title)));
    height = std::max(height, h);
    x += columns_[c].width;
  }
  b.height = height + 8;
  Item rule;
  rule.kind = Item::kLine;
  rule.y = b.height;
  rule.w = content_w_;
  rule.gray = 0.8;
  b.items.push_back(rule);
  return b;
}

Result<Block> PdfBuilder::TotalsBlock() {
  Block b;
  const double label_w = 230;
  const double value_w = 110;
  const double x0 = content_w_ - label_w - value_w;
  double y = 14;
  auto row = [&](const std::string& label, const std::string& value, bool strong,
                 std::string_view field) -> Result<void> {
    double h1 = 0, h2 = 0;
    TextStyle ls{
        .size = strong ? 11.0 : 9.0, .bold = strong, .width = label_w, .align = PANGO_ALIGN_RIGHT};
    TextStyle vs = ls;
    vs.width = value_w;
    PL_TRY_ASSIGN(h1, AddText(b, x0, y, label, ls, field));
    PL_TRY_ASSIGN(h2, AddText(b, x0 + label_w, y, value, vs, field));
    y += std::max(h1, h2) + 2;
    return {};
  };
#define PL_TRY(expr)                                   \
  do {                                                 \
    auto pl_r_ = (expr);                               \
    if (!pl_r_) return std::unexpected(pl_r_.error()); \
  } while (0)
  PL_TRY(row("Sum of lines", f_.line_total, false, "totals.line_total"));
  for (const auto& adj : f_.document_adjustments) {
    PL_TRY(row(adj.label, adj.amount, false, "allowances_charges"));
  }
  PL_TRY(row("Total without VAT", f_.tax_exclusive, false, "totals.tax_exclusive"));
  for (const auto& g : f_.tax_groups) PL_TRY(row(g.label, g.amount, false, "tax_breakdown"));
  PL_TRY(row("Total with VAT", f_.tax_inclusive, false, "totals.tax_inclusive"));
  if (!invoice_.totals.prepaid.IsZero()) {
    PL_TRY(row("Paid in advance", f_.prepaid, false, "totals.prepaid"));
  }
  if (!invoice_.totals.rounding.IsZero()) {
    PL_TRY(row("Rounding", f_.rounding, false, "totals.rounding"));
  }
  Item rule;
  rule.kind = Item::kLine;
  rule.x = x0 + 60;
  rule.y = y + 1;
  rule.w = label_w + value_w - 60;
  rule.gray = 0.3;
  b.items.push_back(rule);
  y += 5;
  PL_TRY(row(invoice_.type == DocumentType::kCreditNote ? "Amount credited" : "Amount due",
             f_.payable, true, "totals.payable"));
#undef PL_TRY
  b.height = y + 6;
  return b;
}

Result<Block> PdfBuilder::PaymentBlock() {
  Block b;
  double y = 10;
  double h = 0;
  const TextStyle body{.size = 9, .width = content_w_};
  std::vector<std::pair<std::string, std::string>> lines;  // text, field
  if (!invoice_.payment_terms.empty()) lines.emplace_back(invoice_.payment_terms, "payment_terms");
  const PaymentMeans& p = invoice_.payment;
  if (!p.account_name.empty())
    lines.emplace_back("Account holder: " + p.account_name, "payment.account_name");
  if (!p.iban.empty()) lines.emplace_back("IBAN: " + p.iban, "payment.iban");
  if (!p.bic.empty()) lines.emplace_back("BIC: " + p.bic, "payment.bic");
  if (!p.reference.empty()) lines.emplace_back("Reference: " + p.reference, "payment.reference");
  for (const auto& g : invoice_.tax_breakdown) {
    if (!g.exemption_reason.empty()) {
      lines.emplace_back(fmt::format("VAT {}: {}", g.category, g.exemption_reason),
                         "tax_breakdown.exemption_reason");
    }
  }
  if (lines.empty() && f_.payment_url.empty()) return b;
  PL_TRY_ASSIGN(h, AddText(b, 0, y, "PAYMENT", {.size = 8, .bold = true, .gray = 0.4}, "label"));
  y += h + 2;
  for (const auto& [text, field] : lines) {
    PL_TRY_ASSIGN(h, AddText(b, 0, y, text, body, field));
    y += h;
  }
  if (!f_.payment_url.empty()) {
    PL_TRY_ASSIGN(h, AddText(b, 0, y + 2, "Pay online:", {.size = 9, .bold = true}, "payment_url"));
    double label_w = b.items.back().w;
    PL_TRY_ASSIGN(
        h, AddText(b, label_w + 4, y + 2, f_.payment_url,
                   {.size = 9, .width = content_w_ - label_w - 4}, "payment_url", f_.payment_url));
    y += h + 2;
  }
  b.height = y + 4;
  return b;
}

Result<Block> PdfBuilder::FooterBlock(int page, int pages) {
  Block b;
  double h = 0;
  PL_TRY_ASSIGN(h, AddText(b, 0, 0, fmt::format("{} {}", f_.title, invoice_.number),
                           {.size = 8, .width = content_w_ / 2, .gray = 0.4}, "footer"));
  PL_TRY_ASSIGN(
      h, AddText(b, content_w_ / 2, 0, fmt::format("Page {} of {}", page, pages),
                 {.size = 8, .width = content_w_ / 2, .align = PANGO_ALIGN_RIGHT, .gray = 0.4},
                 "footer"));
  b.height = h;
  return b;
}

void PdfBuilder::Draw(const Block& block, double y0) {
  cairo_t* cr = cr_.get();
  for (const Item& item : block.items) {
    double x = kMargin + item.x;
    double y = y0 + item.y;
    switch (item.kind) {
      case Item::kRect:
        cairo_set_source_rgb(cr, item.gray, item.gray, item.gray);
        cairo_rectangle(cr, x, y, item.w, item.h);
        cairo_fill(cr);
        break;
      case Item::kLine:
        cairo_set_source_rgb(cr, item.gray, item.gray, item.gray);
        cairo_set_line_width(cr, 0.5);
        cairo_move_to(cr, x, y);
        cairo_line_to(cr, x + item.w, y);
        cairo_stroke(cr);
        break;
      case Item::kImage:
        cairo_save(cr);
        cairo_translate(cr, x, y);
        cairo_scale(cr, item.image_scale, item.image_scale);
        cairo_set_source_surface(cr, item.image.get(), 0, 0);
        cairo_paint(cr);
        cairo_restore(cr);
        break;
      case Item::kText:
        if (!item.link.empty()) {
          cairo_tag_begin(cr, CAIRO_TAG_LINK, fmt::format("uri={}", TagQuote(item.link)).c_str());
          cairo_set_source_rgb(cr, 0.05, 0.25, 0.65);
        } else {
          cairo_set_source_rgb(cr, item.gray, item.gray, item.gray);
        }
        cairo_move_to(cr, x, y);
        pango_cairo_show_layout(cr, item.layout.get());
        if (!item.link.empty()) cairo_tag_end(cr, CAIRO_TAG_LINK);
        break;
    }
  }
}

Result<std::string> PdfBuilder::Render() {
  std::string pdf;
  SurfacePtr surface(cairo_pdf_surface_create_for_stream(&AppendToString, &pdf, page_w_, page_h_));
  if (cairo_surface_status(surface.get()) != CAIRO_STATUS_SUCCESS) {
    return MakeError(
        ErrorKind::kInternal, "pdf_error",
        fmt::format("cairo: {}", cairo_status_to_string(cairo_surface_status(surface.get()))));
  }
  // Document dates come from the invoice, never the clock, so the same
  // invoice always gives the same bytes.
  const std::string date = invoice_.issue_date + "T00:00:00Z";
  cairo_pdf_surface_set_metadata(surface.get(), CAIRO_PDF_METADATA_CREATE_DATE, date.c_str());
  cairo_pdf_surface_set_metadata(surface.get(), CAIRO_PDF_METADATA_MOD_DATE, date.c_str());
  const std::string title =
      fmt::format("{} {}", f_.title == "INVOICE" ? "Invoice" : "Credit note", invoice_.number);
  cairo_pdf_surface_set_metadata(surface.get(), CAIRO_PDF_METADATA_TITLE, title.c_str());
  cairo_pdf_surface_set_metadata(surface.get(), CAIRO_PDF_METADATA_AUTHOR,
                                 invoice_.seller.name.c_str());
  cairo_pdf_surface_set_metadata(surface.get(), CAIRO_PDF_METADATA_CREATOR, "postline");
  cr_.reset(cairo_create(surface.get()));
  // Whatever the exit, the context goes before the surface and the surface
  // (whose last write happens when it is destroyed) before `pdf`.
  struct ReleaseContext {
    PdfBuilder* self;
    ~ReleaseContext() {
      self->cr_.reset();
      self->pango_.reset();
    }
  } release_context{this};

  pango_.reset(pango_cairo_create_context(cr_.get()));
  pango_cairo_context_set_resolution(pango_.get(), 72.0);  // 1 pt = 1 user unit
  std::unique_ptr<cairo_font_options_t, FontOptionsDeleter> options(cairo_font_options_create());
  cairo_font_options_set_hint_metrics(options.get(), CAIRO_HINT_METRICS_OFF);
  cairo_font_options_set_hint_style(options.get(), CAIRO_HINT_STYLE_NONE);
  pango_cairo_context_set_font_options(pango_.get(), options.get());

  const double fixed = 24 + 48 + 34 + 78 + 42 + 84;
  columns_ = {
      {"#", 24, PANGO_ALIGN_LEFT},           {"Description", content_w_ - fixed, PANGO_ALIGN_LEFT},
      {"Qty", 48, PANGO_ALIGN_RIGHT},        {"Unit", 34, PANGO_ALIGN_LEFT},
      {"Unit price", 78, PANGO_ALIGN_RIGHT}, {"VAT", 42, PANGO_ALIGN_RIGHT},
      {"Amount", 84, PANGO_ALIGN_RIGHT}};

  Block header, continuation, table_header, totals, payment;
  PL_TRY_ASSIGN(header, HeaderBlock());
  PL_TRY_ASSIGN(continuation, ContinuationBlock());
  PL_TRY_ASSIGN(table_header, TableHeaderBlock());
  std::vector<Block> rows;
  for (size_t i = 0; i < invoice_.lines.size(); ++i) {
    Block row;
    PL_TRY_ASSIGN(row, RowBlock(i));
    rows.push_back(std::move(row));
  }
  PL_TRY_ASSIGN(totals, TotalsBlock());
  PL_TRY_ASSIGN(payment, PaymentBlock());
  Block closing;  // totals and payment stay together on the last page
  closing.height = totals.height + payment.height;
  closing.items = totals.items;
  for (Item item : payment.items) {
    item.y += totals.height;
    closing.items.push_back(item);
  }

  // Pagination: each page is a list of (block, y). The table header starts
  // every page that has rows; the closing block goes on the page with the
  // last row, moving that row to a new page when it doesn't fit.
  struct Placed {
    const Block* block;
    double y;
  };
  std::vector<std::vector<Placed>> pages;
  const double bottom = page_h_ - kBottomMargin;
  auto new_page = [&](bool first) {
    pages.emplace_back();
    double y = kTopMargin;
    const Block& top = first ? header : continuation;
    pages.back().push_back({&top, y});
    y += top.height;
    pages.back().push_back({&table_header, y});
    return y + table_header.height;
  };
  double y = new_page(true);
  size_t rows_on_page = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows_on_page > 0 && y + rows[i].height > bottom) {
      y = new_page(false);
      rows_on_page = 0;
    }
    pages.back().push_back({&rows[i], y});
    y += rows[i].height;
    ++rows_on_page;
  }
  if (y + closing.height > bottom) {
    if (rows_on_page >= 2) {
      const Block* last = pages.back().back().block;
      pages.back().pop_back();
      y = new_page(false);
      pages.back().push_back({last, y});
      y += last->height;
    } else {
      pages.emplace_back();
      y = kTopMargin;
      pages.back().push_back({&continuation, y});
      y += continuation.height;
    }
  }
  pages.back().push_back({&closing, y});

  const int page_count = static_cast<int>(pages.size());
  for (int p = 0; p < page_count; ++p) {
    for (const Placed& placed : pages[static_cast<size_t>(p)]) Draw(*placed.block, placed.y);
    Block footer;
    PL_TRY_ASSIGN(footer, FooterBlock(p + 1, page_count));
    Draw(footer, page_h_ - kBottomMargin + 22);
    cairo_show_page(cr_.get());
  }
  cr_.reset();
  pango_.reset();
  cairo_surface_finish(surface.get());
  if (cairo_surface_status(surface.get()) != CAIRO_STATUS_SUCCESS) {
    return MakeError(
        ErrorKind::kInternal, "pdf_error",
        fmt::format("cairo: {}", cairo_status_to_string(cairo_surface_status(surface.get()))));
  }
  surface.reset();
  return pdf;
}

}  // namespace

Result<std::string> RenderInvoicePdf(const Invoice& invoice,
                                     const InvoiceRenderSettings& settings) {
  auto formatted = internal::FormatInvoice(invoice, settings);
  if (!formatted) return std::unexpected(formatted.error());
  PdfBuilder builder(invoice, *formatted, settings);
  return builder.Render();
}

}  // namespace postline::invoice
