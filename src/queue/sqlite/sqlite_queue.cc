// The sqlite backend: one database file holds every queue; any number of
// processes on one machine may open it at once.
//
// Durability and concurrency:
// - journal_mode=WAL, so readers never block the single writer.
// - Two durability levels, chosen per transaction (PRAGMA synchronous is a
//   property of the connection and takes effect at the next COMMIT):
//   * synchronous=FULL for whatever creates or moves a message on a caller's
//     behalf (SendMessage, SendMessageBatch, SendMessages, queue set-up,
//     PurgeQueue). Their contract is that an acknowledged message survives a
//     crash of the process (kill -9) *and* of the machine (power loss before
//     the OS page cache reached the disk): FULL syncs the WAL on every commit.
//     The cost is one fsync per transaction, which is why batches and
//     SendMessages are one transaction.
//   * synchronous=NORMAL for the consumer's bookkeeping (ReceiveMessage,
//     DeleteMessage, ChangeMessageVisibility and their batches, the expiry in
//     GetQueueAttributes). A commit is in the OS page cache when it returns, so
//     it survives kill -9; a power loss may roll back the latest of them, which
//     can only make a message visible again (a redelivery), never lose one.
//     The WAL is synced by the next FULL commit or checkpoint. This spares the
//     worker two fsyncs per delivered e-mail.
//   A rollback after power loss is always a suffix of the WAL, so a FULL
//   commit also makes every earlier NORMAL commit durable.
//   With SqliteSynchronous::kNormal (POSTLINE_SQLITE_SYNCHRONOUS=normal) the
//   sends commit with NORMAL too (see queue.h for what that promises).
// - Every read-modify-write runs in BEGIN IMMEDIATE: the write lock is taken
//   before the first read, so two receivers (threads or processes) cannot
//   both pick the same visible message. busy_timeout makes a writer wait for
//   the lock; past it the operation fails with kTransient "ServiceUnavailable"
//   and its transaction rolls back (nothing is half-written).
// - Long polls sleep without polling: in-process writers wake waiters through
//   a condition variable; writers in other processes touch "<db>-notify"
//   (pwrite of one byte, an inotify IN_MODIFY event) after committing, which a
//   watcher thread in every process turns into the same wake-up. A waiter also
//   wakes when the next delayed or in-flight message becomes visible.
//
// Schema version 2 (PRAGMA user_version): tables queues, messages (the
// bookkeeping), message_bodies, deleted_handles (tombstones that keep
// DeleteMessage idempotent for the last receipt handle of a deleted message,
// for 12 hours). Version 1 files are migrated when opened.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <sqlite3.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "postline/queue.h"
#include "postline/queue_backend.h"

namespace postline {
namespace queue_backend {
namespace {

constexpr int kSchemaVersion = 2;
constexpr int kBusyTimeoutMillis = 5000;

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS queues (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  visibility_timeout_seconds INTEGER NOT NULL,
  message_retention_seconds INTEGER NOT NULL,
  delay_seconds INTEGER NOT NULL,
  maximum_message_size INTEGER NOT NULL,
  receive_message_wait_time_seconds INTEGER NOT NULL,
  dead_letter_queue TEXT,        -- RedrivePolicy target queue name, or NULL
  max_receive_count INTEGER,     -- RedrivePolicy maxReceiveCount, or NULL
  created_at INTEGER NOT NULL    -- epoch ms
);
CREATE TABLE IF NOT EXISTS messages (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  queue_id INTEGER NOT NULL REFERENCES queues(id),
  md5 TEXT NOT NULL,
  attributes BLOB NOT NULL,      -- length-prefixed (name, data type, value) triples
  sent_at INTEGER NOT NULL,      -- epoch ms
  visible_at INTEGER NOT NULL,   -- epoch ms; > now: delayed (never received) or in flight
  receive_count INTEGER NOT NULL DEFAULT 0,
  first_receive_at INTEGER,      -- epoch ms
  last_receive_at INTEGER,       -- epoch ms
  receipt_token TEXT,            -- token of the latest receipt handle
  dead_letter_source TEXT        -- queue a RedrivePolicy moved the message from
);
CREATE INDEX IF NOT EXISTS messages_by_visibility ON messages(queue_id, visible_at, seq);
CREATE INDEX IF NOT EXISTS messages_by_age ON messages(queue_id, sent_at);
CREATE TABLE IF NOT EXISTS deleted_handles (
  handle TEXT PRIMARY KEY,
  queue_id INTEGER NOT NULL,
  deleted_at INTEGER NOT NULL    -- epoch ms
);
CREATE INDEX IF NOT EXISTS deleted_handles_by_time ON deleted_handles(deleted_at);
)sql";

// Schema version 2 keeps bodies apart from the bookkeeping that every
// receive, visibility change and delete rewrites: SQLite rewrites a whole
// record on UPDATE, so a 50 KB body in the messages row meant 50 KB of WAL per
// receive. The trigger removes a body with its message, whichever statement
// deletes it (DeleteMessage, expiry, PurgeQueue).
constexpr std::string_view kBodiesSchema = R"sql(
CREATE TABLE IF NOT EXISTS message_bodies (
  seq INTEGER PRIMARY KEY,       -- messages.seq
  body BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS messages_drop_body AFTER DELETE ON messages
BEGIN
  DELETE FROM message_bodies WHERE seq = old.seq;
END;
)sql";

// From schema version 1 (body in the messages row) to 2, in the same
// transaction as the version bump.
constexpr std::string_view kMigrateV1ToV2 = R"sql(
INSERT INTO message_bodies (seq, body) SELECT seq, body FROM messages;
ALTER TABLE messages DROP COLUMN body;
)sql";

// --- sqlite RAII -----------------------------------------------------------------

std::unexpected<Error> SqliteFailure(sqlite3* db, int rc, std::string_view what) {
  const int primary = rc & 0xFF;
  const char* detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string message = fmt::format("sqlite {}: {}", what, detail);
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED || primary == SQLITE_FULL ||
      primary == SQLITE_READONLY || primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN ||
      primary == SQLITE_PROTOCOL || primary == SQLITE_NOMEM) {
    return MakeError(ErrorKind::kTransient, "ServiceUnavailable", std::move(message));
  }
  return MakeError(ErrorKind::kInternal, "InternalError", std::move(message));
}

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbHandle = std::unique_ptr<sqlite3, DbCloser>;

