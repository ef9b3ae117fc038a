// PostgreSQL through libpq (postline/postgres.h).
#include "postline/postgres.h"

#include <fmt/format.h>
#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <utility>

namespace postline::pg {
namespace {

constexpr std::string_view kRedacted = "********";

std::string OneLine(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\n') {
      out += "; ";
    } else if (c != '\r') {
      out += c;
    }
  }
  return out;
}

bool IsPasswordKeyword(std::string_view key) {
  auto equals = [&](std::string_view word) {
    return key.size() == word.size() &&
           std::equal(key.begin(), key.end(), word.begin(), [](char a, char b) {
             return std::tolower(static_cast<unsigned char>(a)) == b;
           });
  };
  return equals("password") || equals("sslpassword");
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && HexValue(text[i + 1]) >= 0 &&
        HexValue(text[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(text[i + 1]) * 16 + HexValue(text[i + 2]));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

bool IsUri(std::string_view conninfo) {
  return conninfo.starts_with("postgresql://") || conninfo.starts_with("postgres://");
}

// URI form: the password of the user info (up to the first '@' before any
// '/', as libpq reads it) and password parameters of the query.
std::string RedactUri(std::string_view uri, std::vector<std::string>& secrets) {
  const std::size_t scheme_end = uri.find("://") + 3;
  std::string out(uri.substr(0, scheme_end));
  std::string_view rest = uri.substr(scheme_end);
  const std::size_t stop = rest.find_first_of("@/");
  if (stop != std::string_view::npos && rest[stop] == '@') {
    std::string_view userinfo = rest.substr(0, stop);
    const std::size_t colon = userinfo.find(':');
    if (colon != std::string_view::npos && colon + 1 < userinfo.size()) {
      out += userinfo.substr(0, colon + 1);
      out += kRedacted;
      secrets.emplace_back(userinfo.substr(colon + 1));
    } else {
      out += userinfo;
    }
    out += '@';
    rest = rest.substr(stop + 1);
  }
  const std::size_t question = rest.find('?');
  out += rest.substr(0, question);
  if (question == std::string_view::npos) return out;
  out += '?';
  std::string_view query = rest.substr(question + 1);
  bool first = true;
  while (true) {
    const std::size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (!first) out += '&';
    first = false;
    const std::size_t eq = pair.find('=');
    if (eq != std::string_view::npos && IsPasswordKeyword(PercentDecode(pair.substr(0, eq)))) {
      out += pair.substr(0, eq + 1);
      out += kRedacted;
      secrets.emplace_back(pair.substr(eq + 1));
    } else {
      out += pair;
    }
    if (amp == std::string_view::npos) break;
    query = query.substr(amp + 1);
  }
  return out;
}

// Keyword/value form, tokenised as libpq's conninfo_parse does: key, '=',
// a value that is single-quoted (backslash escapes) or runs to whitespace.
std::string RedactKeywords(std::string_view text, std::vector<std::string>& secrets) {
  std::string out;
  std::size_t i = 0;
  auto space = [&](std::size_t at) {
    return at < text.size() && std::isspace(static_cast<unsigned char>(text[at]));
  };
  while (i < text.size()) {
    const std::size_t start = i;
    while (space(i)) ++i;
    const std::size_t key_begin = i;
    while (i < text.size() && text[i] != '=' && !space(i)) ++i;
    const std::string_view key = text.substr(key_begin, i - key_begin);
    while (space(i)) ++i;
    if (key.empty() && i >= text.size()) {
      out += text.substr(start);
      break;
    }
    if (i >= text.size() || text[i] != '=') {
      // Not keyword=value: libpq refuses it. Hide the rest, it may hold a
      // password.
      out += text.substr(start, key_begin - start);
      out += kRedacted;
      secrets.emplace_back(text.substr(key_begin));
      return out;
    }
    ++i;  // '='
    while (space(i)) ++i;
    const std::size_t value_begin = i;
    if (i < text.size() && text[i] == '\'') {
      ++i;
      bool closed = false;
      while (i < text.size()) {
        if (text[i] == '\\' && i + 1 < text.size()) {
          i += 2;
        } else if (text[i] == '\'') {
          ++i;
          closed = true;
          break;
        } else {
          ++i;
        }
      }
      if (!closed && IsPasswordKeyword(key)) {
        out += text.substr(start, value_begin - start);
        out += kRedacted;
        secrets.emplace_back(text.substr(value_begin + 1));
        return out;
      }
    } else {
      while (i < text.size() && !space(i)) {
        i += (text[i] == '\\' && i + 1 < text.size()) ? 2 : 1;
      }
    }
    out += text.substr(start, value_begin - start);
    if (IsPasswordKeyword(key)) {
      out += kRedacted;
      std::string_view value = text.substr(value_begin, i - value_begin);
      if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') {
        value = value.substr(1, value.size() - 2);
      }
      secrets.emplace_back(value);
    } else {
      out += text.substr(value_begin, i - value_begin);
    }
  }
  return out;
}

// libpq's parsed options; freed on scope exit.
struct ParsedOptions {
  PQconninfoOption* options = nullptr;
  std::string error;
  explicit ParsedOptions(std::string_view conninfo) {
    char* err = nullptr;
    const std::string text(conninfo);
    options = PQconninfoParse(text.c_str(), &err);
    if (options == nullptr) {
      error = err != nullptr ? OneLine(err) : std::string("out of memory");
    }
    if (err != nullptr) PQfreemem(err);
  }
  ~ParsedOptions() {
    if (options != nullptr) PQconninfoFree(options);
  }
  std::string Get(std::string_view keyword) const {
    for (auto* o = options; o != nullptr && o->keyword != nullptr; ++o) {
      if (keyword == o->keyword) return o->val != nullptr ? o->val : "";
    }
    return "";
  }
};

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> out;
  std::size_t begin = 0;
  while (true) {
    const std::size_t comma = text.find(',', begin);
    out.push_back(text.substr(begin, comma - begin));
    if (comma == std::string::npos) break;
    begin = comma + 1;
  }
  return out;
}

