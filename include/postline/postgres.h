// postline/postgres.h — PostgreSQL through libpq: connections, a bounded
// pool, parameterised statements, pipelined batches, transactions,
// numbered migrations and the one map from libpq failures to postline
// errors. Used by the backends that keep shared state in PostgreSQL
// (state/postgres; the queue later).
//
// Connection strings are libpq's own (PostgreSQL 15 documentation §34.1.1):
// a URI `postgresql://[user[:password]@][host][:port][/dbname][?param=value&…]`
// (`postgres://` too) or keyword/value pairs `host=… dbname=… user=…`.
// Every libpq parameter is honoured as libpq honours it — `sslmode`,
// `sslrootcert`, `connect_timeout`, several hosts with
// `target_session_attrs`, the PG* environment variables and ~/.pgpass for
// what the string leaves out. postline adds only defaults the string can
// override: `connect_timeout=10` and `fallback_application_name=postline`.
//
// Errors (Error::code) — one map for every call below:
//   "database_unavailable" (kTransient): the server cannot be reached or went
//       away — connection refused, timeout, authentication failure, the
//       server shutting down (SQLSTATE 57P01–57P03), class 08, too many
//       connections or other resource exhaustion (class 53), I/O error (58030).
//   "database_busy" (kTransient): a serialization failure (40001), deadlock
//       (40P01), lock not available (55P03), statement timeout or cancel
//       (57014), or no pooled connection free within the pool's timeout.
//   "unique_violation" (kInvalidInput, field = the constraint): SQLSTATE
//       23505; "constraint_violation" for the rest of class 23.
//   "invalid_value" (kInvalidInput): class 22, e.g. text that is not UTF-8.
//   "database_permission_denied" (kPermanent): SQLSTATE 42501.
//   "schema_too_new" (kPermanent): Migrate found a newer schema.
//   "invalid_database_url" (kInvalidInput): a connection string libpq
//       cannot parse.
//   "database_error" (kInternal): everything else (syntax errors, missing
//       tables: a bug or a database changed by hand).
// Messages name what failed and the database as "host:port/dbname" — never
// the password — followed by the server's message and SQLSTATE. `field` is
// the pool's setting name (PoolOptions::setting, POSTLINE_DATABASE_URL by
// default) for connection failures, the constraint for constraint errors.
//
// Thread-safety: free functions and ConnectionPool are safe to call from any
// thread. A Connection, Lease and Transaction is used by one thread at a time.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "postline/error.h"

// libpq's handles (libpq-fe.h), declared here so callers need not include it.
struct pg_conn;
struct pg_result;

namespace postline::pg {

// --- connection strings --------------------------------------------------------

// OK when `conninfo` is a libpq connection URI (postgres:// or
// postgresql://) or a keyword/value string that PQconninfoParse accepts.
// Errors: kInvalidInput "invalid_database_url" naming `setting` (the
// variable it came from) with libpq's reason, e.g. `invalid connection
// option "hots"`; the message never repeats the string itself, so a password
// in it is not echoed.
Result<void> ValidateConnectionString(std::string_view conninfo,
                                      std::string_view setting = "POSTLINE_DATABASE_URL");

// `conninfo` with every password (`password`, and `sslpassword`, the key
// file's passphrase) replaced by "********", keeping the form the user
// wrote: in a URI the `:password` of the user info and `password=` query
// parameters; in keyword/value form the `password = value` pair, quoted or
// not. Everything else is returned unchanged. A string that does not parse
// is redacted the same way (an unterminated quoted password is replaced to
// the end). Pure; safe from any thread.
std::string RedactConnectionString(std::string_view conninfo);

// The database `conninfo` names as "host:port/dbname" (what error messages
// show), filled from libpq's defaults (PG* variables, the user name) where
// the string is silent: e.g. "db.internal:5432/postline",
// "local socket:5432/postline" when no host is given (libpq then uses its
// unix socket; a connection names the socket folder). Several hosts are
// joined with ','. "" when the string does not parse.
std::string DescribeDatabase(std::string_view conninfo);

// `text` made storable in a PostgreSQL text value: ill-formed UTF-8
// sequences and NUL bytes are replaced by U+FFFD; valid UTF-8 is returned
// unchanged. Pure.
std::string ToStorableText(std::string_view text);

// --- statements ------------------------------------------------------------------

// The parameters of one statement ($1, $2, …), all sent as text and typed by
// the server from the SQL (write `$1::bigint` where the type is not clear
// from context). Cheap to build; copies the values.
class Params {
 public:
  Params() = default;
  // Appends a text value as is. Text PostgreSQL cannot hold (NUL, not
  // UTF-8) makes the statement fail with "invalid_value"; use Utf8() for
  // free-form text from outside.
  Params& Text(std::string_view value);
  // Appends ToStorableText(value).
  Params& Utf8(std::string_view value);
  // Appends a decimal integer.
  Params& Int(std::int64_t value);
  // Appends "true" or "false".
  Params& Bool(bool value);
  // Appends SQL NULL.
  Params& Null();