// Prepared statements kept for the life of a connection
// (SQLITE_PREPARE_PERSISTENT), so the hot paths — one INSERT per message,
// BEGIN/COMMIT per transaction — don't parse SQL each time. Used only by
// the thread that holds the connection's mutex (see Database::Write/Read,
// which make it current for that thread while `body` runs).
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  ~StatementCache() {
    for (auto& [sql, entry] : entries_) sqlite3_finalize(entry.stmt);
  }
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  sqlite3* db() const { return db_; }

  // A reset statement for `sql`, or nullptr when it is in use (a statement
  // stepped while another with the same text runs) or cannot be cached.
  sqlite3_stmt* Acquire(std::string_view sql) {
    auto it = entries_.find(sql);
    if (it == entries_.end()) {
      sqlite3_stmt* raw = nullptr;
      const char* tail = nullptr;
      if (sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                             SQLITE_PREPARE_PERSISTENT, &raw, &tail) != SQLITE_OK ||
          raw == nullptr || tail != sql.data() + sql.size()) {
        sqlite3_finalize(raw);  // errors are reported by the uncached path
        return nullptr;
      }
      it = entries_.emplace(std::string(sql), Entry{raw, false}).first;
    }
    if (it->second.in_use) return nullptr;
    it->second.in_use = true;
    return it->second.stmt;
  }

  void Release(sqlite3_stmt* stmt) {
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    for (auto& [sql, entry] : entries_) {
      if (entry.stmt == stmt) entry.in_use = false;
    }
  }

 private:
  struct Entry {
    sqlite3_stmt* stmt;
    bool in_use;
  };
  sqlite3* db_;
  std::map<std::string, Entry, std::less<>> entries_;
};

// The cache of the connection whose mutex this thread holds, if any.
thread_local StatementCache* t_statement_cache = nullptr;

class Statement {
 public:
  static Result<Statement> Prepare(sqlite3* db, std::string_view sql) {
    if (t_statement_cache != nullptr && t_statement_cache->db() == db) {
      if (sqlite3_stmt* cached = t_statement_cache->Acquire(sql)) {
        return Statement(db, cached, t_statement_cache);
      }
    }
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    Statement statement(db, raw, nullptr);
    if (rc != SQLITE_OK) return SqliteFailure(db, rc, "prepare");
    return statement;
  }

  Statement(Statement&& other) noexcept
      : db_(other.db_),
        stmt_(std::exchange(other.stmt_, nullptr)),
        cache_(other.cache_),
        bind_rc_(other.bind_rc_) {}
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement() {
    if (stmt_ == nullptr) return;
    if (cache_ != nullptr) {
      cache_->Release(stmt_);
    } else {
      sqlite3_finalize(stmt_);
    }
  }

  Statement& Bind(int index, std::int64_t value) {
    Check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Statement& BindText(int index, std::string_view value) {
    Check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                              SQLITE_UTF8));
    return *this;
  }
  Statement& BindBlob(int index, std::string_view value) {
    Check(sqlite3_bind_blob64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& BindNull(int index) {
    Check(sqlite3_bind_null(stmt_, index));
    return *this;
  }

  // true: a row is available; false: done.
  Result<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return SqliteFailure(db_, bind_rc_, "bind");
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteFailure(db_, rc, "step");
  }
  Result<void> Run() {
    while (true) {
      Result<bool> row = Step();
      if (!row) return std::unexpected(row.error());
      if (!*row) return {};
    }
  }

  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Bytes(int col) const {
    const void* data = sqlite3_column_blob(stmt_, col);
    const int size = sqlite3_column_bytes(stmt_, col);
    if (data == nullptr || size <= 0) return {};
    return std::string(static_cast<const char*>(data), static_cast<std::size_t>(size));
  }

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt, StatementCache* cache)
      : db_(db), stmt_(stmt), cache_(cache) {}
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  sqlite3* db_;
  sqlite3_stmt* stmt_;
  StatementCache* cache_;  // non-null: borrowed from the cache, reset on destruction
  int bind_rc_ = SQLITE_OK;
};

// One statement (cached when the connection's cache is current), or several
// separated by semicolons (schema set-up) through sqlite3_exec.
Result<void> Exec(sqlite3* db, const char* sql) {
  if (t_statement_cache != nullptr && t_statement_cache->db() == db) {
    if (sqlite3_stmt* cached = t_statement_cache->Acquire(sql)) {
      const int rc = sqlite3_step(cached);
      t_statement_cache->Release(cached);
      if (rc == SQLITE_DONE || rc == SQLITE_ROW) return {};
      return SqliteFailure(db, rc, sql);
    }
  }
  const int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteFailure(db, rc, sql);
  return {};
}

// A transaction that rolls back in its destructor unless committed.
class Transaction {
 public:
  static Result<Transaction> BeginImmediate(sqlite3* db) {
    if (auto r = Exec(db, "BEGIN IMMEDIATE"); !r) return std::unexpected(r.error());
    return Transaction(db);
  }
  Transaction(Transaction&& other) noexcept : db_(std::exchange(other.db_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;
  ~Transaction() {
    if (db_ != nullptr && sqlite3_get_autocommit(db_) == 0) {
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }

  Result<void> Commit() {
    sqlite3* db = db_;
    Result<void> r = Exec(db, "COMMIT");
    if (r) db_ = nullptr;  // on failure the destructor rolls back what is left
    return r;
  }

 private:
  explicit Transaction(sqlite3* db) : db_(db) {}
  sqlite3* db_;
};

// --- file descriptors ---------------------------------------------------------------

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }

 private:
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
};

std::chrono::system_clock::time_point FromMillis(std::int64_t ms) {
  return std::chrono::system_clock::time_point(std::chrono::milliseconds(ms));
}

// --- the shared connection ---------------------------------------------------------------

// Makes a connection's statement cache current for this thread while it
// holds that connection's mutex.
class CurrentStatementCache {
 public:
  explicit CurrentStatementCache(StatementCache* cache)
      : previous_(std::exchange(t_statement_cache, cache)) {}
  ~CurrentStatementCache() { t_statement_cache = previous_; }
  CurrentStatementCache(const CurrentStatementCache&) = delete;
  CurrentStatementCache& operator=(const CurrentStatementCache&) = delete;