// "host:port/dbname" from libpq's values; several hosts joined with ','.
std::string FormatDatabase(const std::string& hosts, const std::string& ports,
                           const std::string& dbname) {
  const auto host_list = SplitCommas(hosts.empty() ? std::string("local socket") : hosts);
  const auto port_list = SplitCommas(ports.empty() ? std::string("5432") : ports);
  std::string out;
  for (std::size_t i = 0; i < host_list.size(); ++i) {
    if (i > 0) out += ',';
    out += host_list[i].empty() ? std::string("local socket") : host_list[i];
    out += ':';
    const std::string& port = port_list.size() == 1  ? port_list[0]
                              : i < port_list.size() ? port_list[i]
                                                     : std::string("5432");
    out += port.empty() ? std::string("5432") : port;
  }
  return out + "/" + dbname;
}

Error Unavailable(std::string message, std::string_view setting) {
  return Error{ErrorKind::kTransient, "database_unavailable", std::move(message),
               std::string(setting)};
}

}  // namespace

// --- connection strings ------------------------------------------------------------

Result<void> ValidateConnectionString(std::string_view conninfo, std::string_view setting) {
  ParsedOptions parsed(conninfo);
  if (parsed.options == nullptr) {
    // libpq quotes the token it stumbled on, which may be (part of) a
    // password: hide every password value, raw and percent-decoded.
    std::vector<std::string> secrets;
    (void)(IsUri(conninfo) ? RedactUri(conninfo, secrets) : RedactKeywords(conninfo, secrets));
    for (const std::string& secret : secrets) {
      for (const std::string& form : {secret, PercentDecode(secret)}) {
        if (form.empty()) continue;
        for (std::size_t at; (at = parsed.error.find(form)) != std::string::npos;) {
          parsed.error.replace(at, form.size(), kRedacted);
        }
      }
    }
    return InvalidInput("invalid_database_url",
                        fmt::format("must be a libpq connection URI "
                                    "(postgresql://user:password@host:port/dbname?sslmode=…) or "
                                    "keyword/value string (host=… dbname=…): {}",
                                    parsed.error),
                        std::string(setting));
  }
  return {};
}