  int size() const { return static_cast<int>(values_.size()); }
  // libpq's paramValues: a pointer per parameter, nullptr for NULL. Valid
  // until this object changes.
  std::vector<const char*> Pointers() const;

 private:
  std::vector<std::optional<std::string>> values_;
};

// One statement of a batch (Connection::ExecBatch).
struct Statement {
  std::string sql;
  Params params;
};

// The result of one statement: rows of text values (libpq's text format)
// and, for INSERT/UPDATE/DELETE, the number of rows affected. Owns the
// PGresult; move-only.
class Rows {
 public:
  Rows() = default;
  explicit Rows(pg_result* result);
  ~Rows();
  Rows(Rows&& other) noexcept;
  Rows& operator=(Rows&& other) noexcept;
  Rows(const Rows&) = delete;
  Rows& operator=(const Rows&) = delete;

  int size() const;  // number of rows
  bool empty() const { return size() == 0; }
  std::int64_t affected() const;  // rows inserted/updated/deleted; 0 for others

  // Column `col` of row `row`, both 0-based. REQUIRES: row < size(), col a
  // column of the result. Text() of NULL is "", Int() of NULL or non-digits 0.
  std::string Text(int row, int col) const;
  std::int64_t Int(int row, int col) const;
  bool Bool(int row, int col) const;  // "t" is true
  bool IsNull(int row, int col) const;

 private:
  pg_result* result_ = nullptr;
};

// --- connection ---------------------------------------------------------------------

// One libpq connection (PQconnectdbParams), closed by the destructor.
// Statements run through Exec are prepared once per connection (named
// prepared statements keyed by their SQL text) and executed with
// PQexecPrepared: one round trip per call after the first.
//
// After a failure that lost the connection (see "database_unavailable"
// above) broken() is true and every later call fails at once; a pool
// discards such a connection. Not thread-safe: one thread at a time.
class Connection {
 public:
  // Connects to `conninfo` (validated first). `setting` names the variable
  // for errors. Errors: "invalid_database_url"; "database_unavailable" with
  // libpq's reason (refused, timeout, authentication) and the database.
  static Result<std::unique_ptr<Connection>> Open(
      std::string_view conninfo, std::string_view setting = "POSTLINE_DATABASE_URL");
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs one statement with `params` and returns its rows (none for
  // commands). `what` says what the statement does, for error messages
  // ("record sent"). Errors: the map above.
  Result<Rows> Exec(std::string_view sql, const Params& params = {},
                    std::string_view what = "statement");

  // Runs `sql`, which may hold several statements separated by ';' and no
  // parameters, with the simple query protocol (PQexec): DDL, BEGIN/COMMIT.
  // Unless `sql` has its own BEGIN/COMMIT, the statements run in one
  // implicit transaction (all or nothing). Errors: the map above.
  Result<void> ExecScript(std::string_view sql, std::string_view what = "script");

  // Runs `statements` in libpq's pipeline mode: all are sent, then one sync,
  // so the whole batch costs one round trip (plus one for statements not
  // prepared on this connection yet, which are prepared in the same
  // pipeline). Outside an explicit transaction the batch is one implicit
  // transaction: every statement's effect is committed, or — when one
  // fails — none is, and the error is the first failure. Inside a
  // Transaction the statements become part of it. Returns one Rows per
  // statement, in order. Meant for writes and small results: the replies
  // are read after everything is sent. Errors: the map above.
  Result<std::vector<Rows>> ExecBatch(std::span<const Statement> statements,
                                      std::string_view what = "batch");

  // True after a call found the connection lost (the server went away or
  // closed it).
  bool lost() const { return lost_; }

  // True when lost, or when the connection is not idle between calls (a
  // transaction left open): a pool discards it rather than reuse it.
  bool broken() const;

  // The database as "host:port/dbname" (no password), for messages.
  const std::string& database() const { return database_; }

  // The server process serving this connection (pg_backend_pid()), e.g. to
  // name it in pg_terminate_backend.
  int BackendPid() const;

  // The setting name errors carry in `field`.
  const std::string& setting() const { return setting_; }

 private:
  friend class ConnectionPool;
  friend class Transaction;
  Connection(pg_conn* conn, std::string database, std::string setting);
  // Reads what the server sent while the connection sat idle (without
  // blocking); false when that shows it is gone.
  bool StillOpen();
  // The error for a failed call; marks the connection broken when it was
  // lost.
  Error Fail(const pg_result* result, std::string_view what);
  // The prepared statement's name for `sql`, preparing it if needed.
  Result<std::string> Prepared(std::string_view sql, int n_params, std::string_view what);

  pg_conn* conn_;
  std::string database_;
  std::string setting_;
  bool lost_ = false;
  std::map<std::string, std::string, std::less<>> prepared_;  // sql → statement name
};

// A transaction on one connection: BEGIN in Begin(), COMMIT in Commit(),
// ROLLBACK in the destructor unless committed (errors there are ignored: a
// lost connection has rolled back by itself). Move-only; the connection must
// outlive it.
class Transaction {
 public:
  // BEGIN, or BEGIN ISOLATION LEVEL SERIALIZABLE when `serializable`.
  // Errors: the map above.
  static Result<Transaction> Begin(Connection& connection, bool serializable = false);
  ~Transaction();
  Transaction(Transaction&& other) noexcept;
  Transaction& operator=(Transaction&&) = delete;
  Transaction(const Transaction&) = delete;