 private:
  StatementCache* previous_;
};

// kSynced: synchronous=FULL, the commit is on stable storage when COMMIT
// returns. kCrashSafe: synchronous=NORMAL, the commit survives the process
// but a power loss may roll it back.
enum class Durability { kSynced, kCrashSafe };

// One connection per service instance, used by one transaction at a time
// (mu), plus the long-poll machinery.
class Database {
 public:
  Database(std::shared_ptr<Clock> clock, DbHandle db, UniqueFd notify_fd,
           SqliteSynchronous synchronous)
      : clock_(std::move(clock)),
        db_(std::move(db)),
        statements_(db_.get()),
        synced_is_full_(synchronous == SqliteSynchronous::kFull),
        notify_fd_(std::move(notify_fd)) {}

  ~Database() {
    if (wake_fd_.valid()) {
      const std::uint64_t one = 1;
      [[maybe_unused]] ssize_t n = ::write(wake_fd_.get(), &one, sizeof(one));
    }
    if (watcher_.joinable()) watcher_.join();
  }

  // Starts watching "<db>-notify" for writes by other processes. Without
  // inotify (limits exhausted), cross-process wake-ups fall back to looking
  // again once a second (max_sleep()).
  void StartWatching(const std::string& notify_path) {
    UniqueFd inotify(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    UniqueFd wake(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!inotify.valid() || !wake.valid()) return;
    if (::inotify_add_watch(inotify.get(), notify_path.c_str(), IN_MODIFY) < 0) return;
    wake_fd_ = std::move(wake);
    inotify_fd_ = std::move(inotify);
    watcher_ = std::thread([this] { Watch(); });
  }

  std::optional<std::chrono::milliseconds> max_sleep() const {
    if (inotify_fd_.valid()) return std::nullopt;
    return std::chrono::seconds(1);
  }

  const Clock& clock() const { return *clock_; }
  std::int64_t NowMs() const { return ToUnixMillis(clock_->Now()); }
  ChangeNotifier& notifier() { return notifier_; }

  // Runs `body(db)` inside BEGIN IMMEDIATE … COMMIT; on any error the
  // transaction rolls back. `body` returns Result<T>. `durability` chooses
  // whether COMMIT waits for the disk (see the top of this file).
  template <typename Body>
  auto Write(Durability durability, Body&& body)
      -> decltype(body(static_cast<sqlite3*>(nullptr))) {
    std::lock_guard lock(mu_);
    CurrentStatementCache current(&statements_);
    sqlite3* db = db_.get();
    if (!synced_is_full_) durability = Durability::kCrashSafe;
    if (durability != durability_) {
      const char* pragma = durability == Durability::kSynced ? "PRAGMA synchronous = FULL"
                                                             : "PRAGMA synchronous = NORMAL";
      if (auto r = Exec(db, pragma); !r) return std::unexpected(r.error());
      durability_ = durability;
    }
    Result<Transaction> txn = Transaction::BeginImmediate(db);
    if (!txn) return std::unexpected(txn.error());
    auto result = body(db);
    if (!result) return result;
    if (auto r = txn->Commit(); !r) return std::unexpected(r.error());
    return result;
  }

  // Runs `body(db)` outside an explicit transaction (single statements).
  template <typename Body>
  auto Read(Body&& body) -> decltype(body(static_cast<sqlite3*>(nullptr))) {
    std::lock_guard lock(mu_);
    CurrentStatementCache current(&statements_);
    return body(db_.get());
  }

  // After a commit that can make a message visible: wakes waiters here and,
  // through the notify file, in every other process.
  void Announce() {
    notifier_.Notify();
    const char byte = 'x';
    [[maybe_unused]] ssize_t n = ::pwrite(notify_fd_.get(), &byte, 1, 0);
  }

 private:
  void Watch() {
    std::array<pollfd, 2> fds{pollfd{inotify_fd_.get(), POLLIN, 0},
                              pollfd{wake_fd_.get(), POLLIN, 0}};
    alignas(inotify_event) std::array<char, 4096> buffer{};
    while (true) {
      const int n = ::poll(fds.data(), fds.size(), -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      if (fds[1].revents != 0) return;
      if (fds[0].revents != 0) {
        while (::read(inotify_fd_.get(), buffer.data(), buffer.size()) > 0) {
        }
        notifier_.Notify();
      }
    }
  }

  const std::shared_ptr<Clock> clock_;
  std::mutex mu_;  // one transaction at a time on db_
  DbHandle db_;
  StatementCache statements_;  // after db_: finalized before the connection closes
  const bool synced_is_full_;  // false: SqliteSynchronous::kNormal, every commit is kCrashSafe
  Durability durability_ = Durability::kSynced;  // the connection's synchronous setting (mu_)
  UniqueFd notify_fd_;
  UniqueFd inotify_fd_;
  UniqueFd wake_fd_;
  ChangeNotifier notifier_;
  std::thread watcher_;  // last: started after everything it uses exists
};

// --- queues ----------------------------------------------------------------------------------

struct QueueRow {
  std::int64_t id = 0;
  std::string name;
  QueueAttributes attributes;
  std::optional<std::int64_t> dead_letter_queue_id;
};

// Looks a queue up by name (and its DLQ's id); std::nullopt when absent.
Result<std::optional<QueueRow>> LoadQueue(sqlite3* db, std::string_view name) {
  Result<Statement> stmt = Statement::Prepare(
      db,
      "SELECT q.id, q.visibility_timeout_seconds, q.message_retention_seconds, q.delay_seconds, "
      "q.maximum_message_size, q.receive_message_wait_time_seconds, q.dead_letter_queue, "
      "q.max_receive_count, d.id FROM queues q LEFT JOIN queues d ON d.name = q.dead_letter_queue "
      "WHERE q.name = ?1");
  if (!stmt) return std::unexpected(stmt.error());
  stmt->BindText(1, name);
  Result<bool> row = stmt->Step();
  if (!row) return std::unexpected(row.error());
  if (!*row) return std::optional<QueueRow>{};
  QueueRow q;
  q.id = stmt->Int(0);
  q.name = std::string(name);
  q.attributes.visibility_timeout_seconds = static_cast<int>(stmt->Int(1));
  q.attributes.message_retention_seconds = static_cast<int>(stmt->Int(2));
  q.attributes.delay_seconds = static_cast<int>(stmt->Int(3));
  q.attributes.maximum_message_size = static_cast<int>(stmt->Int(4));
  q.attributes.receive_message_wait_time_seconds = static_cast<int>(stmt->Int(5));
  if (!stmt->IsNull(6)) {
    q.attributes.redrive_policy = RedrivePolicy{stmt->Bytes(6), static_cast<int>(stmt->Int(7))};
    if (!stmt->IsNull(8)) q.dead_letter_queue_id = stmt->Int(8);
  }
  return std::optional<QueueRow>(std::move(q));
}

// A message as read for a receive.
struct MessageRow {
  std::int64_t seq = 0;
  std::string id;
  std::string body;
  std::string md5;
  std::string attributes;
  std::int64_t sent_at = 0;
  int receive_count = 0;
  std::optional<std::int64_t> first_receive_at;
  std::string dead_letter_source;
};

// Result of one entry inside a larger transaction: the outer Result is the
// database (abort the transaction), the inner one the entry's own outcome.
using EntryOutcome = Result<Result<void>>;

class SqliteQueue final : public Queue {
 public:
  SqliteQueue(std::shared_ptr<Database> db, QueueRow row)
      : db_(std::move(db)), row_(std::move(row)) {}

  const std::string& name() const override { return row_.name; }

  Result<SendMessageResult> SendMessage(const SendMessageRequest& request) override {
    if (auto r = ValidateSendMessage(request, row_.attributes); !r) {
      return std::unexpected(r.error());
    }
    Result<SendMessageResult> result = db_->Write(Durability::kSynced, [&](sqlite3* db) { return Insert(db, request); });
    if (result) db_->Announce();
    return result;
  }

  Result<std::vector<BatchEntryResult<SendMessageResult>>> SendMessageBatch(
      const std::vector<SendMessageBatchEntry>& entries) override {
    std::vector<std::string_view> ids;
    for (const auto& entry : entries) ids.push_back(entry.id);
    if (auto r = ValidateBatchIds(ids); !r) return std::unexpected(r.error());
    std::vector<BatchEntryResult<SendMessageResult>> results;
    std::vector<std::size_t> valid;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      Result<void> ok = ValidateSendMessage(entries[i].request, row_.attributes);
      results.push_back(
          {entries[i].id, ok ? Result<SendMessageResult>{}
                             : Result<SendMessageResult>(std::unexpected(ok.error()))});
      if (ok) valid.push_back(i);
    }
    if (valid.empty()) return results;
    // All valid entries in one transaction: one fsync for the batch.
    Result<void> written = db_->Write(Durability::kSynced, [&](sqlite3* db) -> Result<void> {
      for (std::size_t i : valid) {
        Result<SendMessageResult> sent = Insert(db, entries[i].request);
        if (!sent) return std::unexpected(sent.error());
        results[i].result = std::move(*sent);
      }
      return {};
    });
    for (std::size_t i : valid) {
      if (!written) results[i].result = std::unexpected(written.error());
    }
    if (written) db_->Announce();
    return results;
  }

  // Every valid request in one transaction (one fsync), whatever the count.
  Result<std::vector<Result<SendMessageResult>>> SendMessages(
      std::span<const SendMessageRequest> requests) override {
    std::vector<Result<SendMessageResult>> results;
    results.reserve(requests.size());
    std::vector<std::size_t> valid;
    for (std::size_t i = 0; i < requests.size(); ++i) {
      Result<void> ok = ValidateSendMessage(requests[i], row_.attributes);
      results.push_back(ok ? Result<SendMessageResult>{}
                           : Result<SendMessageResult>(std::unexpected(ok.error())));
      if (ok) valid.push_back(i);
    }
    if (valid.empty()) return results;
    Result<void> written = db_->Write(Durability::kSynced, [&](sqlite3* db) -> Result<void> {
      for (std::size_t i : valid) {
        Result<SendMessageResult> sent = Insert(db, requests[i]);
        if (!sent) return std::unexpected(sent.error());
        results[i] = std::move(*sent);
      }
      return {};
    });
    for (std::size_t i : valid) {
      if (!written) results[i] = std::unexpected(written.error());
    }
    if (written) db_->Announce();
    return results;
  }

  Result<QueueAttributes> GetQueueConfiguration() override { return row_.attributes; }

  Result<std::vector<ReceivedMessage>> ReceiveMessage(
      const ReceiveMessageRequest& request) override {
    Result<ReceiveParameters> params = ResolveReceive(request, row_.attributes);
    if (!params) return std::unexpected(params.error());
    return LongPoll(db_->clock(), db_->notifier(), params->wait_time_seconds, request.stop,
                    db_->max_sleep(), [&] { return Attempt(*params); });
  }

  Result<void> DeleteMessage(std::string_view receipt_handle) override {
    Result<ParsedReceiptHandle> parsed = ParseReceiptHandle(receipt_handle);
    if (!parsed) return std::unexpected(parsed.error());
    EntryOutcome outcome =
        db_->Write(Durability::kCrashSafe, [&](sqlite3* db) { return DeleteOne(db, receipt_handle, *parsed); });
    if (!outcome) return std::unexpected(outcome.error());
    return *outcome;
  }

  Result<std::vector<BatchEntryResult<void>>> DeleteMessageBatch(
      const std::vector<std::pair<std::string, std::string>>& entries) override {
    std::vector<std::string_view> ids;
    for (const auto& entry : entries) ids.push_back(entry.first);
    if (auto r = ValidateBatchIds(ids); !r) return std::unexpected(r.error());
    return RunBatch(
        entries.size(), [&](std::size_t i) { return entries[i].first; },
        [&](std::size_t i) -> Result<ParsedReceiptHandle> {
          return ParseReceiptHandle(entries[i].second);
        },
        [&](sqlite3* db, std::size_t i, const ParsedReceiptHandle& parsed) {
          return DeleteOne(db, entries[i].second, parsed);
        });
  }

  Result<void> ChangeMessageVisibility(std::string_view receipt_handle,
                                       int visibility_timeout_seconds) override {
    if (auto r = ValidateVisibilityTimeout(visibility_timeout_seconds, "VisibilityTimeout"); !r) {
      return r;
    }
    Result<ParsedReceiptHandle> parsed = ParseReceiptHandle(receipt_handle);
    if (!parsed) return std::unexpected(parsed.error());
    EntryOutcome outcome =
        db_->Write(Durability::kCrashSafe, [&](sqlite3* db) { return ChangeOne(db, *parsed, visibility_timeout_seconds); });
    if (!outcome) return std::unexpected(outcome.error());
    if (*outcome) db_->Announce();
    return *outcome;
  }

  Result<std::vector<BatchEntryResult<void>>> ChangeMessageVisibilityBatch(
      const std::vector<VisibilityChange>& entries) override {
    std::vector<std::string_view> ids;
    for (const auto& entry : entries) ids.push_back(entry.id);
    if (auto r = ValidateBatchIds(ids); !r) return std::unexpected(r.error());
    auto results = RunBatch(
        entries.size(), [&](std::size_t i) { return entries[i].id; },
        [&](std::size_t i) -> Result<ParsedReceiptHandle> {
          if (auto r = ValidateVisibilityTimeout(entries[i].visibility_timeout_seconds,
                                                 "VisibilityTimeout");
              !r) {
            return std::unexpected(r.error());
          }
          return ParseReceiptHandle(entries[i].receipt_handle);
        },
        [&](sqlite3* db, std::size_t i, const ParsedReceiptHandle& parsed) {
          return ChangeOne(db, parsed, entries[i].visibility_timeout_seconds);
        });
    if (results) db_->Announce();
    return results;
  }

  Result<QueueStats> GetQueueAttributes() override {
    return db_->Write(Durability::kCrashSafe, [&](sqlite3* db) -> Result<QueueStats> {
      const std::int64_t now = db_->NowMs();
      if (auto r = DropExpired(db, now); !r) return std::unexpected(r.error());
      Result<Statement> stmt = Statement::Prepare(
          db,
          "SELECT COUNT(*), TOTAL(visible_at <= ?2), TOTAL(visible_at > ?2 AND receive_count > 0), "
          "TOTAL(visible_at > ?2 AND receive_count = 0), MIN(sent_at) FROM messages "
          "WHERE queue_id = ?1");
      if (!stmt) return std::unexpected(stmt.error());
      stmt->Bind(1, row_.id).Bind(2, now);
      Result<bool> row = stmt->Step();
      if (!row) return std::unexpected(row.error());
      QueueStats stats;
      stats.attributes = row_.attributes;
      if (*row && stmt->Int(0) > 0) {
        stats.approximate_number_of_messages = stmt->Int(1);
        stats.approximate_number_of_messages_not_visible = stmt->Int(2);
        stats.approximate_number_of_messages_delayed = stmt->Int(3);
        stats.approximate_age_of_oldest_message_seconds =
            std::max<std::int64_t>(0, (now - stmt->Int(4)) / 1000);
      }
      return stats;
    });
  }

  Result<void> PurgeQueue() override {
    return db_->Write(Durability::kSynced, [&](sqlite3* db) -> Result<void> {
      for (const char* sql : {"DELETE FROM messages WHERE queue_id = ?1",
                              "DELETE FROM deleted_handles WHERE queue_id = ?1"}) {
        Result<Statement> stmt = Statement::Prepare(db, sql);
        if (!stmt) return std::unexpected(stmt.error());
        if (auto r = stmt->Bind(1, row_.id).Run(); !r) return r;
      }
      return {};
    });
  }

 private:
  Result<SendMessageResult> Insert(sqlite3* db, const SendMessageRequest& request) {
    const std::int64_t now = db_->NowMs();
    SendMessageResult result{NewMessageId(), Md5Hex(request.body)};
    Result<Statement> stmt = Statement::Prepare(
        db,
        "INSERT INTO messages (id, queue_id, md5, attributes, sent_at, visible_at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->BindText(1, result.message_id)
        .Bind(2, row_.id)
        .BindText(3, result.md5_of_body)
        .BindBlob(4, EncodeAttributes(request.attributes))
        .Bind(5, now)
        .Bind(6, now + static_cast<std::int64_t>(EffectiveDelaySeconds(request, row_.attributes)) *
                           1000);
    if (auto r = stmt->Run(); !r) return std::unexpected(r.error());
    Result<Statement> body =
        Statement::Prepare(db, "INSERT INTO message_bodies (seq, body) VALUES (?1, ?2)");
    if (!body) return std::unexpected(body.error());
    body->Bind(1, sqlite3_last_insert_rowid(db)).BindBlob(2, request.body);
    if (auto r = body->Run(); !r) return std::unexpected(r.error());
    return result;
  }

  Result<void> DropExpired(sqlite3* db, std::int64_t now) {
    Result<Statement> stmt =
        Statement::Prepare(db, "DELETE FROM messages WHERE queue_id = ?1 AND sent_at <= ?2");
    if (!stmt) return std::unexpected(stmt.error());
    return stmt->Bind(1, row_.id)
        .Bind(2, now - static_cast<std::int64_t>(row_.attributes.message_retention_seconds) * 1000)
        .Run();
  }

  Result<ReceiveAttempt> Attempt(const ReceiveParameters& params) {
    bool moved = false;
    Result<ReceiveAttempt> result = db_->Write(Durability::kCrashSafe, [&](sqlite3* db) -> Result<ReceiveAttempt> {
      const std::int64_t now = db_->NowMs();
      if (auto r = DropExpired(db, now); !r) return std::unexpected(r.error());
      ReceiveAttempt out;
      const auto want = static_cast<std::size_t>(params.max_number_of_messages);
      while (out.messages.size() < want) {
        Result<std::vector<MessageRow>> rows = SelectVisible(db, now, want - out.messages.size());
        if (!rows) return std::unexpected(rows.error());
        if (rows->empty()) break;
        bool moved_some = false;
        for (MessageRow& row : *rows) {
          const auto& policy = row_.attributes.redrive_policy;
          if (policy && row_.dead_letter_queue_id &&
              row.receive_count >= policy->max_receive_count) {
            if (auto r = MoveToDeadLetterQueue(db, row.seq, now); !r) {
              return std::unexpected(r.error());
            }
            moved = moved_some = true;
            continue;
          }
          Result<ReceivedMessage> received = MarkReceived(db, std::move(row), now, params);
          if (!received) return std::unexpected(received.error());
          out.messages.push_back(std::move(*received));
        }
        if (!moved_some) break;  // took everything that was visible
      }
      if (out.messages.empty()) {
        Result<Statement> next = Statement::Prepare(
            db, "SELECT MIN(visible_at) FROM messages WHERE queue_id = ?1 AND visible_at > ?2");
        if (!next) return std::unexpected(next.error());
        next->Bind(1, row_.id).Bind(2, now);
        Result<bool> row = next->Step();
        if (!row) return std::unexpected(row.error());
        if (*row && !next->IsNull(0)) {
          out.next_visible_in = std::chrono::milliseconds(next->Int(0) - now);
        }
      }
      return out;
    });
    if (result && moved) db_->Announce();
    return result;
  }

  Result<std::vector<MessageRow>> SelectVisible(sqlite3* db, std::int64_t now, std::size_t limit) {
    Result<Statement> stmt = Statement::Prepare(
        db,
        "SELECT m.seq, m.id, b.body, m.md5, m.attributes, m.sent_at, m.receive_count, "
        "m.first_receive_at, m.dead_letter_source FROM messages m "
        "JOIN message_bodies b ON b.seq = m.seq WHERE m.queue_id = ?1 AND m.visible_at <= ?2 "
        "ORDER BY m.visible_at, m.seq LIMIT ?3");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->Bind(1, row_.id).Bind(2, now).Bind(3, static_cast<std::int64_t>(limit));
    std::vector<MessageRow> rows;
    while (true) {
      Result<bool> has = stmt->Step();
      if (!has) return std::unexpected(has.error());
      if (!*has) break;
      MessageRow row;
      row.seq = stmt->Int(0);
      row.id = stmt->Bytes(1);
      row.body = stmt->Bytes(2);
      row.md5 = stmt->Bytes(3);
      row.attributes = stmt->Bytes(4);
      row.sent_at = stmt->Int(5);
      row.receive_count = static_cast<int>(stmt->Int(6));
      if (!stmt->IsNull(7)) row.first_receive_at = stmt->Int(7);
      row.dead_letter_source = stmt->Bytes(8);
      rows.push_back(std::move(row));
    }
    return rows;
  }

  // The RedrivePolicy move, inside the receive's transaction. The message
  // keeps its id, body, attributes and SentTimestamp (so retention still
  // counts from the original send); its receive count starts again at 0 in
  // the DLQ, and dead_letter_source records where it came from.
  Result<void> MoveToDeadLetterQueue(sqlite3* db, std::int64_t seq, std::int64_t now) {
    Result<Statement> stmt =
        Statement::Prepare(db,
                           "UPDATE messages SET queue_id = ?1, visible_at = ?2, receive_count = 0, "
                           "first_receive_at = NULL, last_receive_at = NULL, receipt_token = NULL, "
                           "dead_letter_source = ?3 WHERE seq = ?4");
    if (!stmt) return std::unexpected(stmt.error());
    return stmt->Bind(1, *row_.dead_letter_queue_id)
        .Bind(2, now)
        .BindText(3, row_.name)
        .Bind(4, seq)
        .Run();
  }

  Result<ReceivedMessage> MarkReceived(sqlite3* db, MessageRow row, std::int64_t now,
                                       const ReceiveParameters& params) {
    const std::string token = NewReceiptToken();
    const std::int64_t first = row.first_receive_at.value_or(now);
    Result<Statement> stmt = Statement::Prepare(
        db,
        "UPDATE messages SET visible_at = ?1, receive_count = receive_count + 1, "
        "first_receive_at = ?2, last_receive_at = ?3, receipt_token = ?4 WHERE seq = ?5");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->Bind(1, now + static_cast<std::int64_t>(params.visibility_timeout_seconds) * 1000)
        .Bind(2, first)
        .Bind(3, now)
        .BindText(4, token)
        .Bind(5, row.seq);
    if (auto r = stmt->Run(); !r) return std::unexpected(r.error());
    Result<MessageAttributes> attributes = DecodeAttributes(row.attributes);
    if (!attributes) return std::unexpected(attributes.error());
    ReceivedMessage message;
    message.receipt_handle = MakeReceiptHandle(token, row.id);
    message.message_id = std::move(row.id);
    message.body = std::move(row.body);
    message.md5_of_body = std::move(row.md5);
    message.attributes = std::move(*attributes);
    message.approximate_receive_count = row.receive_count + 1;
    message.sent_timestamp = FromMillis(row.sent_at);
    message.first_receive_timestamp = FromMillis(first);
    message.dead_letter_source_queue = std::move(row.dead_letter_source);
    return message;
  }

  struct HandleTarget {
    std::int64_t seq = 0;
    std::int64_t visible_at = 0;
    int receive_count = 0;
    std::int64_t last_receive_at = 0;
  };
  // The message a receipt handle names in this queue, if the handle is its
  // latest; the inner error says why not.
  Result<Result<std::optional<HandleTarget>>> FindByHandle(sqlite3* db,
                                                           const ParsedReceiptHandle& parsed) {
    Result<Statement> stmt = Statement::Prepare(
        db,
        "SELECT seq, queue_id, receipt_token, visible_at, receive_count, last_receive_at "
        "FROM messages WHERE id = ?1");
    if (!stmt) return std::unexpected(stmt.error());
    stmt->BindText(1, parsed.message_id);
    Result<bool> row = stmt->Step();
    if (!row) return std::unexpected(row.error());
    using Inner = Result<std::optional<HandleTarget>>;
    if (!*row || stmt->Int(1) != row_.id) return Inner(std::optional<HandleTarget>{});
    if (stmt->IsNull(2) || stmt->Bytes(2) != parsed.token) {
      return Inner(ReceiptHandleIsInvalid("is stale: the message was received again since"));
    }
    return Inner(HandleTarget{stmt->Int(0), stmt->Int(3), static_cast<int>(stmt->Int(4)),
                              stmt->IsNull(5) ? 0 : stmt->Int(5)});
  }

  EntryOutcome DeleteOne(sqlite3* db, std::string_view handle, const ParsedReceiptHandle& parsed) {
    const std::int64_t now = db_->NowMs();
    {
      Result<Statement> prune =
          Statement::Prepare(db, "DELETE FROM deleted_handles WHERE deleted_at < ?1");
      if (!prune) return std::unexpected(prune.error());
      if (auto r = prune->Bind(1, now - kDeletedHandleTtlMillis).Run(); !r) {
        return std::unexpected(r.error());
      }
    }
    auto target = FindByHandle(db, parsed);
    if (!target) return std::unexpected(target.error());
    if (!*target) return Result<void>(std::unexpected(target->error()));
    if (!**target) {
      // Gone: succeed if this was the handle that deleted it.
      Result<Statement> stmt = Statement::Prepare(
          db, "SELECT 1 FROM deleted_handles WHERE handle = ?1 AND queue_id = ?2");
      if (!stmt) return std::unexpected(stmt.error());
      stmt->BindText(1, handle).Bind(2, row_.id);
      Result<bool> found = stmt->Step();
      if (!found) return std::unexpected(found.error());
      if (*found) return Result<void>{};
      return Result<void>(
          ReceiptHandleIsInvalid(fmt::format("does not match a message in queue '{}'", row_.name)));
    }
    Result<Statement> del = Statement::Prepare(db, "DELETE FROM messages WHERE seq = ?1");
    if (!del) return std::unexpected(del.error());
    if (auto r = del->Bind(1, (**target)->seq).Run(); !r) return std::unexpected(r.error());
    Result<Statement> tomb =
        Statement::Prepare(db,
                           "INSERT OR REPLACE INTO deleted_handles (handle, queue_id, deleted_at) "
                           "VALUES (?1, ?2, ?3)");
    if (!tomb) return std::unexpected(tomb.error());
    if (auto r = tomb->BindText(1, handle).Bind(2, row_.id).Bind(3, now).Run(); !r) {
      return std::unexpected(r.error());
    }
    return Result<void>{};
  }

  EntryOutcome ChangeOne(sqlite3* db, const ParsedReceiptHandle& parsed, int seconds) {
    const std::int64_t now = db_->NowMs();
    auto target = FindByHandle(db, parsed);
    if (!target) return std::unexpected(target.error());
    if (!*target) return Result<void>(std::unexpected(target->error()));
    if (!**target) {
      return Result<void>(
          ReceiptHandleIsInvalid(fmt::format("does not match a message in queue '{}'", row_.name)));
    }
    const HandleTarget& message = ***target;
    if (message.visible_at <= now || message.receive_count == 0) {
      return Result<void>(MessageNotInflight());
    }
    const std::int64_t visible_at = now + static_cast<std::int64_t>(seconds) * 1000;
    if (visible_at >
        message.last_receive_at + static_cast<std::int64_t>(kMaxVisibilityTimeoutSeconds) * 1000) {
      return Result<void>(InvalidParameter(
          fmt::format("VisibilityTimeout {} s would keep the message invisible beyond 12 hours "
                      "after it was received",
                      seconds),
          "VisibilityTimeout"));
    }
    Result<Statement> stmt =
        Statement::Prepare(db, "UPDATE messages SET visible_at = ?1 WHERE seq = ?2");
    if (!stmt) return std::unexpected(stmt.error());
    if (auto r = stmt->Bind(1, visible_at).Bind(2, message.seq).Run(); !r) {
      return std::unexpected(r.error());
    }
    return Result<void>{};
  }

  // A batch of handle operations in one transaction. Entries whose
  // parameters are wrong fail on their own; a database failure fails every
  // entry that reached the database (the transaction rolled back).
  template <typename IdOf, typename Prepare, typename Apply>
  Result<std::vector<BatchEntryResult<void>>> RunBatch(std::size_t n, IdOf id_of, Prepare prepare,
                                                       Apply apply) {
    std::vector<BatchEntryResult<void>> results;
    std::vector<std::optional<ParsedReceiptHandle>> parsed(n);
    for (std::size_t i = 0; i < n; ++i) {
      Result<ParsedReceiptHandle> p = prepare(i);
      results.push_back(
          {std::string(id_of(i)), p ? Result<void>{} : Result<void>(std::unexpected(p.error()))});
      if (p) parsed[i] = std::move(*p);
    }
    Result<void> written = db_->Write(Durability::kCrashSafe, [&](sqlite3* db) -> Result<void> {
      for (std::size_t i = 0; i < n; ++i) {
        if (!parsed[i]) continue;
        EntryOutcome outcome = apply(db, i, *parsed[i]);
        if (!outcome) return std::unexpected(outcome.error());
        results[i].result = *outcome;
      }
      return {};
    });
    if (!written) {
      for (std::size_t i = 0; i < n; ++i) {
        if (parsed[i]) results[i].result = std::unexpected(written.error());
      }
    }
    return results;
  }

  const std::shared_ptr<Database> db_;
  const QueueRow row_;
};

// Binds ?1 name and ?2–?8 the attributes, in the column order of the queues
// table (visibility, retention, delay, maximum size, wait, DLQ, maxReceiveCount).
void BindQueueAttributes(Statement& stmt, std::string_view name, const QueueAttributes& a) {
  stmt.BindText(1, name)
      .Bind(2, a.visibility_timeout_seconds)
      .Bind(3, a.message_retention_seconds)
      .Bind(4, a.delay_seconds)
      .Bind(5, a.maximum_message_size)
      .Bind(6, a.receive_message_wait_time_seconds);
  if (a.redrive_policy) {
    stmt.BindText(7, a.redrive_policy->dead_letter_queue).Bind(8, a.redrive_policy->max_receive_count);
  } else {
    stmt.BindNull(7).BindNull(8);
  }
}

// A RedrivePolicy may only name an existing queue.
Result<void> CheckDeadLetterQueue(sqlite3* db, const QueueAttributes& attributes) {
  if (!attributes.redrive_policy) return {};
  Result<std::optional<QueueRow>> dlq = LoadQueue(db, attributes.redrive_policy->dead_letter_queue);
  if (!dlq) return std::unexpected(dlq.error());
  if (!*dlq) return QueueDoesNotExist(attributes.redrive_policy->dead_letter_queue);
  return {};
}

class SqliteQueueService final : public QueueService {
 public:
  explicit SqliteQueueService(std::shared_ptr<Database> db) : db_(std::move(db)) {}

  Result<std::shared_ptr<Queue>> CreateQueue(std::string_view name,
                                             const QueueAttributes& attributes) override {
    if (auto r = ValidateQueueName(name); !r) return std::unexpected(r.error());
    if (auto r = ValidateQueueAttributes(name, attributes); !r) return std::unexpected(r.error());
    Result<QueueRow> row = db_->Write(Durability::kSynced, [&](sqlite3* db) -> Result<QueueRow> {
      Result<std::optional<QueueRow>> existing = LoadQueue(db, name);
      if (!existing) return std::unexpected(existing.error());
      if (*existing) {
        if (!SameAttributes((*existing)->attributes, attributes)) {
          return InvalidInput(
              "QueueAlreadyExists",
              fmt::format("queue '{}' already exists with different attributes", name),
              "QueueName");
        }
        return std::move(**existing);
      }
      if (auto r = CheckDeadLetterQueue(db, attributes); !r) return std::unexpected(r.error());
      Result<Statement> stmt = Statement::Prepare(
          db,
          "INSERT INTO queues (name, visibility_timeout_seconds, message_retention_seconds, "
          "delay_seconds, maximum_message_size, receive_message_wait_time_seconds, "
          "dead_letter_queue, max_receive_count, created_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)");
      if (!stmt) return std::unexpected(stmt.error());
      BindQueueAttributes(*stmt, name, attributes);
      stmt->Bind(9, db_->NowMs());
      if (auto r = stmt->Run(); !r) return std::unexpected(r.error());
      Result<std::optional<QueueRow>> created = LoadQueue(db, name);
      if (!created) return std::unexpected(created.error());
      if (!*created) return InternalError(fmt::format("queue '{}' vanished after insert", name));
      return std::move(**created);
    });
    if (!row) return std::unexpected(row.error());
    return std::make_shared<SqliteQueue>(db_, std::move(*row));
  }

  Result<void> SetQueueAttributes(std::string_view name,
                                  const QueueAttributes& attributes) override {
    if (auto r = ValidateQueueAttributes(name, attributes); !r) return std::unexpected(r.error());
    return db_->Write(Durability::kSynced, [&](sqlite3* db) -> Result<void> {
      Result<std::optional<QueueRow>> existing = LoadQueue(db, name);
      if (!existing) return std::unexpected(existing.error());
      if (!*existing) return QueueDoesNotExist(name);
      if (auto r = CheckDeadLetterQueue(db, attributes); !r) return std::unexpected(r.error());
      Result<Statement> stmt = Statement::Prepare(
          db,
          "UPDATE queues SET visibility_timeout_seconds = ?2, message_retention_seconds = ?3, "
          "delay_seconds = ?4, maximum_message_size = ?5, receive_message_wait_time_seconds = ?6, "
          "dead_letter_queue = ?7, max_receive_count = ?8 WHERE name = ?1");
      if (!stmt) return std::unexpected(stmt.error());
      BindQueueAttributes(*stmt, name, attributes);
      if (auto r = stmt->Run(); !r) return std::unexpected(r.error());
      return {};
    });
  }

  Result<std::shared_ptr<Queue>> GetQueue(std::string_view name) override {
    Result<std::optional<QueueRow>> row =
        db_->Read([&](sqlite3* db) { return LoadQueue(db, name); });
    if (!row) return std::unexpected(row.error());
    if (!*row) return QueueDoesNotExist(name);
    return std::make_shared<SqliteQueue>(db_, std::move(**row));
  }

  Result<std::vector<std::string>> ListQueues() override {
    return db_->Read([&](sqlite3* db) -> Result<std::vector<std::string>> {
      Result<Statement> stmt = Statement::Prepare(db, "SELECT name FROM queues ORDER BY name");
      if (!stmt) return std::unexpected(stmt.error());
      std::vector<std::string> names;
      while (true) {
        Result<bool> row = stmt->Step();
        if (!row) return std::unexpected(row.error());
        if (!*row) break;
        names.push_back(stmt->Bytes(0));
      }
      return names;
    });
  }

 private:
  const std::shared_ptr<Database> db_;
};

Result<void> InitializeSchema(sqlite3* db) {
  Result<Transaction> txn = Transaction::BeginImmediate(db);
  if (!txn) return std::unexpected(txn.error());
  Result<Statement> version = Statement::Prepare(db, "PRAGMA user_version");
  if (!version) return std::unexpected(version.error());
  Result<bool> row = version->Step();
  if (!row) return std::unexpected(row.error());
  const std::int64_t current = *row ? version->Int(0) : 0;
  if (current > kSchemaVersion) {
    return InternalError(fmt::format(
        "queue database schema version {} is newer than this program's {}; upgrade postline",
        current, kSchemaVersion));
  }
  if (current < kSchemaVersion) {
    // Version 0 is an empty file; version 1 files are migrated in place.
    const std::string sql =
        fmt::format("{}\n{}\n{}\nPRAGMA user_version = {};", kSchema, kBodiesSchema,
                    current == 1 ? kMigrateV1ToV2 : std::string_view(), kSchemaVersion);
    if (auto r = Exec(db, sql.c_str()); !r) return r;
  }
  return txn->Commit();
}

Result<std::shared_ptr<QueueService>> Open(const std::string& path, std::shared_ptr<Clock> clock,
                                          SqliteSynchronous synchronous) {
  const std::filesystem::path file(path);
  std::error_code ec;
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  if (ec) {
    return MakeError(ErrorKind::kTransient, "ServiceUnavailable",
                     fmt::format("cannot create directory '{}' for the queue database: {}",
                                 file.parent_path().string(), ec.message()),
                     "path");
  }
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  DbHandle db(raw);
  if (rc != SQLITE_OK) {
    return SqliteFailure(db.get(), rc, fmt::format("open '{}'", path));
  }
  sqlite3_busy_timeout(db.get(), kBusyTimeoutMillis);
  {
    Result<Statement> wal = Statement::Prepare(db.get(), "PRAGMA journal_mode = WAL");
    if (!wal) return std::unexpected(wal.error());
    Result<bool> row = wal->Step();
    if (!row) return std::unexpected(row.error());
    if (!*row || wal->Bytes(0) != "wal") {
      return MakeError(ErrorKind::kTransient, "ServiceUnavailable",
                       fmt::format("queue database '{}' cannot use WAL journaling", path), "path");
    }
  }
  // FULL, not NORMAL: see the comment at the top of this file (an
  // acknowledged SendMessage must survive power loss).
  if (auto r = Exec(db.get(), "PRAGMA synchronous = FULL"); !r) return std::unexpected(r.error());
  if (auto r = InitializeSchema(db.get()); !r) return std::unexpected(r.error());

  const std::string notify_path = path + "-notify";
  UniqueFd notify_fd(::open(notify_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!notify_fd.valid()) {
    return MakeError(
        ErrorKind::kTransient, "ServiceUnavailable",
        fmt::format("cannot open notify file '{}': {}", notify_path, std::strerror(errno)), "path");
  }
  auto database = std::make_shared<Database>(std::move(clock), std::move(db), std::move(notify_fd),
                                             synchronous);
  database->StartWatching(notify_path);
  return std::make_shared<SqliteQueueService>(std::move(database));
}

}  // namespace
}  // namespace queue_backend

Result<std::shared_ptr<QueueService>> OpenSqliteQueueService(const std::string& path,
                                                             std::shared_ptr<Clock> clock,
                                                             SqliteSynchronous synchronous) {
  return queue_backend::Open(path, std::move(clock), synchronous);
}

}  // namespace postline
