// postline/config.h — environment + `.env` → typed, validated settings.
//
// Only the program's entry point reads configuration; every other module
// takes the settings struct it needs through its constructor.
//
// Sources, later ones winning: built-in defaults (the embedded mode:
// QUEUE_PROVIDER=sqlite, EMAIL_PROVIDER=file, data under ./var), the `.env`
// file, the process environment. The `.env` of the setup guide loads
// unchanged. Names from the setup guide are kept verbatim; postline's own
// start with POSTLINE_.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "postline/error.h"
#include "postline/transport.h"

namespace postline {

enum class QueueProvider { kSqlite, kSqs, kMemory };
enum class EmailProvider { kSmtp, kSes, kFile };

struct Settings {
  QueueProvider queue_provider = QueueProvider::kSqlite;  // QUEUE_PROVIDER
  EmailProvider email_provider = EmailProvider::kFile;    // EMAIL_PROVIDER

  // AWS (setup guide names; used by QUEUE_PROVIDER=sqs / EMAIL_PROVIDER=ses).
  std::string aws_region;             // AWS_REGION
  std::string aws_access_key_id;      // AWS_ACCESS_KEY_ID
  std::string aws_secret_access_key;  // AWS_SECRET_ACCESS_KEY (secret)
  std::string aws_session_token;      // AWS_SESSION_TOKEN (secret)
  std::string aws_endpoint;           // AWS_ENDPOINT, or AWS_ENDPOINT_URL
  std::string sqs_regular_queue_url;  // SQS_REGULAR_QUEUE_URL
  std::string sqs_priority_queue_url; // SQS_PRIORITY_QUEUE_URL

  SmtpSettings smtp;  // SMTP_HOST, SMTP_PORT, SMTP_USER, SMTP_PASSWORD (secret),
                      // POSTLINE_SMTP_TLS (auto|starttls|implicit|none),
                      // POSTLINE_SMTP_CA_FILE

  std::string frontend_url = "http://localhost:3000";  // FRONTEND_URL

  std::string data_dir = "./var";     // POSTLINE_DATA_DIR: queue.db, state.db, outbox/
  // POSTLINE_DATABASE_URL (secret: may hold a password): the PostgreSQL
  // database of the shared state (sent log, status, idempotency keys) — a
  // libpq URI postgres[ql]://user:password@host:port/dbname?sslmode=… or a
  // keyword/value string "host=… dbname=…". Empty: <data_dir>/state.db.
  std::string database_url;
  std::string outbox_dir;             // POSTLINE_OUTBOX_DIR (default <data_dir>/outbox)
  std::string from;                   // POSTLINE_FROM: default sender "Name <addr>"
  int concurrency = 4;                // POSTLINE_CONCURRENCY: 1–256 senders
  int visibility_timeout_seconds = 30;  // POSTLINE_VISIBILITY_TIMEOUT: 1–43200
  int retry_min_seconds = 15;         // POSTLINE_RETRY_MIN: 1–43200
  int retry_max_seconds = 3600;       // POSTLINE_RETRY_MAX: RETRY_MIN–43200
  int max_age_seconds = 345600;       // POSTLINE_MAX_AGE: after this a failing mail is dead ("expired")
  // POSTLINE_MAX_RECEIVE_COUNT: RedrivePolicy, 1–1000. High by default so that
  // POSTLINE_MAX_AGE, not the receive count, ends the retries of a transient
  // failure (backoff up to RETRY_MAX uses ~10 receives in the first 2 hours);
  // the redrive is the safety net for messages that crash a worker.
  int max_receive_count = 1000;
  // POSTLINE_MAX_IN_DOUBT: 1–256, sends per worker process that may be past
  // their point of no return and not yet in the sent log: the most e-mails
  // one crash of the worker can send twice (docs/delivery.md).
  int max_in_doubt = 1;
  std::string log_level = "info";     // POSTLINE_LOG_LEVEL: debug|info|warn|error
  // POSTLINE_SQLITE_SYNCHRONOUS: full|normal, when an enqueue on the sqlite
  // backend reaches the disk (SqliteSynchronous in queue.h).
  std::string sqlite_synchronous = "full";
  // Delivery hardening (docs/delivery.md).
  double rate_limit_per_second = 0;   // POSTLINE_RATE_LIMIT: "N/s", "N/min", "N/h" (N > 0) or
                                      // "unlimited" (default); per worker process and transport
  int priority_reserve_percent = 20;  // POSTLINE_PRIORITY_RESERVE: 0–90, rate share regular mail may not use
  int sent_log_retention_seconds = 2592000;  // POSTLINE_SENT_LOG_RETENTION: 3600–31536000 (30 days)

