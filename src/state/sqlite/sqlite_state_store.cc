// The state store on SQLite (<data dir>/state.db): the sent log (table
// `sent`), e-mail status (`email_status`) and idempotency keys
// (`idempotency_keys`), on one connection.
#include <fmt/format.h>
#include <sqlite3.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "platform/sqlite_statement.h"
#include "postline/json.h"
#include "postline/state.h"

namespace postline {
namespace {

using std::chrono::milliseconds;
using std::chrono::system_clock;

constexpr int kBusyTimeoutMs = 10000;
constexpr std::size_t kMaxIdempotencyKeyLength = 128;

Error SqliteError(sqlite3* db, int rc, std::string_view what) {
  return sqlite::ServiceUnavailable(db, rc, "state store", what);
}

using sqlite::Statement;

system_clock::time_point FromMillis(std::int64_t ms) {
  return system_clock::time_point(milliseconds(ms));
}

constexpr const char* kSelectColumns =
    "SELECT envelope_id, state, queue, attempts, reply_code, last_error, reply, "
    "provider_message_id, recipients, subject, idempotency_key, created_ms, updated_ms, sent_ms "
    "FROM email_status ";

EmailStatus ReadRow(Statement& st) {
  EmailStatus s;
  s.id = st.ColumnText(0);
  s.state = st.ColumnText(1);
  s.queue = st.ColumnText(2);
  s.attempts = static_cast<int>(st.ColumnInt(3));
  s.reply_code = static_cast<int>(st.ColumnInt(4));
  s.last_error = st.ColumnText(5);
  s.reply = st.ColumnText(6);
  s.provider_message_id = st.ColumnText(7);
  auto recipients = ParseJson(st.ColumnText(8), {.document = "email_status.recipients"});
  if (recipients && recipients->is_array()) {
    for (const auto& r : *recipients) {
      if (r.is_string()) s.recipients.push_back(r.get<std::string>());
    }
  }
  s.subject = st.ColumnText(9);
  s.idempotency_key = st.ColumnText(10);
  s.created_at = FromMillis(st.ColumnInt(11));
  s.updated_at = FromMillis(st.ColumnInt(12));
  if (!st.ColumnIsNull(13)) s.sent_at = FromMillis(st.ColumnInt(13));
  return s;
}

class SqliteStateStore final : public StateStore {
 public:
  SqliteStateStore(sqlite3* db, std::shared_ptr<Clock> clock, StatusErrorHook on_error)
      : db_(db), clock_(std::move(clock)), on_error_(std::move(on_error)) {}
  ~SqliteStateStore() override { sqlite3_close_v2(db_); }

  Result<void> RecordSent(const SentRecord& r) override {
    std::lock_guard lock(mu_);
    return InsertSent(r);
  }

