// Reader for UBL 2.1 Invoice and CreditNote documents as profiled by
// EN 16931 / PEPPOL BIS Billing 3.0. Elements are matched by local name, so
// any namespace prefixes work; elements the model has no use for are ignored.

#include <fmt/format.h>

#include <cstring>
#include <pugixml.hpp>

#include "internal.h"

namespace postline::invoice::internal {
namespace {

std::string_view LocalName(const pugi::xml_node& node) {
  std::string_view name = node.name();
  auto colon = name.find(':');
  return colon == std::string_view::npos ? name : name.substr(colon + 1);
}

pugi::xml_node Child(const pugi::xml_node& node, std::string_view local) {
  for (pugi::xml_node c = node.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element && LocalName(c) == local) return c;
  }
  return {};
}

std::vector<pugi::xml_node> Children(const pugi::xml_node& node, std::string_view local) {
  std::vector<pugi::xml_node> out;
  for (pugi::xml_node c = node.first_child(); c; c = c.next_sibling()) {
    if (c.type() == pugi::node_element && LocalName(c) == local) out.push_back(c);
  }
  return out;
}

// Follows a path of local names ("Party/PartyName/Name").
pugi::xml_node Path(pugi::xml_node node, std::string_view path) {
  while (node && !path.empty()) {
    auto slash = path.find('/');
    node = Child(node, path.substr(0, slash));
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
  }
  return node;
}

std::string Trimmed(const char* text) {
  std::string_view s = text;
  while (!s.empty() && std::strchr(" \t\r\n", s.front())) s.remove_prefix(1);
  while (!s.empty() && std::strchr(" \t\r\n", s.back())) s.remove_suffix(1);
  return std::string(s);
}

std::string Text(const pugi::xml_node& node, std::string_view path) {
  pugi::xml_node n = Path(node, path);
  return n ? Trimmed(n.child_value()) : std::string();
}

class UblReader {
 public:
  UblReader(std::string_view source, std::string root)
      : label_(SourceLabel(source)), root_(std::move(root)) {}

  // "/Invoice/cac:LegalMonetaryTotal/cbc:PayableAmount" from a relative
  // path of prefixed names.
  std::string XPath(std::string_view rel) const { return fmt::format("/{}/{}", root_, rel); }

  std::unexpected<Error> Missing(std::string_view rel) const {
    std::string xpath = XPath(rel);
    return InvalidInput("missing_field", fmt::format("{}: {} is required", label_, xpath), xpath);
  }

  Result<std::optional<Decimal>> Amount(const pugi::xml_node& node, std::string_view local,
                                        std::string_view rel, bool required) const {
    pugi::xml_node n = Child(node, local);
    if (!n) {
      if (required) return std::unexpected(Missing(rel).error());
      return std::optional<Decimal>();
    }
    std::string xpath = XPath(rel);
    auto d = Decimal::Parse(Trimmed(n.child_value()), xpath);
    if (!d) {
      Error e = d.error();
      e.message = fmt::format("{}: {}", label_, e.message);
      return std::unexpected(e);
    }
    return std::optional<Decimal>(*d);
  }

  const std::string& label() const { return label_; }

