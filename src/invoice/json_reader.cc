// Reader for the postline invoice JSON format (docs/invoice.md,
// docs/invoice.schema.json).

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <initializer_list>
#include <nlohmann/json.hpp>

#include "internal.h"
#include "postline/json.h"

namespace postline::invoice::internal {
namespace {

using nlohmann::json;

// Reads fields of one JSON document, producing errors that name the source
// and the JSON pointer of the field.
class JsonReader {
 public:
  explicit JsonReader(std::string_view source) : label_(SourceLabel(source)) {}

  Result<std::string> String(const json& obj, std::string_view key, const std::string& path,
                             bool required) const {
    auto it = obj.find(std::string(key));
    if (it == obj.end() || it->is_null()) {
      if (required) return Missing(path);
      return std::string();
    }
    if (!it->is_string()) return WrongType(path, "a string");
    std::string value = it->get<std::string>();
    if (required && value.empty()) return Missing(path);
    return value;
  }

  // Amounts are decimal strings; plain JSON integers are accepted too
  // (they are exact), fractional JSON numbers are refused.
  Result<std::optional<Decimal>> Amount(const json& obj, std::string_view key,
                                        const std::string& path, bool required) const {
    auto it = obj.find(std::string(key));
    if (it == obj.end() || it->is_null()) {
      if (required) return std::unexpected(Missing(path).error());
      return std::optional<Decimal>();
    }
    if (it->is_number_unsigned()) {
      // Above 2^63 too: read the digits, never a wrapped long long.
      auto d = Decimal::Parse(std::to_string(it->get<std::uint64_t>()), path);
      if (!d) {
        Error e = d.error();
        e.message = fmt::format("{}: {}", label_, e.message);
        return std::unexpected(e);
      }
      return std::optional<Decimal>(*d);
    }
    if (it->is_number_integer()) {
      return std::optional<Decimal>(Decimal::FromInt(it->get<long long>()));
    }
    if (!it->is_string()) {
      return std::unexpected(
          WrongType(path, "a decimal string such as \"1234.56\" (not a JSON number)").error());
    }
    auto d = Decimal::Parse(it->get<std::string>(), path);
    if (!d) {
      Error e = d.error();
      e.message = fmt::format("{}: {}", label_, e.message);
      return std::unexpected(e);
    }
    return std::optional<Decimal>(*d);
  }

  std::unexpected<Error> Missing(const std::string& path) const {
    return InvalidInput("missing_field", fmt::format("{}: {} is required", label_, path), path);
  }
  std::unexpected<Error> WrongType(const std::string& path, std::string_view allowed) const {
    return InvalidInput(
        "invalid_field",
        fmt::format("{}: {} has the wrong type; allowed: {}", label_, path, allowed), path);
  }
  const std::string& label() const { return label_; }

 private:
  std::string label_;
};

#define PL_TRY_ASSIGN(lhs, expr)                                 \
  do {                                                           \
    auto pl_result_ = (expr);                                    \
    if (!pl_result_) return std::unexpected(pl_result_.error()); \
    lhs = std::move(*pl_result_);                                \
  } while (0)

Result<Party> ReadParty(const JsonReader& r, const json& root, std::string_view key, bool seller) {
  const std::string path = fmt::format("/{}", key);
  auto it = root.find(std::string(key));
  if (it == root.end()) return r.Missing(path);
  if (!it->is_object()) return r.WrongType(path, "an object");
  const json& obj = *it;
  Party p;
  PL_TRY_ASSIGN(p.name, r.String(obj, "name", path + "/name", true));
  if (auto lines = obj.find("address_lines"); lines != obj.end()) {
    if (!lines->is_array()) return r.WrongType(path + "/address_lines", "an array of strings");
    for (size_t i = 0; i < lines->size(); ++i) {
      if (!(*lines)[i].is_string()) {
        return r.WrongType(fmt::format("{}/address_lines/{}", path, i), "a string");
      }
      p.address_lines.push_back((*lines)[i].get<std::string>());
    }
  }
  PL_TRY_ASSIGN(p.city, r.String(obj, "city", path + "/city", false));
  PL_TRY_ASSIGN(p.postcode, r.String(obj, "postcode", path + "/postcode", false));
  PL_TRY_ASSIGN(p.country_code, r.String(obj, "country", path + "/country", seller));
  PL_TRY_ASSIGN(p.tax_id, r.String(obj, "tax_id", path + "/tax_id", false));
  PL_TRY_ASSIGN(p.email, r.String(obj, "email", path + "/email", false));
  if (seller) PL_TRY_ASSIGN(p.logo_path, r.String(obj, "logo", path + "/logo", false));
  return p;
}

Result<std::vector<AllowanceCharge>> ReadAllowancesCharges(const JsonReader& r, const json& obj,
                                                           const std::string& path,
                                                           bool document_level) {
  std::vector<AllowanceCharge> out;
  for (const char* key : {"allowances", "charges"}) {
    auto it = obj.find(key);
    if (it == obj.end()) continue;
    const std::string list_path = fmt::format("{}/{}", path, key);
    if (!it->is_array()) return r.WrongType(list_path, "an array of objects");
    for (size_t i = 0; i < it->size(); ++i) {
      const json& item = (*it)[i];
      const std::string item_path = fmt::format("{}/{}", list_path, i);
      if (!item.is_object()) return r.WrongType(item_path, "an object");
      AllowanceCharge ac;
      ac.is_charge = std::string_view(key) == "charges";
      std::optional<Decimal> amount;
      PL_TRY_ASSIGN(amount, r.Amount(item, "amount", item_path + "/amount", true));
      if (amount->IsNegative()) {
        return InvalidInput("invalid_field",
                            fmt::format("{}: {}/amount is negative; allowed: an amount >= 0 "
                                        "(use allowances to reduce, charges to add)",
                                        r.label(), item_path),
                            item_path + "/amount");
      }
      ac.amount = *amount;
      PL_TRY_ASSIGN(ac.reason, r.String(item, "reason", item_path + "/reason", false));
      if (document_level) {
        PL_TRY_ASSIGN(ac.tax_category,
                      r.String(item, "tax_category", item_path + "/tax_category", true));
        std::optional<Decimal> rate;
        PL_TRY_ASSIGN(rate, r.Amount(item, "tax_rate", item_path + "/tax_rate", true));
        ac.tax_rate = *rate;
      }
      out.push_back(std::move(ac));
    }
  }
  return out;
}

// Refuses keys outside `allowed`, so a misspelt field (say "prepaid" for
// "prepaid_amount") can't silently change the amount due.
Result<void> CheckKeys(const JsonReader& r, const json& obj, const std::string& path,
                       std::initializer_list<std::string_view> allowed) {
  for (const auto& [key, value] : obj.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return InvalidInput("unknown_field",
                          fmt::format("{}: {}/{} is not a field of the postline invoice format; "
                                      "allowed: {}",
                                      r.label(), path, key, fmt::join(allowed, ", ")),
                          fmt::format("{}/{}", path, key));
    }
  }
  return {};
}

}  // namespace