  Result<void> RecordSettled(std::span<const SettledMessage> messages) override {
    std::lock_guard lock(mu_);
    char* err = nullptr;
    if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, &err) != SQLITE_OK) {
      sqlite3_free(err);
      return std::unexpected(SqliteError(db_, 0, "begin settled batch"));
    }
    for (const auto& m : messages) {
      Result<void> done;
      if (m.sent) done = InsertSent(*m.sent);
      if (done && m.status && !m.status->envelope_id.empty()) done = UpsertStatus(*m.status);
      if (!done) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        return done;
      }
    }
    if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, &err) != SQLITE_OK) {
      sqlite3_free(err);
      Error e = SqliteError(db_, 0, "commit settled batch");
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
      return std::unexpected(e);
    }
    return {};
  }

  StateStoreCheck Check() override {
    std::lock_guard lock(mu_);
    StateStoreCheck out;
    const char* file = sqlite3_db_filename(db_, "main");
    out.store = fmt::format("sqlite {}", file != nullptr ? file : "");
    Statement st(db_,
                 "SELECT count(*) FROM sqlite_schema WHERE name IN "
                 "('sent', 'email_status', 'idempotency_keys')");
    const int rc = st.ok() ? sqlite3_step(st.get()) : SQLITE_ERROR;
    if (rc != SQLITE_ROW) {
      out.error = SqliteError(db_, rc, "health check");
    } else if (st.ColumnInt(0) != 3) {
      out.error =
          Error{ErrorKind::kTransient, "ServiceUnavailable",
                fmt::format("state store: {} lacks its tables", out.store), "POSTLINE_DATA_DIR"};
    }
    out.reachable = !out.error;
    return out;
  }

  Result<std::optional<SentRecord>> FindSent(std::string_view envelope_id) override {
    std::lock_guard lock(mu_);
    Statement st(statements_,
                 "SELECT envelope_id, idempotency_key, message_id, queue, transport, "
                 "provider_message_id, reply, rejected, attempts, sent_at_ms FROM sent "
                 "WHERE envelope_id = ?");
    if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare select"));
    st.Text(1, envelope_id);
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) return std::optional<SentRecord>();
    if (rc != SQLITE_ROW) return std::unexpected(SqliteError(db_, rc, "select"));
    SentRecord r;
    r.envelope_id = st.ColumnText(0);
    r.idempotency_key = st.ColumnText(1);
    r.message_id = st.ColumnText(2);
    r.queue = st.ColumnText(3);
    r.transport = st.ColumnText(4);
    r.provider_message_id = st.ColumnText(5);
    r.reply = st.ColumnText(6);
    auto rejected = ParseJson(st.ColumnText(7), {.document = "sent.rejected"});
    if (rejected && rejected->is_array()) {
      for (const auto& v : *rejected) {
        if (v.is_string()) r.rejected_recipients.push_back(v.get<std::string>());
      }
    }
    r.attempts = sqlite3_column_int(st.get(), 8);
    r.sent_at = std::chrono::system_clock::time_point(
        std::chrono::milliseconds(sqlite3_column_int64(st.get(), 9)));
    return std::optional<SentRecord>(std::move(r));
  }

  Result<std::int64_t> CountSentSince(std::chrono::system_clock::time_point since,
                                      std::string_view queue) override {
    std::lock_guard lock(mu_);
    Statement st(db_, queue.empty()
                          ? "SELECT COUNT(*) FROM sent WHERE sent_at_ms >= ?"
                          : "SELECT COUNT(*) FROM sent WHERE sent_at_ms >= ? AND queue = ?");
    if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare count"));
    st.Int(1, ToUnixMillis(since));
    if (!queue.empty()) st.Text(2, queue);
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_ROW) return std::unexpected(SqliteError(db_, rc, "count"));
    return sqlite3_column_int64(st.get(), 0);
  }

  void OnStatus(const StatusEvent& event) override {
    if (event.envelope_id.empty()) return;
    auto recorded = Record(event);
    if (!recorded && on_error_) {
      try {
        on_error_(event, recorded.error());
      } catch (...) {
        // The hook must not throw; status is advisory.
      }
    }
  }

  Result<std::optional<EmailStatus>> GetStatus(std::string_view envelope_id) override {
    std::lock_guard lock(mu_);
    const std::string sql = std::string(kSelectColumns) + "WHERE envelope_id = ?";
    Statement st(db_, sql.c_str());
    if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare select"));
    st.Text(1, envelope_id);
    int rc = sqlite3_step(st.get());
    if (rc == SQLITE_DONE) return std::optional<EmailStatus>();
    if (rc != SQLITE_ROW) return std::unexpected(SqliteError(db_, rc, "select"));
    return std::optional<EmailStatus>(ReadRow(st));
  }

  Result<std::vector<EmailStatus>> ListStatus(std::string_view state, int limit) override {
    if (limit < 1 || limit > 1000) {
      return InvalidInput("invalid_limit", fmt::format("limit must be 1–1000, got {}", limit),
                          "limit");
    }
    std::lock_guard lock(mu_);
    const std::string sql =
        std::string(kSelectColumns) + "WHERE state = ? ORDER BY updated_ms DESC LIMIT ?";
    Statement st(db_, sql.c_str());
    if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare list"));
    st.Text(1, state);
    st.Int(2, limit);
    std::vector<EmailStatus> out;
    int rc = 0;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) out.push_back(ReadRow(st));
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, rc, "list"));
    return out;
  }

  Result<IdempotencyClaim> ClaimIdempotencyKey(std::string_view key,
                                               std::string_view envelope_id) override {
    if (key.empty() || key.size() > kMaxIdempotencyKeyLength) {
      return InvalidInput("invalid_idempotency_key",
                          fmt::format("an idempotency key must be 1–{} characters, got {}",
                                      kMaxIdempotencyKeyLength, key.size()),
                          "idempotency_key");
    }
    std::lock_guard lock(mu_);
    {
      Statement st(db_,
                   "INSERT OR IGNORE INTO idempotency_keys (key, envelope_id, queue, created_ms) "
                   "VALUES (?, ?, '', ?)");
      if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare claim"));
      st.Text(1, key);
      st.Text(2, envelope_id);
      st.Int(3, ToUnixMillis(clock_->Now()));
      int rc = sqlite3_step(st.get());
      if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, rc, "claim"));
      if (sqlite3_changes(db_) == 1) return IdempotencyClaim{std::string(envelope_id), "", false};
    }
    Statement st(db_, "SELECT envelope_id, queue FROM idempotency_keys WHERE key = ?");
    if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare claim lookup"));
    st.Text(1, key);
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_ROW) return std::unexpected(SqliteError(db_, rc, "claim lookup"));
    return IdempotencyClaim{st.ColumnText(0), st.ColumnText(1), true};
  }

  Result<void> SetIdempotencyQueue(std::string_view key, std::string_view queue) override {
    std::lock_guard lock(mu_);
    Statement st(db_, "UPDATE idempotency_keys SET queue = ? WHERE key = ?");
    if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare key update"));
    st.Text(1, queue);
    st.Text(2, key);
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, rc, "key update"));
    return {};
  }

  Result<void> ReleaseIdempotencyKey(std::string_view key, std::string_view envelope_id) override {
    std::lock_guard lock(mu_);
    Statement st(db_, "DELETE FROM idempotency_keys WHERE key = ? AND envelope_id = ?");
    if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare key release"));
    st.Text(1, key);
    st.Text(2, envelope_id);
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, rc, "key release"));
    return {};
  }

  Result<PruneResult> Prune(const Retention& retention) override {
    std::lock_guard lock(mu_);
    PruneResult out;
    {
      Statement st(db_, "DELETE FROM sent WHERE sent_at_ms < ?");
      if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare sent-log prune"));
      st.Int(1, ToUnixMillis(clock_->Now() - retention.sent_log));
      int rc = sqlite3_step(st.get());
      if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, rc, "sent-log prune"));
      out.sent_records = sqlite3_changes(db_);
    }
    const std::int64_t cutoff = ToUnixMillis(clock_->Now() - retention.status);
    {
      Statement st(db_, "DELETE FROM email_status WHERE updated_ms < ?");
      if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare prune"));
      st.Int(1, cutoff);
      int rc = sqlite3_step(st.get());
      if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, rc, "prune"));
      out.status_records = sqlite3_changes(db_);
    }
    Statement st(db_, "DELETE FROM idempotency_keys WHERE created_ms < ?");
    if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare key prune"));
    st.Int(1, cutoff);
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, rc, "key prune"));
    return out;
  }

 private:
  // RecordSent's insert; REQUIRES: mu_ held.
  Result<void> InsertSent(const SentRecord& r) {
    Statement st(statements_,
                 "INSERT OR IGNORE INTO sent (envelope_id, idempotency_key, message_id, queue, "
                 "transport, provider_message_id, reply, rejected, attempts, sent_at_ms) "
                 "VALUES (?,?,?,?,?,?,?,?,?,?)");
    if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare insert"));
    st.Text(1, r.envelope_id);
    st.Text(2, r.idempotency_key);
    st.Text(3, r.message_id);
    st.Text(4, r.queue);
    st.Text(5, r.transport);
    st.Text(6, r.provider_message_id);
    st.Text(7, r.reply);
    st.Text(8, nlohmann::json(r.rejected_recipients)
                   .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    st.Int(9, r.attempts);
    st.Int(10, ToUnixMillis(r.sent_at));
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, rc, "insert"));
    return {};
  }

  Result<void> Record(const StatusEvent& ev) {
    std::lock_guard lock(mu_);
    return UpsertStatus(ev);
  }

  // The status upsert of Record; REQUIRES: mu_ held.
  Result<void> UpsertStatus(const StatusEvent& ev) {
    using State = StatusEvent::State;
    const std::int64_t now = ToUnixMillis(clock_->Now());
    std::string last_error, reply;
    if (ev.state == State::kRetrying || ev.state == State::kDead) last_error = ev.detail;
    if (ev.state == State::kSent) reply = ev.detail;
    nlohmann::json recipients = nlohmann::json::array();
    std::string subject, key;
    if (ev.email) {
      for (const auto* list : {&ev.email->to, &ev.email->cc, &ev.email->bcc}) {
        for (const auto& a : *list) recipients.push_back(a.email);
      }
      subject = ev.email->subject;
      key = ev.email->idempotency_key;
    }
    // "sent" is final; other fields only replace what they know.
    Statement st(
        statements_,
        "INSERT INTO email_status (envelope_id, state, queue, attempts, reply_code, last_error, "
        "reply, provider_message_id, recipients, subject, idempotency_key, created_ms, "
        "updated_ms, sent_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13) "
        "ON CONFLICT(envelope_id) DO UPDATE SET "
        "state = CASE WHEN email_status.state = 'sent' THEN 'sent' ELSE excluded.state END, "
        "queue = CASE WHEN email_status.state = 'sent' OR excluded.queue = '' "
        "  THEN email_status.queue ELSE excluded.queue END, "
        "attempts = max(email_status.attempts, excluded.attempts), "
        "reply_code = CASE WHEN excluded.reply_code <> 0 THEN excluded.reply_code "
        "  ELSE email_status.reply_code END, "
        "last_error = CASE WHEN excluded.last_error <> '' THEN excluded.last_error "
        "  ELSE email_status.last_error END, "
        "reply = CASE WHEN excluded.reply <> '' THEN excluded.reply ELSE email_status.reply END, "
        "provider_message_id = CASE WHEN excluded.provider_message_id <> '' "
        "  THEN excluded.provider_message_id ELSE email_status.provider_message_id END, "
        "recipients = CASE WHEN ?14 THEN excluded.recipients ELSE email_status.recipients END, "
        "subject = CASE WHEN ?14 THEN excluded.subject ELSE email_status.subject END, "
        "idempotency_key = CASE WHEN excluded.idempotency_key <> '' "
        "  THEN excluded.idempotency_key ELSE email_status.idempotency_key END, "
        "updated_ms = excluded.updated_ms, "
        "sent_ms = coalesce(email_status.sent_ms, excluded.sent_ms)");
    if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare upsert"));
    st.Text(1, ev.envelope_id);
    st.Text(2, StatusStateName(ev.state));
    st.Text(3, ev.queue);
    st.Int(4, ev.attempts);
    st.Int(5, ev.reply_code);
    st.Text(6, last_error);
    st.Text(7, reply);
    st.Text(8, ev.provider_message_id);
    st.Text(9, recipients.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    st.Text(10, subject);
    st.Text(11, key);
    st.Int(12, now);
    if (ev.state == State::kSent) {
      st.Int(13, now);
    } else {
      st.Null(13);
    }
    st.Int(14, ev.email ? 1 : 0);
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, rc, "upsert"));
    return {};
  }

  std::mutex mu_;
  sqlite3* db_;
  // RecordSent, FindSent and the status upsert, per delivered e-mail (mu_).
  sqlite::StatementCache statements_{db_};
  std::shared_ptr<Clock> clock_;
  StatusErrorHook on_error_;
};

}  // namespace