std::string RedactConnectionString(std::string_view conninfo) {
  std::vector<std::string> secrets;
  return IsUri(conninfo) ? RedactUri(conninfo, secrets) : RedactKeywords(conninfo, secrets);
}

std::string DescribeDatabase(std::string_view conninfo) {
  ParsedOptions parsed(conninfo);
  if (parsed.options == nullptr) return "";
  std::string host = parsed.Get("host");
  if (host.empty()) host = parsed.Get("hostaddr");
  std::string port = parsed.Get("port");
  std::string dbname = parsed.Get("dbname");
  std::string user = parsed.Get("user");
  PQconninfoOption* defaults = PQconndefaults();
  for (auto* o = defaults; o != nullptr && o->keyword != nullptr; ++o) {
    const std::string_view keyword = o->keyword;
    const std::string value = o->val != nullptr ? o->val : "";
    if (keyword == "host" && host.empty()) host = value;
    if (keyword == "port" && port.empty()) port = value;
    if (keyword == "dbname" && dbname.empty()) dbname = value;
    if (keyword == "user" && user.empty()) user = value;
  }
  if (defaults != nullptr) PQconninfoFree(defaults);
  if (dbname.empty()) dbname = user;
  return FormatDatabase(host, port, dbname);
}

std::string ToStorableText(std::string_view text) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  // Fast path: nothing to replace.
  auto next_valid = [&](std::size_t at) -> std::size_t {  // length of a valid sequence, 0 if none
    const unsigned char c = s[at];
    if (c == 0) return 0;
    if (c < 0x80) return 1;
    auto cont = [&](std::size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
      return at + k < n && s[at + k] >= lo && s[at + k] <= hi;
    };
    if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
    if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
    if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
    if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
    if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
    if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
    if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
    return 0;
  };
  std::size_t clean = 0;  // bytes at the start known to be valid
  while (clean < n) {
    const std::size_t len = next_valid(clean);
    if (len == 0) break;
    clean += len;
  }
  if (clean == n) return std::string(text);
  out.reserve(n + 8);
  out.append(text.substr(0, clean));
  i = clean;
  while (i < n) {
    const std::size_t len = next_valid(i);
    if (len == 0) {
      out += kReplacement;
      ++i;
    } else {
      out.append(text.substr(i, len));
      i += len;
    }
  }
  return out;
}

// --- statements ------------------------------------------------------------------------

Params& Params::Text(std::string_view value) {
  values_.emplace_back(std::string(value));
  return *this;
}
Params& Params::Utf8(std::string_view value) {
  values_.emplace_back(ToStorableText(value));
  return *this;
}
Params& Params::Int(std::int64_t value) {
  values_.emplace_back(std::to_string(value));
  return *this;
}
Params& Params::Bool(bool value) {
  values_.emplace_back(value ? "true" : "false");
  return *this;
}
Params& Params::Null() {
  values_.emplace_back(std::nullopt);
  return *this;
}

std::vector<const char*> Params::Pointers() const {
  std::vector<const char*> out;
  out.reserve(values_.size());
  for (const auto& v : values_) out.push_back(v ? v->c_str() : nullptr);
  return out;
}

Rows::Rows(pg_result* result) : result_(result) {}
Rows::~Rows() {
  if (result_ != nullptr) PQclear(result_);
}
Rows::Rows(Rows&& other) noexcept : result_(std::exchange(other.result_, nullptr)) {}
Rows& Rows::operator=(Rows&& other) noexcept {
  if (this != &other) {
    if (result_ != nullptr) PQclear(result_);
    result_ = std::exchange(other.result_, nullptr);
  }
  return *this;
}
int Rows::size() const { return result_ != nullptr ? PQntuples(result_) : 0; }
std::int64_t Rows::affected() const {
  if (result_ == nullptr) return 0;
  const char* text = PQcmdTuples(result_);
  std::int64_t n = 0;
  std::from_chars(text, text + std::strlen(text), n);
  return n;
}
std::string Rows::Text(int row, int col) const {
  return std::string(PQgetvalue(result_, row, col),
                     static_cast<std::size_t>(PQgetlength(result_, row, col)));
}
std::int64_t Rows::Int(int row, int col) const {
  const char* text = PQgetvalue(result_, row, col);
  std::int64_t n = 0;
  std::from_chars(text, text + PQgetlength(result_, row, col), n);
  return n;
}
bool Rows::Bool(int row, int col) const { return PQgetvalue(result_, row, col)[0] == 't'; }
bool Rows::IsNull(int row, int col) const { return PQgetisnull(result_, row, col) == 1; }