  // Invoices.
  std::string locale;                          // POSTLINE_LOCALE (empty: from seller country)
  std::string page_size = "A4";                // POSTLINE_PAGE_SIZE: A4|Letter
  std::string pay_path = "/invoices/{number}/pay";  // POSTLINE_PAY_PATH
  std::string template_dir;                    // POSTLINE_TEMPLATE_DIR (override folder)

  // HTTP API (`postline serve`, `postline api`; docs/api.md).
  std::string http_addr = "127.0.0.1:8080";  // POSTLINE_HTTP_ADDR: HOST:PORT (port 0: any free port)
  std::string api_token;                     // POSTLINE_API_TOKEN (secret): bearer token for /v1
  int depth_alarm = 1000;                    // POSTLINE_DEPTH_ALARM: warn while a queue holds more, 1–1000000000
  int http_max_body_bytes = 10 * 1024 * 1024;  // POSTLINE_HTTP_MAX_BODY: request body limit, 1024–104857600

  // AWS beyond the guide's names (postline/aws.h; the credential sources of
  // the chain — shared files, container, IMDS — are read by the aws module
  // from the environment).
  std::string aws_profile;       // AWS_PROFILE: profile in ~/.aws/credentials and ~/.aws/config
  std::string aws_endpoint_sqs;  // AWS_ENDPOINT_URL_SQS: SQS endpoint (wins over AWS_ENDPOINT)
  std::string aws_endpoint_ses;  // AWS_ENDPOINT_URL_SES: SES endpoint (wins over AWS_ENDPOINT)
  std::string aws_endpoint_s3;   // AWS_ENDPOINT_URL_S3: S3 endpoint for the blob bucket
  std::string blob_bucket;       // POSTLINE_BLOB_BUCKET: S3 bucket for bodies of large e-mails (sqs)
  std::string blob_dir;          // POSTLINE_BLOB_DIR: folder for bodies of large e-mails (embedded)

  // Derived paths.
  std::string QueueDatabasePath() const;  // <data_dir>/queue.db
  std::string StateDatabasePath() const;  // <data_dir>/state.db
  std::string OutboxDir() const;          // outbox_dir or <data_dir>/outbox
};

// One problem with one variable.
struct ConfigProblem {
  std::string variable;  // e.g. "SMTP_PORT"
  std::string message;   // e.g. "must be an integer 1–65535, got \"abc\""
};

// Parses `.env` text: KEY=VALUE lines, `#` comments, blank lines, optional
// `export ` prefix, single- or double-quoted values (double quotes honour
// \n \" \\), unquoted values trimmed, with ` #` starting a comment.
// Errors: kInvalidInput "invalid_env_file" naming the line number.
Result<std::map<std::string, std::string>> ParseDotEnv(std::string_view text);

// Reads and parses a `.env` file. A missing file is not an error when
// `required` is false (returns an empty map). Errors: kNotFound when required
// and absent; as ParseDotEnv.
Result<std::map<std::string, std::string>> ReadDotEnvFile(const std::string& path, bool required);

// Resolves settings from variables (the .env map overlaid by the process
// environment — the caller merges). Every invalid variable is reported in
// `problems` (all of them, not only the first); the returned settings are
// then only partly valid.
struct LoadedSettings {
  Settings settings;
  std::vector<ConfigProblem> problems;
};
LoadedSettings ResolveSettings(const std::map<std::string, std::string>& variables);

// The process environment as a map (only variables postline reads:
// documented names, POSTLINE_*, AWS_*, SQS_*, SMTP_*).
std::map<std::string, std::string> EnvironmentVariables();

// The resolved settings as "NAME=value" lines, secrets (passwords, secret
// keys, session tokens) shown as "********" when set; POSTLINE_DATABASE_URL
// with only its password hidden (pg::RedactConnectionString).
std::vector<std::string> DescribeSettings(const Settings& settings);

std::string_view QueueProviderName(QueueProvider p);
std::string_view EmailProviderName(EmailProvider p);

}  // namespace postline