Result<std::shared_ptr<StateStore>> OpenSqliteStateStore(const std::string& path,
                                                         std::shared_ptr<Clock> clock,
                                                         StatusErrorHook on_error) {
  // WAL + synchronous=NORMAL: a committed sent-log record is in the operating
  // system's page cache before RecordSent returns, so it survives the process
  // dying at any point (kill -9, crash) and a redelivered message is
  // recognised as already sent. Only a power loss can drop the last records,
  // and that can only cause a duplicate, never a loss: the queue's delete,
  // which follows, can be rolled back by the same power loss. Not waiting
  // for fsync here keeps the window between the server's 250 and the record
  // small (docs/delivery.md, "Idempotency and the duplicate window"). Status
  // is advisory (the queue and the sent log are the truth).
  const char* schema =
      "PRAGMA journal_mode=WAL;"
      "PRAGMA synchronous=NORMAL;"
      "CREATE TABLE IF NOT EXISTS sent ("
      "  envelope_id TEXT PRIMARY KEY,"
      "  idempotency_key TEXT NOT NULL DEFAULT '',"
      "  message_id TEXT NOT NULL DEFAULT '',"
      "  queue TEXT NOT NULL DEFAULT '',"
      "  transport TEXT NOT NULL DEFAULT '',"
      "  provider_message_id TEXT NOT NULL DEFAULT '',"
      "  reply TEXT NOT NULL DEFAULT '',"
      "  rejected TEXT NOT NULL DEFAULT '[]',"
      "  attempts INTEGER NOT NULL DEFAULT 0,"
      "  sent_at_ms INTEGER NOT NULL);"
      "CREATE INDEX IF NOT EXISTS sent_by_time ON sent(sent_at_ms);"
      "CREATE INDEX IF NOT EXISTS sent_by_key ON sent(idempotency_key) WHERE idempotency_key <> "
      "'';"
      "CREATE TABLE IF NOT EXISTS email_status ("
      "  envelope_id TEXT PRIMARY KEY,"
      "  state TEXT NOT NULL,"
      "  queue TEXT NOT NULL DEFAULT '',"
      "  attempts INTEGER NOT NULL DEFAULT 0,"
      "  reply_code INTEGER NOT NULL DEFAULT 0,"
      "  last_error TEXT NOT NULL DEFAULT '',"
      "  reply TEXT NOT NULL DEFAULT '',"
      "  provider_message_id TEXT NOT NULL DEFAULT '',"
      "  recipients TEXT NOT NULL DEFAULT '[]',"
      "  subject TEXT NOT NULL DEFAULT '',"
      "  idempotency_key TEXT NOT NULL DEFAULT '',"
      "  created_ms INTEGER NOT NULL,"
      "  updated_ms INTEGER NOT NULL,"
      "  sent_ms INTEGER);"
      "CREATE INDEX IF NOT EXISTS email_status_by_state ON email_status(state, updated_ms);"
      "CREATE INDEX IF NOT EXISTS email_status_by_time ON email_status(updated_ms);"
      "CREATE TABLE IF NOT EXISTS idempotency_keys ("
      "  key TEXT PRIMARY KEY,"
      "  envelope_id TEXT NOT NULL,"
      "  queue TEXT NOT NULL DEFAULT '',"
      "  created_ms INTEGER NOT NULL);";
  auto db = sqlite::OpenStateDatabase(path, "state store", kBusyTimeoutMs, schema);
  if (!db) return std::unexpected(db.error());
  return std::shared_ptr<StateStore>(
      std::make_shared<SqliteStateStore>(*db, std::move(clock), std::move(on_error)));
}

}  // namespace postline
