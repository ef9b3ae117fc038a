// The sent log on SQLite: one row per delivered envelope id.
#include <fmt/format.h>
#include <sqlite3.h>

#include <mutex>
#include <nlohmann/json.hpp>

#include "common/sqlite_statement.h"
#include "postline/json.h"
#include "postline/worker.h"

namespace postline {
namespace {

Error SqliteError(sqlite3* db, int rc, std::string_view what) {
  return sqlite::ServiceUnavailable(db, rc, "sent log", what);
}

using sqlite::Statement;

class SqliteSentLog final : public SentLog {
 public:
  SqliteSentLog(sqlite3* db, std::shared_ptr<Clock> clock) : db_(db), clock_(std::move(clock)) {}
  ~SqliteSentLog() override { sqlite3_close_v2(db_); }

  Result<void> Record(const SentRecord& r) override {
    std::lock_guard lock(mu_);
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

  Result<std::optional<SentRecord>> Find(std::string_view envelope_id) override {
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

  Result<std::int64_t> CountSince(std::chrono::system_clock::time_point since,
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

  Result<std::int64_t> Prune(std::chrono::seconds retention) override {
    std::lock_guard lock(mu_);
    Statement st(db_, "DELETE FROM sent WHERE sent_at_ms < ?");
    if (!st.ok()) return std::unexpected(SqliteError(db_, 0, "prepare prune"));
    st.Int(1, ToUnixMillis(clock_->Now() - retention));
    int rc = sqlite3_step(st.get());
    if (rc != SQLITE_DONE) return std::unexpected(SqliteError(db_, rc, "prune"));
    return static_cast<std::int64_t>(sqlite3_changes(db_));
  }

 private:
  std::mutex mu_;
  sqlite3* db_;
  sqlite::StatementCache statements_{db_};  // Record and Find, per delivered e-mail (mu_)
  std::shared_ptr<Clock> clock_;
};

}  // namespace

Result<std::shared_ptr<SentLog>> OpenSentLog(const std::string& path,
                                             std::shared_ptr<Clock> clock) {
  // WAL + synchronous=NORMAL: a committed record is in the operating
  // system's page cache before Record returns, so it survives the process
  // dying at any point (kill -9, crash) and a redelivered message is
  // recognised as already sent. Only a power loss can drop the last records,
  // and that can only cause a duplicate, never a loss: the queue's delete,
  // which follows, can be rolled back by the same power loss. Not waiting
  // for fsync here keeps the window between the server's 250 and the record
  // small (docs/delivery.md, "Idempotency and the duplicate window").
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
      "'';";
  auto db = sqlite::OpenStateDatabase(path, "sent log", 10000, schema);
  if (!db) return std::unexpected(db.error());
  return std::shared_ptr<SentLog>(std::make_shared<SqliteSentLog>(*db, std::move(clock)));
}

}  // namespace postline
