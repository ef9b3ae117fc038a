// Internal: the small SQLite helpers shared by the stores that keep state in
// <data dir>/state.db (sent log, status store). Not a public header.
#pragma once

#include <fmt/format.h>
#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "postline/error.h"

namespace postline::sqlite {

// A failed SQLite call as kTransient "ServiceUnavailable": busy, locked, full
// and I/O errors clear by themselves or by an operator's hand. `store` names
// the store in the message ("sent log", "status store").
inline Error ServiceUnavailable(sqlite3* db, int rc, std::string_view store,
                                std::string_view what) {
  const char* msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return Error{ErrorKind::kTransient, "ServiceUnavailable",
               fmt::format("{}: {} failed: {}", store, what, msg), "POSTLINE_DATA_DIR"};
}

// Prepared statements kept for the life of a connection
// (SQLITE_PREPARE_PERSISTENT), keyed by their SQL text, so a hot path does
// not parse its SQL on every call. Used under the connection's mutex; at most
// one Statement per SQL text at a time. Declare it after the connection it
// belongs to: sqlite3_close_v2 waits for the statements it finalizes.
class StatementCache {
 public:
  explicit StatementCache(sqlite3* db) : db_(db) {}
  ~StatementCache() {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  }
  StatementCache(const StatementCache&) = delete;
  StatementCache& operator=(const StatementCache&) = delete;

  // The statement for `sql`, reset and with its bindings cleared; nullptr
  // when it cannot be prepared (sqlite3_errmsg says why).
  sqlite3_stmt* Get(const char* sql) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
      sqlite3_finalize(stmt);
      return nullptr;
    }
    statements_.emplace(sql, stmt);
    return stmt;
  }

 private:
  sqlite3* db_;
  std::map<std::string, sqlite3_stmt*, std::less<>> statements_;
};

// Opens (creating it and its directory if needed) a state database for
// `store` ("sent log", "status store"), sets the busy timeout in
// milliseconds and runs `schema` (its PRAGMAs and CREATE … IF NOT EXISTS).
// The caller owns the returned connection (sqlite3_close_v2). Errors:
// kTransient "ServiceUnavailable" naming the store and the file.
inline Result<sqlite3*> OpenStateDatabase(const std::string& path, std::string_view store,
                                          int busy_timeout_ms, const char* schema) {
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  sqlite3* db = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &db,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                 nullptr);
  if (rc != SQLITE_OK) {
    Error e = ServiceUnavailable(db, rc, store, fmt::format("open \"{}\"", path));
    sqlite3_close_v2(db);
    return std::unexpected(e);
  }
  sqlite3_busy_timeout(db, busy_timeout_ms);
  char* err = nullptr;
  if (sqlite3_exec(db, schema, nullptr, nullptr, &err) != SQLITE_OK) {
    Error e{ErrorKind::kTransient, "ServiceUnavailable",
            fmt::format("{}: cannot initialise \"{}\": {}", store, path, err ? err : "unknown"),
            "POSTLINE_DATA_DIR"};
    sqlite3_free(err);
    sqlite3_close_v2(db);
    return std::unexpected(e);
  }
  return db;
}

// A prepared statement: prepared for this use and finalized on scope exit,
// or borrowed from a StatementCache and reset on scope exit. Not copyable;
// used by one thread at a time (callers hold their connection's mutex).
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  Statement(StatementCache& cache, const char* sql) : cache_(&cache) {
    stmt_ = cache.Get(sql);
    if (stmt_ == nullptr) rc_ = SQLITE_ERROR;
  }
  ~Statement() {
    if (cache_ == nullptr) {
      sqlite3_finalize(stmt_);
    } else if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return rc_ == SQLITE_OK; }
  sqlite3_stmt* get() { return stmt_; }

  // Binds (1-based index); text is copied by SQLite.
  void Text(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void Int(int i, std::int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Null(int i) { sqlite3_bind_null(stmt_, i); }

  // Columns (0-based) of the current row.
  std::string ColumnText(int i) {
    auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p ? std::string(p, sqlite3_column_bytes(stmt_, i)) : std::string();
  }
  std::int64_t ColumnInt(int i) { return sqlite3_column_int64(stmt_, i); }
  bool ColumnIsNull(int i) { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
  StatementCache* cache_ = nullptr;  // non-null: borrowed
  int rc_ = SQLITE_OK;
};

}  // namespace postline::sqlite
