#include "postline/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <fstream>
#include <sstream>

#include "postline/envelope.h"
#include "postline/postgres.h"

extern char** environ;

namespace postline {
namespace {

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

bool ValidName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
  });
}

class Resolver {
 public:
  explicit Resolver(const std::map<std::string, std::string>& vars) : vars_(vars) {}

  std::optional<std::string> Get(const std::string& name) const {
    auto it = vars_.find(name);
    if (it == vars_.end()) return std::nullopt;
    return it->second;
  }

  void String(const std::string& name, std::string& out) {
    if (auto v = Get(name)) out = *v;
  }

  void Int(const std::string& name, int& out, int min, int max) {
    auto v = Get(name);
    if (!v || v->empty()) return;
    int value = 0;
    auto [ptr, ec] = std::from_chars(v->data(), v->data() + v->size(), value);
    if (ec != std::errc() || ptr != v->data() + v->size() || value < min || value > max) {
      Problem(name, fmt::format("must be an integer {}–{}, got \"{}\"", min, max, *v));
      return;
    }
    out = value;
  }

  template <typename E>
  void Enum(const std::string& name, E& out,
            std::initializer_list<std::pair<std::string_view, E>> choices) {
    auto v = Get(name);
    if (!v || v->empty()) return;
    std::string lower = *v;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return std::tolower(c); });
    std::string allowed;
    for (const auto& [text, value] : choices) {
      if (lower == text) {
        out = value;
        return;
      }
      allowed += allowed.empty() ? std::string(text) : fmt::format(" | {}", text);
    }
    Problem(name, fmt::format("must be one of {}, got \"{}\"", allowed, *v));
  }

  void Problem(std::string name, std::string message) {
    problems_.push_back({std::move(name), std::move(message)});
  }

  std::vector<ConfigProblem> TakeProblems() { return std::move(problems_); }

 private:
  const std::map<std::string, std::string>& vars_;
  std::vector<ConfigProblem> problems_;
};

bool LooksLikeHttpUrl(std::string_view url) {
  return (url.starts_with("http://") && url.size() > 7) ||
         (url.starts_with("https://") && url.size() > 8);
}

}  // namespace

std::string Settings::QueueDatabasePath() const { return data_dir + "/queue.db"; }
std::string Settings::StateDatabasePath() const { return data_dir + "/state.db"; }
std::string Settings::OutboxDir() const {
  return outbox_dir.empty() ? data_dir + "/outbox" : outbox_dir;
}

std::string_view QueueProviderName(QueueProvider p) {
  switch (p) {
    case QueueProvider::kSqlite:
      return "sqlite";
    case QueueProvider::kSqs:
      return "sqs";
    case QueueProvider::kMemory:
      return "memory";
  }
  return "sqlite";
}

std::string_view EmailProviderName(EmailProvider p) {
  switch (p) {
    case EmailProvider::kSmtp:
      return "smtp";
    case EmailProvider::kSes:
      return "ses";
    case EmailProvider::kFile:
      return "file";
  }
  return "file";
}