// --- connection ----------------------------------------------------------------------------

Result<std::unique_ptr<Connection>> Connection::Open(std::string_view conninfo,
                                                     std::string_view setting) {
  if (auto ok = ValidateConnectionString(conninfo, setting); !ok) {
    return std::unexpected(ok.error());
  }
  const std::string text(conninfo);
  // Keywords before dbname are defaults the string overrides; after it,
  // what postline needs (text in UTF-8).
  const char* keywords[] = {"connect_timeout", "fallback_application_name", "dbname",
                            "client_encoding", nullptr};
  const char* values[] = {"10", "postline", text.c_str(), "UTF8", nullptr};
  pg_conn* conn = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
  if (conn == nullptr) return std::unexpected(Unavailable("libpq: out of memory", setting));
  const char* host = PQhost(conn);
  const char* port = PQport(conn);
  const char* db = PQdb(conn);
  std::string database = FormatDatabase(host != nullptr ? host : "", port != nullptr ? port : "",
                                        db != nullptr ? db : "");
  if (PQstatus(conn) != CONNECTION_OK) {
    Error e = Unavailable(fmt::format("cannot connect to PostgreSQL database {}: {}", database,
                                      OneLine(PQerrorMessage(conn))),
                          setting);
    PQfinish(conn);
    return std::unexpected(std::move(e));
  }
  // Notices (NOTICE, WARNING: "relation already exists, skipping") are
  // informational; libpq would print them on stderr.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return std::unique_ptr<Connection>(
      new Connection(conn, std::move(database), std::string(setting)));
}

Connection::Connection(pg_conn* conn, std::string database, std::string setting)
    : conn_(conn), database_(std::move(database)), setting_(std::move(setting)) {}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::broken() const {
  return lost_ || PQstatus(conn_) != CONNECTION_OK || PQtransactionStatus(conn_) != PQTRANS_IDLE;
}

int Connection::BackendPid() const { return PQbackendPID(conn_); }

bool Connection::StillOpen() {
  if (lost_) return false;
  // Twice: the first read may take a pending FATAL message, the second the
  // end of file that follows it.
  for (int i = 0; i < 2; ++i) {
    if (PQconsumeInput(conn_) != 1 || PQstatus(conn_) != CONNECTION_OK) {
      lost_ = true;
      return false;
    }
  }
  return true;
}

Error Connection::Fail(const pg_result* result, std::string_view what) {
  const char* sqlstate_ptr =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = sqlstate_ptr != nullptr ? sqlstate_ptr : "";
  const char* primary =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  std::string message = OneLine(primary != nullptr ? primary : PQerrorMessage(conn_));
  if (message.empty()) message = "no reply from the server";
  const bool gone = PQstatus(conn_) != CONNECTION_OK;
  const std::string_view cls =
      std::string_view(sqlstate).substr(0, std::min<std::size_t>(2, sqlstate.size()));
  const std::string text =
      sqlstate.empty()
          ? fmt::format("{} on PostgreSQL database {} failed: {}", what, database_, message)
          : fmt::format("{} on PostgreSQL database {} failed: {} (SQLSTATE {})", what, database_,
                        message, sqlstate);
  if (gone || cls == "08" || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03") {
    lost_ = lost_ || gone || cls == "08" || sqlstate.starts_with("57P0");
    return Unavailable(text, setting_);
  }
  if (cls == "53" || sqlstate == "58030") return Unavailable(text, setting_);
  if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "55P03" || sqlstate == "57014") {
    return Error{ErrorKind::kTransient, "database_busy", text, ""};
  }
  if (cls == "23") {
    const char* constraint =
        result != nullptr ? PQresultErrorField(result, PG_DIAG_CONSTRAINT_NAME) : nullptr;
    return Error{ErrorKind::kInvalidInput,
                 sqlstate == "23505" ? "unique_violation" : "constraint_violation", text,
                 constraint != nullptr ? constraint : ""};
  }
  if (cls == "22") return Error{ErrorKind::kInvalidInput, "invalid_value", text, ""};
  if (sqlstate == "42501") {
    return Error{ErrorKind::kPermanent, "database_permission_denied", text, setting_};
  }
  return Error{ErrorKind::kInternal, "database_error", text, ""};
}