 private:
  std::string label_;
  std::string root_;
};

#define PL_TRY_ASSIGN(lhs, expr)                                 \
  do {                                                           \
    auto pl_result_ = (expr);                                    \
    if (!pl_result_) return std::unexpected(pl_result_.error()); \
    lhs = std::move(*pl_result_);                                \
  } while (0)

Party ReadParty(const pugi::xml_node& party) {
  Party p;
  p.name = Text(party, "PartyName/Name");
  std::string legal = Text(party, "PartyLegalEntity/RegistrationName");
  if (p.name.empty()) p.name = legal;
  pugi::xml_node addr = Child(party, "PostalAddress");
  for (const char* key : {"StreetName", "AdditionalStreetName"}) {
    std::string v = Text(addr, key);
    if (!v.empty()) p.address_lines.push_back(v);
  }
  for (const auto& line : Children(addr, "AddressLine")) {
    std::string v = Text(line, "Line");
    if (!v.empty()) p.address_lines.push_back(v);
  }
  p.city = Text(addr, "CityName");
  p.postcode = Text(addr, "PostalZone");
  p.country_code = Text(addr, "Country/IdentificationCode");
  for (const auto& scheme : Children(party, "PartyTaxScheme")) {
    std::string id = Text(scheme, "CompanyID");
    if (!id.empty() && (p.tax_id.empty() || Text(scheme, "TaxScheme/ID") == "VAT")) p.tax_id = id;
  }
  p.email = Text(party, "Contact/ElectronicMail");
  // BT-49 / BT-34: the electronic address; scheme "EM" is an e-mail address
  // (PEPPOL's EAS code list). Used when no contact e-mail is given.
  if (p.email.empty()) {
    pugi::xml_node endpoint = Child(party, "EndpointID");
    if (std::string_view(endpoint.attribute("schemeID").value()) == "EM") {
      p.email = Text(party, "EndpointID");
    }
  }
  return p;
}

Result<std::vector<AllowanceCharge>> ReadAllowancesCharges(const UblReader& r,
                                                           const pugi::xml_node& parent,
                                                           const std::string& rel_parent,
                                                           bool document_level) {
  std::vector<AllowanceCharge> out;
  auto nodes = Children(parent, "AllowanceCharge");
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& node = nodes[i];
    std::string rel = fmt::format("{}cac:AllowanceCharge[{}]", rel_parent, i + 1);
    AllowanceCharge ac;
    std::string indicator = Text(node, "ChargeIndicator");
    if (indicator.empty()) return r.Missing(rel + "/cbc:ChargeIndicator");
    ac.is_charge = indicator == "true" || indicator == "1";
    std::optional<Decimal> amount;
    PL_TRY_ASSIGN(amount, r.Amount(node, "Amount", rel + "/cbc:Amount", true));
    ac.amount = *amount;
    ac.reason = Text(node, "AllowanceChargeReason");
    if (ac.reason.empty()) ac.reason = Text(node, "AllowanceChargeReasonCode");
    if (document_level) {
      ac.tax_category = Text(node, "TaxCategory/ID");
      if (ac.tax_category.empty()) return r.Missing(rel + "/cac:TaxCategory/cbc:ID");
      std::optional<Decimal> rate;
      PL_TRY_ASSIGN(rate, r.Amount(Child(node, "TaxCategory"), "Percent",
                                   rel + "/cac:TaxCategory/cbc:Percent", false));
      ac.tax_rate = rate.value_or(Decimal());
    }
    out.push_back(std::move(ac));
  }
  return out;
}

}  // namespace