Result<std::map<std::string, std::string>> ParseDotEnv(std::string_view text) {
  std::map<std::string, std::string> out;
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view raw = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
    std::string line = Trim(raw);
    if (line.empty() || line[0] == '#') {
      if (end == text.size()) break;
      continue;
    }
    if (line.starts_with("export ")) line = Trim(std::string_view(line).substr(7));
    size_t eq = line.find('=');
    if (eq == std::string::npos) {
      return InvalidInput("invalid_env_file",
                          fmt::format("line {}: expected NAME=VALUE, got \"{}\"", line_no, line),
                          fmt::format(".env:{}", line_no));
    }
    std::string name = Trim(std::string_view(line).substr(0, eq));
    if (!ValidName(name)) {
      return InvalidInput("invalid_env_file",
                          fmt::format("line {}: \"{}\" is not a variable name (letters, digits, "
                                      "'_', not starting with a digit)",
                                      line_no, name),
                          fmt::format(".env:{}", line_no));
    }
    std::string rest = Trim(std::string_view(line).substr(eq + 1));
    std::string value;
    if (!rest.empty() && (rest[0] == '"' || rest[0] == '\'')) {
      const char quote = rest[0];
      // A quoted value may span lines (double quotes honour escapes).
      std::string body = rest.substr(1);
      size_t close = std::string::npos;
      while (true) {
        for (size_t i = 0; i < body.size(); ++i) {
          if (quote == '"' && body[i] == '\\' && i + 1 < body.size()) {
            ++i;
            continue;
          }
          if (body[i] == quote) {
            close = i;
            break;
          }
        }
        if (close != std::string::npos || pos > text.size()) break;
        size_t next_end = text.find('\n', pos);
        if (next_end == std::string_view::npos) next_end = text.size();
        body += "\n";
        body += std::string(text.substr(pos, next_end - pos));
        pos = next_end + 1;
        ++line_no;
      }
      if (close == std::string::npos) {
        return InvalidInput("invalid_env_file",
                            fmt::format("line {}: unterminated {} quote for {}", line_no,
                                        quote == '"' ? "double" : "single", name),
                            fmt::format(".env:{}", line_no));
      }
      std::string inner = body.substr(0, close);
      if (quote == '"') {
        for (size_t i = 0; i < inner.size(); ++i) {
          if (inner[i] == '\\' && i + 1 < inner.size()) {
            char c = inner[++i];
            value += c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
          } else {
            value += inner[i];
          }
        }
      } else {
        value = inner;
      }
    } else {
      // Unquoted: a '#' preceded by whitespace starts a comment.
      size_t hash = std::string::npos;
      for (size_t i = 1; i < rest.size(); ++i) {
        if (rest[i] == '#' && std::isspace(static_cast<unsigned char>(rest[i - 1]))) {
          hash = i;
          break;
        }
      }
      value = Trim(std::string_view(rest).substr(0, hash));
    }
    out[name] = value;
    if (end == text.size()) break;
  }
  return out;
}

Result<std::map<std::string, std::string>> ReadDotEnvFile(const std::string& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!required) return std::map<std::string, std::string>{};
    return MakeError(ErrorKind::kNotFound, "env_file_not_found",
                     fmt::format("cannot read env file \"{}\"", path), "--env-file");
  }
  std::stringstream ss;
  ss << in.rdbuf();
  auto parsed = ParseDotEnv(ss.str());
  if (!parsed) {
    Error e = parsed.error();
    e.message = fmt::format("{}: {}", path, e.message);
    return std::unexpected(e);
  }
  return parsed;
}

std::map<std::string, std::string> EnvironmentVariables() {
  std::map<std::string, std::string> out;
  static constexpr std::string_view kPrefixes[] = {"POSTLINE_", "AWS_", "SQS_", "SMTP_"};
  static constexpr std::string_view kNames[] = {"QUEUE_PROVIDER", "EMAIL_PROVIDER",
                                                "FRONTEND_URL"};
  for (char** e = environ; e && *e; ++e) {
    std::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view name = entry.substr(0, eq);
    bool wanted = std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
    for (auto prefix : kPrefixes) wanted = wanted || name.starts_with(prefix);
    if (wanted) out[std::string(name)] = std::string(entry.substr(eq + 1));
  }
  return out;
}