  // COMMIT. After an error the transaction is over (rolled back by the
  // server). Errors: the map above; 40001 at commit is "database_busy".
  Result<void> Commit();

 private:
  explicit Transaction(Connection& connection) : connection_(&connection) {}
  Connection* connection_;  // null once committed or moved from
};

// --- pool ---------------------------------------------------------------------------

struct PoolOptions {
  std::string conninfo;  // libpq URI or keyword/value string
  // Connections at most, 1–64. A call waiting for one waits up to
  // `acquire_timeout`.
  int size = 4;
  std::chrono::milliseconds acquire_timeout{std::chrono::seconds(10)};
  // The variable the connection string came from, named in errors.
  std::string setting = "POSTLINE_DATABASE_URL";
};

class ConnectionPool;

// A connection borrowed from a pool; given back (or, when broken,
// discarded) by the destructor. Move-only.
class Lease {
 public:
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&&) = delete;
  Lease(const Lease&) = delete;
  ~Lease();

  Connection& operator*() const { return *connection_; }
  Connection* operator->() const { return connection_.get(); }
  // True when the connection was opened for this lease (not reused).
  bool fresh() const { return fresh_; }

 private:
  friend class ConnectionPool;
  Lease(ConnectionPool* pool, std::unique_ptr<Connection> connection, bool fresh)
      : pool_(pool), connection_(std::move(connection)), fresh_(fresh) {}
  ConnectionPool* pool_;
  std::unique_ptr<Connection> connection_;
  bool fresh_;
};

// At most `size` connections to one database, opened on demand and reused.
// A connection that broke (lost, or not idle when given back) is discarded
// and a new one is opened on a later Acquire; an idle connection whose
// server went away meanwhile (a restart, pg_terminate_backend) is noticed
// when it is taken and replaced. Thread-safe. Leases must be destroyed
// before the pool.
class ConnectionPool {
 public:
  // Checks the options (does not connect). Errors: "invalid_database_url";
  // kInvalidInput "invalid_pool_size" when size is not 1–64.
  static Result<std::shared_ptr<ConnectionPool>> Create(PoolOptions options);
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  // An idle connection, or a new one when fewer than `size` exist; waits up
  // to acquire_timeout for one to be given back. Errors:
  // "database_unavailable" when connecting fails; "database_busy" when none
  // came free in time.
  Result<Lease> Acquire();

  // Runs `fn(connection)` on a leased connection. When fn fails with
  // "database_unavailable" on a reused connection (the server dropped it
  // while it sat idle), the connection is discarded and fn runs once more on
  // a new one — so fn must be safe to repeat (idempotent writes, reads).
  // Returns fn's result, or Acquire's error.
  template <typename T, typename Fn>
  Result<T> Run(Fn&& fn) {
    for (int attempt = 0;; ++attempt) {
      auto lease = Acquire();
      if (!lease) return std::unexpected(lease.error());
      Result<T> result = fn(**lease);
      if (result || attempt > 0 || lease->fresh() || !(*lease)->lost()) return result;
    }
  }

  // The database as "host:port/dbname" (no password).
  const std::string& database() const { return database_; }
  const PoolOptions& options() const { return options_; }

  // Connections open now (idle + leased), for tests and metrics.
  int open_connections() const;

 private:
  friend class Lease;
  explicit ConnectionPool(PoolOptions options);
  void GiveBack(std::unique_ptr<Connection> connection);

  const PoolOptions options_;
  const std::string database_;
  mutable std::mutex mu_;
  std::condition_variable freed_;
  std::vector<std::unique_ptr<Connection>> idle_;  // mu_
  int open_ = 0;                                   // mu_: idle + leased + being opened
};

// --- migrations -----------------------------------------------------------------------

// One schema change: `version` (1, 2, 3, … without gaps) and the SQL that
// takes the schema from version − 1 to it.
struct Migration {
  int version;
  std::string_view sql;
};

// Brings `component`'s schema ("state", "queue") to the last of
// `migrations` (sorted by version, starting at 1): inside ONE transaction
// holding a transaction-level advisory lock on the component (so starters
// racing on a fresh database wait for each other instead of colliding), it
// creates the table postline_schema (component text primary key, version
// integer, updated_at timestamptz) when missing, reads the component's
// version and applies the migrations above it, then records the new version.
// Any failure rolls everything back. Returns the version now in place.
// Errors: kPermanent "schema_too_new" ("schema version N of <component> in
// <database> is newer than this program's M; upgrade postline") when the
// database was migrated by a newer postline; the map above otherwise.
Result<int> Migrate(Connection& connection, std::string_view component,
                    std::span<const Migration> migrations);

// The advisory-lock key postline uses for `name` (a stable 64-bit hash), for
// pg_advisory_xact_lock / pg_try_advisory_xact_lock. Pure.
std::int64_t AdvisoryLockKey(std::string_view name);

}  // namespace postline::pg