Result<Invoice> ParseUblInvoice(std::string_view bytes, std::string_view source) {
  const std::string label = SourceLabel(source);
  pugi::xml_document doc;
  pugi::xml_parse_result parsed =
      doc.load_buffer(bytes.data(), bytes.size(), pugi::parse_default, pugi::encoding_utf8);
  if (!parsed) {
    return InvalidInput(
        "malformed_xml",
        fmt::format("{}: malformed XML at {}: {}", label,
                    LineColumn(bytes, static_cast<size_t>(parsed.offset)), parsed.description()));
  }
  pugi::xml_node root = doc.document_element();
  std::string_view root_name = LocalName(root);
  if (root_name != "Invoice" && root_name != "CreditNote") {
    return InvalidInput("invalid_field",
                        fmt::format("{}: root element <{}> is not allowed; allowed: UBL 2.1 "
                                    "<Invoice> or <CreditNote>",
                                    label, root.name()),
                        "/");
  }
  const bool credit = root_name == "CreditNote";
  UblReader r(source, std::string(root_name));
  Invoice inv;
  inv.source_format = SourceFormat::kUbl;
  inv.type = credit ? DocumentType::kCreditNote : DocumentType::kInvoice;
  inv.number = Text(root, "ID");
  if (inv.number.empty()) return r.Missing("cbc:ID");
  inv.issue_date = Text(root, "IssueDate");
  if (inv.issue_date.empty()) return r.Missing("cbc:IssueDate");
  inv.due_date = Text(root, "DueDate");
  if (inv.due_date.empty()) inv.due_date = Text(root, "PaymentMeans/PaymentDueDate");
  inv.currency = Text(root, "DocumentCurrencyCode");
  if (inv.currency.empty()) return r.Missing("cbc:DocumentCurrencyCode");

  pugi::xml_node seller = Path(root, "AccountingSupplierParty/Party");
  if (!seller) return r.Missing("cac:AccountingSupplierParty/cac:Party");
  inv.seller = ReadParty(seller);
  if (inv.seller.name.empty()) {
    return r.Missing(
        "cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName");
  }
  pugi::xml_node buyer = Path(root, "AccountingCustomerParty/Party");
  if (!buyer) return r.Missing("cac:AccountingCustomerParty/cac:Party");
  inv.buyer = ReadParty(buyer);
  if (inv.buyer.name.empty()) {
    return r.Missing(
        "cac:AccountingCustomerParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName");
  }
  for (const auto& note : Children(root, "Note")) {
    std::string v = Trimmed(note.child_value());
    if (!v.empty()) inv.notes.push_back(v);
  }
  inv.payment_terms = Text(root, "PaymentTerms/Note");
  if (pugi::xml_node means = Child(root, "PaymentMeans")) {
    inv.payment.reference = Text(means, "PaymentID");
    inv.payment.iban = Text(means, "PayeeFinancialAccount/ID");
    inv.payment.account_name = Text(means, "PayeeFinancialAccount/Name");
    inv.payment.bic = Text(means, "PayeeFinancialAccount/FinancialInstitutionBranch/ID");
  }
  if (auto ok = ValidateCommon(inv, source, true); !ok) return std::unexpected(ok.error());

  StatedFigures stated;
  stated.en16931_tolerances = true;
  const char* line_name = credit ? "CreditNoteLine" : "InvoiceLine";
  const char* qty_name = credit ? "CreditedQuantity" : "InvoicedQuantity";
  auto line_nodes = Children(root, line_name);
  if (line_nodes.empty()) return r.Missing(fmt::format("cac:{}", line_name));
  for (size_t i = 0; i < line_nodes.size(); ++i) {
    const auto& node = line_nodes[i];
    const std::string rel = fmt::format("cac:{}[{}]/", line_name, i + 1);
    InvoiceLine line;
    line.id = Text(node, "ID");
    if (line.id.empty()) return r.Missing(rel + "cbc:ID");
    std::string name = Text(node, "Item/Name");
    std::string description = Text(node, "Item/Description");
    if (name.empty() && description.empty()) return r.Missing(rel + "cac:Item/cbc:Name");
    line.description = name.empty() ? description
                       : description.empty() || description == name
                           ? name
                           : fmt::format("{} — {}", name, description);
    std::optional<Decimal> value;
    PL_TRY_ASSIGN(value, r.Amount(node, qty_name, rel + "cbc:" + qty_name, true));
    line.quantity = *value;
    line.unit_code = Child(node, qty_name).attribute("unitCode").value();
    pugi::xml_node price = Child(node, "Price");
    if (!price) return r.Missing(rel + "cac:Price/cbc:PriceAmount");
    PL_TRY_ASSIGN(value, r.Amount(price, "PriceAmount", rel + "cac:Price/cbc:PriceAmount", true));
    line.unit_price = *value;
    PL_TRY_ASSIGN(value,
                  r.Amount(price, "BaseQuantity", rel + "cac:Price/cbc:BaseQuantity", false));
    if (value && !value->IsZero()) line.base_quantity = *value;
    pugi::xml_node category = Path(node, "Item/ClassifiedTaxCategory");
    line.tax_category = Text(category, "ID");
    if (line.tax_category.empty()) {
      return r.Missing(rel + "cac:Item/cac:ClassifiedTaxCategory/cbc:ID");
    }
    PL_TRY_ASSIGN(value, r.Amount(category, "Percent",
                                  rel + "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent", false));
    line.tax_rate = value.value_or(Decimal());
    PL_TRY_ASSIGN(line.allowances_charges, ReadAllowancesCharges(r, node, rel, false));
    StatedAmount net;
    net.field = r.XPath(rel + "cbc:LineExtensionAmount");
    PL_TRY_ASSIGN(net.value,
                  r.Amount(node, "LineExtensionAmount", rel + "cbc:LineExtensionAmount", true));
    stated.line_nets.push_back(std::move(net));
    inv.lines.push_back(std::move(line));
  }
  PL_TRY_ASSIGN(inv.allowances_charges, ReadAllowancesCharges(r, root, "", true));

  // The TaxTotal in the document currency carries the VAT breakdown (a second
  // TaxTotal may state the VAT in the tax currency, BT-111).
  pugi::xml_node tax_total;
  for (const auto& tt : Children(root, "TaxTotal")) {
    if (std::string_view(Child(tt, "TaxAmount").attribute("currencyID").value()) == inv.currency ||
        Child(tt, "TaxSubtotal")) {
      tax_total = tt;
      break;
    }
  }
  if (!tax_total) return r.Missing("cac:TaxTotal");
  stated.tax.field = r.XPath("cac:TaxTotal/cbc:TaxAmount");
  PL_TRY_ASSIGN(stated.tax.value,
                r.Amount(tax_total, "TaxAmount", "cac:TaxTotal/cbc:TaxAmount", true));
  auto subtotals = Children(tax_total, "TaxSubtotal");
  for (size_t i = 0; i < subtotals.size(); ++i) {
    const auto& node = subtotals[i];
    const std::string rel = fmt::format("cac:TaxTotal/cac:TaxSubtotal[{}]", i + 1);
    StatedTaxGroup g;
    g.field = r.XPath(rel);
    g.category = Text(node, "TaxCategory/ID");
    if (g.category.empty()) return r.Missing(rel + "/cac:TaxCategory/cbc:ID");
    std::optional<Decimal> value;
    PL_TRY_ASSIGN(value, r.Amount(Child(node, "TaxCategory"), "Percent",
                                  rel + "/cac:TaxCategory/cbc:Percent", false));
    g.rate = value.value_or(Decimal());
    PL_TRY_ASSIGN(g.taxable, r.Amount(node, "TaxableAmount", rel + "/cbc:TaxableAmount", true));
    PL_TRY_ASSIGN(g.tax, r.Amount(node, "TaxAmount", rel + "/cbc:TaxAmount", true));
    g.exemption_reason = Text(node, "TaxCategory/TaxExemptionReason");
    stated.tax_groups.push_back(std::move(g));
  }

  pugi::xml_node totals = Child(root, "LegalMonetaryTotal");
  if (!totals) return r.Missing("cac:LegalMonetaryTotal");
  struct Field {
    const char* local;
    StatedAmount* target;
    bool required;
  };
  const Field fields[] = {
      {"LineExtensionAmount", &stated.line_total, true},
      {"TaxExclusiveAmount", &stated.tax_exclusive, true},
      {"TaxInclusiveAmount", &stated.tax_inclusive, true},
      {"AllowanceTotalAmount", &stated.allowance_total, false},
      {"ChargeTotalAmount", &stated.charge_total, false},
      {"PayableAmount", &stated.payable, true},
  };
  for (const auto& f : fields) {
    std::string rel = fmt::format("cac:LegalMonetaryTotal/cbc:{}", f.local);
    f.target->field = fmt::format("LegalMonetaryTotal/{}", f.local);
    PL_TRY_ASSIGN(f.target->value, r.Amount(totals, f.local, rel, f.required));
  }
  std::optional<Decimal> value;
  PL_TRY_ASSIGN(
      value, r.Amount(totals, "PrepaidAmount", "cac:LegalMonetaryTotal/cbc:PrepaidAmount", false));
  inv.totals.prepaid = value.value_or(Decimal());
  PL_TRY_ASSIGN(value, r.Amount(totals, "PayableRoundingAmount",
                                "cac:LegalMonetaryTotal/cbc:PayableRoundingAmount", false));
  inv.totals.rounding = value.value_or(Decimal());
  if (auto ok = ComputeAndCheck(inv, stated, source); !ok) return std::unexpected(ok.error());
  return inv;
}

}  // namespace postline::invoice::internal