Result<std::string> Connection::Prepared(std::string_view sql, int n_params,
                                         std::string_view what) {
  if (auto it = prepared_.find(sql); it != prepared_.end()) return it->second;
  std::string name = fmt::format("postline_{}", prepared_.size() + 1);
  const std::string text(sql);
  PGresult* r = PQprepare(conn_, name.c_str(), text.c_str(), n_params, nullptr);
  if (PQresultStatus(r) != PGRES_COMMAND_OK) {
    Error e = Fail(r, what);
    PQclear(r);
    return std::unexpected(std::move(e));
  }
  PQclear(r);
  prepared_.emplace(text, name);
  return name;
}

Result<Rows> Connection::Exec(std::string_view sql, const Params& params, std::string_view what) {
  if (lost_) {
    return std::unexpected(Unavailable(
        fmt::format("{} on PostgreSQL database {}: the connection was lost", what, database_),
        setting_));
  }
  auto name = Prepared(sql, params.size(), what);
  if (!name) return std::unexpected(name.error());
  const auto values = params.Pointers();
  PGresult* r =
      PQexecPrepared(conn_, name->c_str(), params.size(), values.data(), nullptr, nullptr, 0);
  const auto status = PQresultStatus(r);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return Rows(r);
  Error e = Fail(r, what);
  PQclear(r);
  return std::unexpected(std::move(e));
}

Result<void> Connection::ExecScript(std::string_view sql, std::string_view what) {
  if (lost_) {
    return std::unexpected(Unavailable(
        fmt::format("{} on PostgreSQL database {}: the connection was lost", what, database_),
        setting_));
  }
  const std::string text(sql);
  PGresult* r = PQexec(conn_, text.c_str());
  const auto status = PQresultStatus(r);
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY) {
    PQclear(r);
    return {};
  }
  Error e = Fail(r, what);
  PQclear(r);
  return std::unexpected(std::move(e));
}

Result<std::vector<Rows>> Connection::ExecBatch(std::span<const Statement> statements,
                                                std::string_view what) {
  if (lost_) {
    return std::unexpected(Unavailable(
        fmt::format("{} on PostgreSQL database {}: the connection was lost", what, database_),
        setting_));
  }
  if (statements.empty()) return std::vector<Rows>{};
  auto lose = [&](std::string_view step) {
    // A pipeline that cannot be sent or read leaves the connection in an
    // unknown state: it is discarded.
    lost_ = true;
    return std::unexpected(
        Unavailable(fmt::format("{} on PostgreSQL database {} failed while {}: {}", what, database_,
                                step, OneLine(PQerrorMessage(conn_))),
                    setting_));
  };
  if (PQenterPipelineMode(conn_) != 1) return lose("entering pipeline mode");
  struct Step {
    bool prepare;
    std::string name;
    std::string_view sql;
  };
  std::vector<Step> steps;
  std::map<std::string_view, std::string> preparing;  // in this batch
  for (const auto& st : statements) {
    std::string name;
    if (auto it = prepared_.find(st.sql); it != prepared_.end()) {
      name = it->second;
    } else if (auto p = preparing.find(st.sql); p != preparing.end()) {
      name = p->second;
    } else {
      name = fmt::format("postline_{}", prepared_.size() + preparing.size() + 1);
      if (PQsendPrepare(conn_, name.c_str(), st.sql.c_str(), st.params.size(), nullptr) != 1) {
        return lose("sending");
      }
      preparing.emplace(st.sql, name);
      steps.push_back({true, name, st.sql});
    }
    const auto values = st.params.Pointers();
    if (PQsendQueryPrepared(conn_, name.c_str(), st.params.size(), values.data(), nullptr, nullptr,
                            0) != 1) {
      return lose("sending");
    }
    steps.push_back({false, name, st.sql});
  }
  if (PQpipelineSync(conn_) != 1) return lose("sending");

  std::vector<Rows> results;
  results.reserve(statements.size());
  std::optional<Error> first_error;
  for (const auto& step : steps) {
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) return lose("reading the replies");
    const auto status = PQresultStatus(r);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
      if (step.prepare) {
        prepared_.emplace(std::string(step.sql), step.name);
        PQclear(r);
      } else {
        results.emplace_back(r);
      }
    } else {
      if (status != PGRES_PIPELINE_ABORTED && !first_error) first_error = Fail(r, what);
      PQclear(r);
      if (!step.prepare) results.emplace_back();
      if (lost_) return std::unexpected(*first_error);
    }
    // Each statement's results end with a null.
    if (PGresult* end = PQgetResult(conn_); end != nullptr) {
      PQclear(end);
      return lose("reading the replies");
    }
  }
  PGresult* sync = PQgetResult(conn_);
  const bool synced = sync != nullptr && PQresultStatus(sync) == PGRES_PIPELINE_SYNC;
  PQclear(sync);
  if (!synced || PQexitPipelineMode(conn_) != 1) return lose("ending the pipeline");
  if (first_error) return std::unexpected(*first_error);
  return results;
}

