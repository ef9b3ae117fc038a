// Test support: a throwaway PostgreSQL server for the lifetime of the object.
//
//   auto server = PostgresServer::Start();
//   if (!server) GTEST_SKIP() << server.error();
//   auto url = (*server)->CreateDatabase("conformance");
//
// Start() runs initdb into a new temporary folder (UTF8, the C locale,
// password authentication over TCP), then `pg_ctl start` (fsync=on) with the
// server listening on 127.0.0.1 on a free port and its unix socket in that
// folder. PostgreSQL refuses to run as root: when the test runs as root the
// folder is given to the `postgres` user and the programs run through
// `runuser -u postgres --`. The destructor stops the server (`pg_ctl stop -m
// immediate`: no checkpoint for a cluster about to be deleted) and removes the
// folder.
//
// The programs come from POSTLINE_PG_BIN, else /usr/lib/postgresql/15/bin
// (Debian's postgresql-15; scripts/bootstrap installs it).
//
// Thread-safety: one thread at a time; the databases themselves may be used
// from any thread or process.
#pragma once

#include <expected>
#include <memory>
#include <string>
#include <string_view>

namespace postline::testing_support {

class PostgresServer {
 public:
  // The running server, or why it could not start: "PostgreSQL is not
  // installed (…)" when initdb is missing, else the failing step with the
  // tail of its log.
  static std::expected<std::unique_ptr<PostgresServer>, std::string> Start();

  ~PostgresServer();
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Creates database `name` (letters, digits, '_') and returns its libpq URI
  // postgresql://postgres:<password>@127.0.0.1:<port>/<name>. An existing
  // database of that name is dropped first. Errors: the server's message.
  std::expected<std::string, std::string> CreateDatabase(std::string_view name);

  // The URI of database `name` (which need not exist).
  std::string Url(std::string_view name) const;

  int port() const { return port_; }
  const std::string& password() const { return password_; }
  // The folder holding the cluster (data/), its socket and logs.
  const std::string& dir() const { return dir_; }

 private:
  PostgresServer() = default;

  std::string bin_;
  std::string dir_;
  std::string password_;
  int port_ = 0;
  bool running_ = false;
};

// The folder of PostgreSQL's programs, or "" when initdb is not there.
std::string PostgresBinDir();

// One server for the whole test program, started on first use and stopped
// when the program exits normally; each test makes its own database with
// CreateDatabase. nullptr, with the reason in *why, when it cannot start
// (the reason is kept: later calls fail the same way without retrying).
PostgresServer* SharedPostgresServer(std::string* why);

}  // namespace postline::testing_support