LoadedSettings ResolveSettings(const std::map<std::string, std::string>& variables) {
  Resolver r(variables);
  Settings s;
  r.Enum("QUEUE_PROVIDER", s.queue_provider,
         {{"sqlite", QueueProvider::kSqlite},
          {"sqs", QueueProvider::kSqs},
          {"memory", QueueProvider::kMemory}});
  r.Enum("EMAIL_PROVIDER", s.email_provider,
         {{"smtp", EmailProvider::kSmtp}, {"ses", EmailProvider::kSes}, {"file", EmailProvider::kFile}});

  r.String("AWS_REGION", s.aws_region);
  r.String("AWS_ACCESS_KEY_ID", s.aws_access_key_id);
  r.String("AWS_SECRET_ACCESS_KEY", s.aws_secret_access_key);
  r.String("AWS_SESSION_TOKEN", s.aws_session_token);
  r.String("AWS_ENDPOINT_URL", s.aws_endpoint);
  r.String("AWS_ENDPOINT", s.aws_endpoint);  // the setup guide's name wins
  r.String("SQS_REGULAR_QUEUE_URL", s.sqs_regular_queue_url);
  r.String("SQS_PRIORITY_QUEUE_URL", s.sqs_priority_queue_url);
  if (!s.aws_endpoint.empty() && !LooksLikeHttpUrl(s.aws_endpoint)) {
    r.Problem("AWS_ENDPOINT", fmt::format("must be an http:// or https:// URL, got \"{}\"",
                                          s.aws_endpoint));
  }
  for (auto [name, url] : {std::pair{"SQS_REGULAR_QUEUE_URL", &s.sqs_regular_queue_url},
                           std::pair{"SQS_PRIORITY_QUEUE_URL", &s.sqs_priority_queue_url}}) {
    if (!url->empty() && !LooksLikeHttpUrl(*url)) {
      r.Problem(name, fmt::format("must be a queue URL like https://sqs.{{region}}.amazonaws.com/"
                                  "{{account-id}}/{{queue-name}}, got \"{}\"",
                                  *url));
    } else if (url->empty() && s.queue_provider == QueueProvider::kSqs) {
      r.Problem(name, "is required when QUEUE_PROVIDER=sqs");
    }
  }
  if (s.queue_provider == QueueProvider::kSqs && s.aws_region.empty()) {
    r.Problem("AWS_REGION", "is required when QUEUE_PROVIDER=sqs (e.g. us-east-1)");
  }
  if (s.email_provider == EmailProvider::kSes && s.aws_region.empty()) {
    r.Problem("AWS_REGION", "is required when EMAIL_PROVIDER=ses (e.g. us-east-1)");
  }

  r.String("SMTP_HOST", s.smtp.host);
  r.Int("SMTP_PORT", s.smtp.port, 1, 65535);
  r.String("SMTP_USER", s.smtp.user);
  r.String("SMTP_PASSWORD", s.smtp.password);
  r.Enum("POSTLINE_SMTP_TLS", s.smtp.tls,
         {{"auto", SmtpTls::kAuto},
          {"starttls", SmtpTls::kStartTls},
          {"implicit", SmtpTls::kImplicit},
          {"none", SmtpTls::kNone}});
  r.String("POSTLINE_SMTP_CA_FILE", s.smtp.ca_file);
  if (s.email_provider == EmailProvider::kSmtp) {
    if (s.smtp.host.empty()) {
      r.Problem("SMTP_HOST", "is required when EMAIL_PROVIDER=smtp (e.g. smtp.gmail.com)");
    } else if (auto ok = ValidateSmtpSettings(s.smtp); !ok) {
      r.Problem(ok.error().field.empty() ? "SMTP_HOST" : ok.error().field, ok.error().message);
    }
  }

  r.String("FRONTEND_URL", s.frontend_url);
  if (!LooksLikeHttpUrl(s.frontend_url)) {
    r.Problem("FRONTEND_URL", fmt::format("must be an http:// or https:// URL, got \"{}\"",
                                          s.frontend_url));
  }
  while (s.frontend_url.size() > 8 && s.frontend_url.back() == '/') s.frontend_url.pop_back();

  r.String("POSTLINE_DATA_DIR", s.data_dir);
  if (s.data_dir.empty()) r.Problem("POSTLINE_DATA_DIR", "must be a directory path, got \"\"");
  r.String("POSTLINE_OUTBOX_DIR", s.outbox_dir);

  r.String("POSTLINE_FROM", s.from);
  if (s.from.empty()) {
    // Default sender: the SMTP login when it is an address (the guide's Gmail
    // set-up), else a local name.
    s.from = s.smtp.user.find('@') != std::string::npos ? s.smtp.user
                                                         : "postline <postline@localhost>";
  } else if (auto a = ParseAddress(s.from, "POSTLINE_FROM"); !a) {
    r.Problem("POSTLINE_FROM",
              fmt::format("must be an address like \"Billing <billing@example.com>\": {}",
                          a.error().message));
  }

  r.Int("POSTLINE_CONCURRENCY", s.concurrency, 1, 256);
  r.Int("POSTLINE_VISIBILITY_TIMEOUT", s.visibility_timeout_seconds, 1, 43200);
  r.Int("POSTLINE_RETRY_MIN", s.retry_min_seconds, 1, 43200);
  r.Int("POSTLINE_RETRY_MAX", s.retry_max_seconds, 1, 43200);
  if (s.retry_max_seconds < s.retry_min_seconds) {
    r.Problem("POSTLINE_RETRY_MAX",
              fmt::format("must be at least POSTLINE_RETRY_MIN ({} s), got {} s",
                          s.retry_min_seconds, s.retry_max_seconds));
  }
  r.Int("POSTLINE_MAX_AGE", s.max_age_seconds, 60, 1209600);
  r.Int("POSTLINE_MAX_RECEIVE_COUNT", s.max_receive_count, 1, 1000);
  r.Int("POSTLINE_MAX_IN_DOUBT", s.max_in_doubt, 1, 256);
  r.Enum("POSTLINE_SQLITE_SYNCHRONOUS", s.sqlite_synchronous,
         {{"full", std::string("full")}, {"normal", std::string("normal")}});
  r.Enum("POSTLINE_LOG_LEVEL", s.log_level,
         {{"debug", std::string("debug")},
          {"info", std::string("info")},
          {"warn", std::string("warn")},
          {"error", std::string("error")}});
  // Delivery hardening: rate limit, priority reserve, sent-log retention.
  if (auto v = r.Get("POSTLINE_RATE_LIMIT"); v && !v->empty() && *v != "unlimited") {
    const std::string& text = *v;
    const size_t slash = text.find('/');
    double n = -1;
    const char* end = text.data() + (slash == std::string::npos ? text.size() : slash);
    auto [ptr, ec] = std::from_chars(text.data(), end, n);
    std::string unit = slash == std::string::npos ? std::string() : text.substr(slash + 1);
    const double per = unit == "s" || unit == "sec" || unit == "second"   ? 1
                       : unit == "min" || unit == "m" || unit == "minute" ? 60
                       : unit == "h" || unit == "hour"                    ? 3600
                                                                          : 0;
    if (ec != std::errc() || ptr != end || !(n > 0) || per == 0 || n / per < 0.001) {
      r.Problem("POSTLINE_RATE_LIMIT",
                fmt::format("must be a positive rate N/s, N/min or N/h (e.g. 14/s, 100/min; at "
                            "least 0.001/s), or \"unlimited\", got \"{}\"",
                            text));
    } else {
      s.rate_limit_per_second = n / per;
    }
  }
  r.Int("POSTLINE_PRIORITY_RESERVE", s.priority_reserve_percent, 0, 90);
  r.Int("POSTLINE_SENT_LOG_RETENTION", s.sent_log_retention_seconds, 3600, 31536000);

  r.String("POSTLINE_LOCALE", s.locale);
  r.Enum("POSTLINE_PAGE_SIZE", s.page_size,
         {{"a4", std::string("A4")}, {"letter", std::string("Letter")}});
  r.String("POSTLINE_PAY_PATH", s.pay_path);
  if (!s.pay_path.starts_with("/")) {
    r.Problem("POSTLINE_PAY_PATH",
              fmt::format("must be a path starting with '/', e.g. /invoices/{{number}}/pay, got "
                          "\"{}\"",
                          s.pay_path));
  }
  r.String("POSTLINE_TEMPLATE_DIR", s.template_dir);

  // HTTP API.
  r.String("POSTLINE_HTTP_ADDR", s.http_addr);
  {
    const size_t colon = s.http_addr.rfind(':');
    int port = -1;
    if (colon != std::string::npos && colon > 0) {
      std::string_view digits = std::string_view(s.http_addr).substr(colon + 1);
      auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
      if (ec != std::errc() || ptr != digits.data() + digits.size() || digits.empty()) port = -1;
    }
    if (port < 0 || port > 65535) {
      r.Problem("POSTLINE_HTTP_ADDR",
                fmt::format("must be HOST:PORT with a port 0–65535, e.g. 127.0.0.1:8080, got \"{}\"",
                            s.http_addr));
    }
  }
  r.String("POSTLINE_API_TOKEN", s.api_token);
  r.Int("POSTLINE_DEPTH_ALARM", s.depth_alarm, 1, 1000000000);
  r.Int("POSTLINE_HTTP_MAX_BODY", s.http_max_body_bytes, 1024, 104857600);

  // AWS endpoints per service, profile, blob bucket.
  r.String("AWS_PROFILE", s.aws_profile);
  for (auto [name, field] : {std::pair{"AWS_ENDPOINT_URL_SQS", &s.aws_endpoint_sqs},
                             std::pair{"AWS_ENDPOINT_URL_SES", &s.aws_endpoint_ses},
                             std::pair{"AWS_ENDPOINT_URL_S3", &s.aws_endpoint_s3}}) {
    r.String(name, *field);
    if (!field->empty() && !LooksLikeHttpUrl(*field)) {
      r.Problem(name, fmt::format("must be an http:// or https:// URL, got \"{}\"", *field));
    }
  }
  r.String("POSTLINE_BLOB_BUCKET", s.blob_bucket);
  r.String("POSTLINE_BLOB_DIR", s.blob_dir);

  r.String("POSTLINE_DATABASE_URL", s.database_url);
  if (!s.database_url.empty()) {
    if (auto ok = pg::ValidateConnectionString(s.database_url); !ok) {
      r.Problem("POSTLINE_DATABASE_URL", ok.error().message);
    }
  }

  return {std::move(s), r.TakeProblems()};
}