// --- transaction ---------------------------------------------------------------------------

Result<Transaction> Transaction::Begin(Connection& connection, bool serializable) {
  auto begun = connection.ExecScript(serializable ? "BEGIN ISOLATION LEVEL SERIALIZABLE" : "BEGIN",
                                     "begin transaction");
  if (!begun) return std::unexpected(begun.error());
  return Transaction(connection);
}

Transaction::Transaction(Transaction&& other) noexcept
    : connection_(std::exchange(other.connection_, nullptr)) {}

Transaction::~Transaction() {
  if (connection_ != nullptr && !connection_->lost()) {
    (void)connection_->ExecScript("ROLLBACK", "roll back");
  }
}

Result<void> Transaction::Commit() {
  Connection* c = std::exchange(connection_, nullptr);
  if (c == nullptr) {
    return MakeError(ErrorKind::kInternal, "database_error", "commit of a finished transaction");
  }
  // COMMIT of a transaction that an earlier statement aborted answers
  // ROLLBACK without an error; report it as the failure it is.
  const bool aborted = !c->lost() && PQtransactionStatus(c->conn_) == PQTRANS_INERROR;
  auto committed = c->ExecScript("COMMIT", "commit");
  if (!committed) return std::unexpected(committed.error());
  if (aborted) {
    return MakeError(ErrorKind::kInternal, "database_error",
                     fmt::format("commit on PostgreSQL database {}: the transaction was aborted "
                                 "by an earlier error and rolled back",
                                 c->database()));
  }
  return {};
}

// --- pool ------------------------------------------------------------------------------------

Result<std::shared_ptr<ConnectionPool>> ConnectionPool::Create(PoolOptions options) {
  if (auto ok = ValidateConnectionString(options.conninfo, options.setting); !ok) {
    return std::unexpected(ok.error());
  }
  if (options.size < 1 || options.size > 64) {
    return InvalidInput("invalid_pool_size",
                        fmt::format("the pool size must be 1–64, got {}", options.size),
                        "pool_size");
  }
  return std::shared_ptr<ConnectionPool>(new ConnectionPool(std::move(options)));
}

ConnectionPool::ConnectionPool(PoolOptions options)
    : options_(std::move(options)), database_(DescribeDatabase(options_.conninfo)) {}

ConnectionPool::~ConnectionPool() = default;

int ConnectionPool::open_connections() const {
  std::lock_guard lock(mu_);
  return open_;
}