Result<Invoice> ParseJsonInvoice(std::string_view bytes, std::string_view source) {
  JsonReader r(source);
  // Depth and number range are checked while parsing (postline/json.h).
  auto parsed = ParseJson(bytes, {.paths = JsonPathStyle::kPointer, .document = "the invoice"});
  if (!parsed) {
    Error e = parsed.error();
    e.message = fmt::format("{}: {}", r.label(), e.message);
    return std::unexpected(std::move(e));
  }
  const json& root = *parsed;
  if (!root.is_object()) return r.WrongType("/", "a JSON object");
  if (auto ok = CheckKeys(r, root, "",
                          {"number",     "type",          "issue_date",     "due_date",
                           "currency",   "locale",        "seller",         "buyer",
                           "student",    "class",         "term",           "lines",
                           "allowances", "charges",       "prepaid_amount", "rounding_amount",
                           "totals",     "payment_terms", "payment",        "notes"});
      !ok) {
    return std::unexpected(ok.error());
  }
  Invoice inv;
  inv.source_format = SourceFormat::kJson;
  PL_TRY_ASSIGN(inv.number, r.String(root, "number", "/number", true));
  std::string type;
  PL_TRY_ASSIGN(type, r.String(root, "type", "/type", false));
  if (type.empty() || type == "invoice") {
    inv.type = DocumentType::kInvoice;
  } else if (type == "credit_note") {
    inv.type = DocumentType::kCreditNote;
  } else {
    return InvalidInput("invalid_field",
                        fmt::format("{}: /type \"{}\" is not allowed; allowed: \"invoice\" or "
                                    "\"credit_note\"",
                                    r.label(), type),
                        "/type");
  }
  PL_TRY_ASSIGN(inv.issue_date, r.String(root, "issue_date", "/issue_date", true));
  PL_TRY_ASSIGN(inv.due_date, r.String(root, "due_date", "/due_date", false));
  PL_TRY_ASSIGN(inv.currency, r.String(root, "currency", "/currency", true));
  PL_TRY_ASSIGN(inv.locale, r.String(root, "locale", "/locale", false));
  PL_TRY_ASSIGN(inv.seller, ReadParty(r, root, "seller", true));
  PL_TRY_ASSIGN(inv.buyer, ReadParty(r, root, "buyer", false));
  PL_TRY_ASSIGN(inv.student, r.String(root, "student", "/student", false));
  PL_TRY_ASSIGN(inv.class_name, r.String(root, "class", "/class", false));
  PL_TRY_ASSIGN(inv.term, r.String(root, "term", "/term", false));
  PL_TRY_ASSIGN(inv.payment_terms, r.String(root, "payment_terms", "/payment_terms", false));
  if (auto it = root.find("payment"); it != root.end()) {
    if (!it->is_object()) return r.WrongType("/payment", "an object");
    PL_TRY_ASSIGN(inv.payment.iban, r.String(*it, "iban", "/payment/iban", false));
    PL_TRY_ASSIGN(inv.payment.bic, r.String(*it, "bic", "/payment/bic", false));
    PL_TRY_ASSIGN(inv.payment.account_name,
                  r.String(*it, "account_name", "/payment/account_name", false));
    PL_TRY_ASSIGN(inv.payment.reference, r.String(*it, "reference", "/payment/reference", false));
  }
  if (auto it = root.find("notes"); it != root.end()) {
    if (!it->is_array()) return r.WrongType("/notes", "an array of strings");
    for (size_t i = 0; i < it->size(); ++i) {
      if (!(*it)[i].is_string()) return r.WrongType(fmt::format("/notes/{}", i), "a string");
      inv.notes.push_back((*it)[i].get<std::string>());
    }
  }
  if (auto ok = ValidateCommon(inv, source, false); !ok) return std::unexpected(ok.error());

  StatedFigures stated;
  auto lines = root.find("lines");
  if (lines == root.end() || !lines->is_array() || lines->empty()) {
    if (lines != root.end() && !lines->is_array()) return r.WrongType("/lines", "an array");
    return r.Missing("/lines (at least one line)");
  }
  for (size_t i = 0; i < lines->size(); ++i) {
    const json& item = (*lines)[i];
    const std::string path = fmt::format("/lines/{}", i);
    if (!item.is_object()) return r.WrongType(path, "an object");
    if (auto ok = CheckKeys(r, item, path,
                            {"id", "description", "quantity", "unit_code", "unit_price",
                             "tax_category", "tax_rate", "allowances", "charges", "net_amount"});
        !ok) {
      return std::unexpected(ok.error());
    }
    InvoiceLine line;
    PL_TRY_ASSIGN(line.id, r.String(item, "id", path + "/id", false));
    if (line.id.empty()) line.id = std::to_string(i + 1);
    PL_TRY_ASSIGN(line.description, r.String(item, "description", path + "/description", true));
    std::optional<Decimal> value;
    PL_TRY_ASSIGN(value, r.Amount(item, "quantity", path + "/quantity", true));
    if (value->IsNegative()) {
      return InvalidInput("negative_quantity",
                          fmt::format("{}: {}/quantity is {}; allowed: a quantity >= 0 (reduce "
                                      "with allowances, refund with a \"credit_note\")",
                                      r.label(), path, value->ToString()),
                          path + "/quantity");
    }
    line.quantity = *value;
    PL_TRY_ASSIGN(line.unit_code, r.String(item, "unit_code", path + "/unit_code", false));
    if (line.unit_code.empty()) line.unit_code = "C62";
    PL_TRY_ASSIGN(value, r.Amount(item, "unit_price", path + "/unit_price", true));
    if (value->IsNegative()) {
      return InvalidInput(
          "invalid_field",
          fmt::format("{}: {}/unit_price is negative; allowed: a price >= 0", r.label(), path),
          path + "/unit_price");
    }
    line.unit_price = *value;
    PL_TRY_ASSIGN(line.tax_category, r.String(item, "tax_category", path + "/tax_category", true));
    PL_TRY_ASSIGN(value, r.Amount(item, "tax_rate", path + "/tax_rate", true));
    line.tax_rate = *value;
    PL_TRY_ASSIGN(line.allowances_charges, ReadAllowancesCharges(r, item, path, false));
    StatedAmount net;
    net.field = path + "/net_amount";
    PL_TRY_ASSIGN(net.value, r.Amount(item, "net_amount", net.field, false));
    stated.line_nets.push_back(std::move(net));
    inv.lines.push_back(std::move(line));
  }
  PL_TRY_ASSIGN(inv.allowances_charges, ReadAllowancesCharges(r, root, "", true));
  std::optional<Decimal> value;
  PL_TRY_ASSIGN(value, r.Amount(root, "prepaid_amount", "/prepaid_amount", false));
  inv.totals.prepaid = value.value_or(Decimal());
  PL_TRY_ASSIGN(value, r.Amount(root, "rounding_amount", "/rounding_amount", false));
  inv.totals.rounding = value.value_or(Decimal());
  if (auto it = root.find("totals"); it != root.end()) {
    if (!it->is_object()) return r.WrongType("/totals", "an object");
    struct Field {
      const char* key;
      StatedAmount* target;
    };
    const Field fields[] = {
        {"line_total", &stated.line_total},
        {"allowance_total", &stated.allowance_total},
        {"charge_total", &stated.charge_total},
        {"tax_exclusive", &stated.tax_exclusive},
        {"tax", &stated.tax},
        {"tax_inclusive", &stated.tax_inclusive},
        {"payable", &stated.payable},
    };
    for (const auto& f : fields) {
      f.target->field = fmt::format("/totals/{}", f.key);
      PL_TRY_ASSIGN(f.target->value, r.Amount(*it, f.key, f.target->field, false));
    }
  }
  if (auto ok = ComputeAndCheck(inv, stated, source); !ok) return std::unexpected(ok.error());
  return inv;
}

}  // namespace postline::invoice::internal