std::vector<std::string> DescribeSettings(const Settings& s) {
  auto secret = [](const std::string& v) { return v.empty() ? std::string() : "********"; };
  auto tls = [](SmtpTls t) {
    switch (t) {
      case SmtpTls::kAuto:
        return "auto";
      case SmtpTls::kStartTls:
        return "starttls";
      case SmtpTls::kImplicit:
        return "implicit";
      case SmtpTls::kNone:
        return "none";
    }
    return "auto";
  };
  std::vector<std::string> out = {
      fmt::format("QUEUE_PROVIDER={}", QueueProviderName(s.queue_provider)),
      fmt::format("EMAIL_PROVIDER={}", EmailProviderName(s.email_provider)),
      fmt::format("AWS_REGION={}", s.aws_region),
      fmt::format("AWS_ACCESS_KEY_ID={}", s.aws_access_key_id),
      fmt::format("AWS_SECRET_ACCESS_KEY={}", secret(s.aws_secret_access_key)),
      fmt::format("AWS_SESSION_TOKEN={}", secret(s.aws_session_token)),
      fmt::format("AWS_ENDPOINT={}", s.aws_endpoint),
      fmt::format("SQS_REGULAR_QUEUE_URL={}", s.sqs_regular_queue_url),
      fmt::format("SQS_PRIORITY_QUEUE_URL={}", s.sqs_priority_queue_url),
      fmt::format("SMTP_HOST={}", s.smtp.host),
      fmt::format("SMTP_PORT={}", s.smtp.port),
      fmt::format("SMTP_USER={}", s.smtp.user),
      fmt::format("SMTP_PASSWORD={}", secret(s.smtp.password)),
      fmt::format("POSTLINE_SMTP_TLS={}", tls(s.smtp.tls)),
      fmt::format("POSTLINE_SMTP_CA_FILE={}", s.smtp.ca_file),
      fmt::format("FRONTEND_URL={}", s.frontend_url),
      fmt::format("POSTLINE_DATA_DIR={}", s.data_dir),
      fmt::format("POSTLINE_OUTBOX_DIR={}", s.OutboxDir()),
      fmt::format("POSTLINE_FROM={}", s.from),
      fmt::format("POSTLINE_CONCURRENCY={}", s.concurrency),
      fmt::format("POSTLINE_VISIBILITY_TIMEOUT={}", s.visibility_timeout_seconds),
      fmt::format("POSTLINE_RETRY_MIN={}", s.retry_min_seconds),
      fmt::format("POSTLINE_RETRY_MAX={}", s.retry_max_seconds),
      fmt::format("POSTLINE_MAX_AGE={}", s.max_age_seconds),
      fmt::format("POSTLINE_MAX_RECEIVE_COUNT={}", s.max_receive_count),
      fmt::format("POSTLINE_MAX_IN_DOUBT={}", s.max_in_doubt),
      fmt::format("POSTLINE_LOG_LEVEL={}", s.log_level),
      fmt::format("POSTLINE_SQLITE_SYNCHRONOUS={}", s.sqlite_synchronous),
      s.rate_limit_per_second > 0
          ? fmt::format("POSTLINE_RATE_LIMIT={:g}/s", s.rate_limit_per_second)
          : std::string("POSTLINE_RATE_LIMIT=unlimited"),
      fmt::format("POSTLINE_PRIORITY_RESERVE={}", s.priority_reserve_percent),
      fmt::format("POSTLINE_SENT_LOG_RETENTION={}", s.sent_log_retention_seconds),
      fmt::format("POSTLINE_LOCALE={}", s.locale),
      fmt::format("POSTLINE_PAGE_SIZE={}", s.page_size),
      fmt::format("POSTLINE_PAY_PATH={}", s.pay_path),
      fmt::format("POSTLINE_TEMPLATE_DIR={}", s.template_dir),
      fmt::format("POSTLINE_HTTP_ADDR={}", s.http_addr),
      fmt::format("POSTLINE_API_TOKEN={}", secret(s.api_token)),
      fmt::format("POSTLINE_DEPTH_ALARM={}", s.depth_alarm),
      fmt::format("POSTLINE_HTTP_MAX_BODY={}", s.http_max_body_bytes),
  };
  out.push_back(
      fmt::format("POSTLINE_DATABASE_URL={}", pg::RedactConnectionString(s.database_url)));
  return out;
}

}  // namespace postline