Result<Lease> ConnectionPool::Acquire() {
  const auto deadline = std::chrono::steady_clock::now() + options_.acquire_timeout;
  std::unique_lock lock(mu_);
  while (true) {
    while (!idle_.empty()) {
      auto connection = std::move(idle_.back());
      idle_.pop_back();
      lock.unlock();
      if (connection->StillOpen()) return Lease(this, std::move(connection), false);
      connection.reset();  // the server dropped it: replaced below
      lock.lock();
      --open_;
    }
    if (open_ < options_.size) {
      ++open_;
      lock.unlock();
      auto connection = Connection::Open(options_.conninfo, options_.setting);
      if (!connection) {
        lock.lock();
        --open_;
        freed_.notify_one();
        return std::unexpected(connection.error());
      }
      return Lease(this, std::move(*connection), true);
    }
    if (freed_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= options_.size) {
      return MakeError(ErrorKind::kTransient, "database_busy",
                       fmt::format("all {} connections to PostgreSQL database {} stayed in use "
                                   "for {} ms",
                                   options_.size, database_, options_.acquire_timeout.count()));
    }
  }
}

void ConnectionPool::GiveBack(std::unique_ptr<Connection> connection) {
  const bool keep = !connection->broken();
  if (!keep) connection.reset();  // closes outside the lock
  std::lock_guard lock(mu_);
  if (keep) {
    idle_.push_back(std::move(connection));
  } else {
    --open_;
  }
  freed_.notify_one();
}

Lease::Lease(Lease&& other) noexcept
    : pool_(std::exchange(other.pool_, nullptr)),
      connection_(std::move(other.connection_)),
      fresh_(other.fresh_) {}

Lease::~Lease() {
  if (pool_ != nullptr && connection_ != nullptr) pool_->GiveBack(std::move(connection_));
}

// --- migrations ------------------------------------------------------------------------------

std::int64_t AdvisoryLockKey(std::string_view name) {
  // FNV-1a, 64 bits.
  std::uint64_t h = 14695981039346656037ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return static_cast<std::int64_t>(h);
}

Result<int> Migrate(Connection& connection, std::string_view component,
                    std::span<const Migration> migrations) {
  const int latest = migrations.empty() ? 0 : migrations.back().version;
  for (std::size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i) + 1) {
      return MakeError(ErrorKind::kInternal, "database_error",
                       fmt::format("migrations of {} must be numbered 1, 2, 3, …; #{} is {}",
                                   component, i + 1, migrations[i].version));
    }
  }
  auto tx = Transaction::Begin(connection);
  if (!tx) return std::unexpected(tx.error());
  const std::string what = fmt::format("schema migration of {}", component);
  if (auto locked = connection.Exec("SELECT pg_advisory_xact_lock($1::bigint)",
                                    Params().Int(AdvisoryLockKey("postline.schema")), what);
      !locked) {
    return std::unexpected(locked.error());
  }
  if (auto created = connection.ExecScript("CREATE TABLE IF NOT EXISTS postline_schema ("
                                           "  component text PRIMARY KEY,"
                                           "  version integer NOT NULL,"
                                           "  updated_at timestamptz NOT NULL DEFAULT now())",
                                           what);
      !created) {
    return std::unexpected(created.error());
  }
  auto current_rows = connection.Exec("SELECT version FROM postline_schema WHERE component = $1",
                                      Params().Text(component), what);
  if (!current_rows) return std::unexpected(current_rows.error());
  const int current = current_rows->empty() ? 0 : static_cast<int>(current_rows->Int(0, 0));
  if (current > latest) {
    return MakeError(ErrorKind::kPermanent, "schema_too_new",
                     fmt::format("schema version {} of {} in PostgreSQL database {} is newer than "
                                 "this program's {}; upgrade postline",
                                 current, component, connection.database(), latest),
                     connection.setting());
  }
  if (current == latest) return current;  // the transaction rolls back: nothing changed
  for (const auto& m : migrations) {
    if (m.version <= current) continue;
    if (auto applied =
            connection.ExecScript(m.sql, fmt::format("{} (to version {})", what, m.version));
        !applied) {
      return std::unexpected(applied.error());
    }
  }
  if (auto recorded = connection.Exec(
          "INSERT INTO postline_schema (component, version) VALUES ($1, $2::integer) "
          "ON CONFLICT (component) DO UPDATE SET version = excluded.version, updated_at = now()",
          Params().Text(component).Int(latest), what);
      !recorded) {
    return std::unexpected(recorded.error());
  }
  if (auto committed = tx->Commit(); !committed) return std::unexpected(committed.error());
  return latest;
}

}  // namespace postline::pg
