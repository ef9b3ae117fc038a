#include "testing/postgres_server.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <pwd.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <vector>

#include "postline/postgres.h"
#include "testing/smtp_test_server.h"

extern char** environ;

namespace postline::testing_support {
namespace {

namespace fs = std::filesystem;

std::string Tail(const std::string& path, std::size_t max_bytes = 2000) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  return text.size() > max_bytes ? text.substr(text.size() - max_bytes) : text;
}

// Runs `args` (as the postgres user when we are root) with stdout and stderr
// appended to `log`; returns the exit status (-1 when it could not start).
int Run(std::vector<std::string> args, const std::string& log) {
  if (::geteuid() == 0) {
    args.insert(args.begin(), {"/usr/sbin/runuser", "-u", "postgres", "--"});
  }
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Gives `path` to the postgres user when we run as root (PostgreSQL's
// programs refuse root, and the data folder must be theirs).
bool GiveToPostgres(const std::string& path) {
  if (::geteuid() != 0) return true;
  const passwd* pw = ::getpwnam("postgres");
  if (pw == nullptr) return false;
  return ::chown(path.c_str(), pw->pw_uid, pw->pw_gid) == 0;
}

std::string RandomPassword() {
  std::random_device rd;
  return fmt::format("pw-{:08x}{:08x}", rd(), rd());
}

}  // namespace

std::string PostgresBinDir() {
  const char* env = std::getenv("POSTLINE_PG_BIN");
  const std::string dir = env != nullptr && *env ? env : "/usr/lib/postgresql/15/bin";
  return ::access((dir + "/initdb").c_str(), X_OK) == 0 ? dir : "";
}

std::expected<std::unique_ptr<PostgresServer>, std::string> PostgresServer::Start() {
  const std::string bin = PostgresBinDir();
  if (bin.empty()) {
    return std::unexpected(
        "PostgreSQL is not installed (no initdb in /usr/lib/postgresql/15/bin or POSTLINE_PG_BIN; "
        "scripts/bootstrap installs postgresql)");
  }
  if (::geteuid() == 0 && ::getpwnam("postgres") == nullptr) {
    return std::unexpected("running as root and there is no postgres user to run PostgreSQL as");
  }
  std::unique_ptr<PostgresServer> server(new PostgresServer());
  server->bin_ = bin;
  std::string templ = (fs::temp_directory_path() / "postline-pg-XXXXXX").string();
  if (::mkdtemp(templ.data()) == nullptr) return std::unexpected("mkdtemp failed");
  server->dir_ = templ;
  if (!GiveToPostgres(templ)) return std::unexpected("cannot give " + templ + " to postgres");
  server->password_ = RandomPassword();

  const std::string pwfile = templ + "/pwfile";
  {
    std::ofstream out(pwfile);
    out << server->password_ << "\n";
  }
  GiveToPostgres(pwfile);
  const std::string log = templ + "/setup.log";
  { std::ofstream touch(log); }
  GiveToPostgres(log);
  // The server runs with fsync=on, so commits wait for the disk as in
  // production. initdb's own final sync of the new cluster (--no-sync skips
  // it, halving the start-up) protects only against a machine crash, after
  // which a test's temporary cluster is thrown away anyway.
  if (Run({bin + "/initdb", "-D", templ + "/data", "-U", "postgres", "--pwfile=" + pwfile,
           "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale",
           "--no-sync"},
          log) != 0) {
    return std::unexpected("initdb failed:\n" + Tail(log));
  }
  fs::remove(pwfile);
  // The port is free when chosen; another process may take it before the
  // server binds it, so try a few.
  for (int attempt = 0; attempt < 5 && !server->running_; ++attempt) {
    const int port = testing::UnusedLoopbackPort();
    const std::string options =
        fmt::format("-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=on -c max_connections=200",
                    port, templ);
    if (Run({bin + "/pg_ctl", "-D", templ + "/data", "-l", templ + "/server.log", "-w", "-t", "60",
             "-o", options, "start"},
            log) == 0) {
      server->port_ = port;
      server->running_ = true;
    }
  }
  if (!server->running_) {
    return std::unexpected("pg_ctl start failed:\n" + Tail(log) + "\n" +
                           Tail(templ + "/server.log"));
  }
  return server;
}

PostgresServer::~PostgresServer() {
  if (running_) {
    // Immediate: no shutdown checkpoint, the cluster is deleted next.
    Run({bin_ + "/pg_ctl", "-D", dir_ + "/data", "-m", "immediate", "-w", "-t", "60", "stop"},
        dir_ + "/setup.log");
  }
  std::error_code ec;
  if (!dir_.empty()) fs::remove_all(dir_, ec);
}

std::string PostgresServer::Url(std::string_view name) const {
  return fmt::format("postgresql://postgres:{}@127.0.0.1:{}/{}", password_, port_, name);
}

std::expected<std::string, std::string> PostgresServer::CreateDatabase(std::string_view name) {
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) {
      return std::unexpected(
          fmt::format("database name \"{}\": letters, digits and '_' only", name));
    }
  }
  auto admin = pg::Connection::Open(Url("postgres"));
  if (!admin) return std::unexpected(admin.error().ToString());
  for (const auto& sql : {fmt::format("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", name),
                          fmt::format("CREATE DATABASE \"{}\"", name)}) {
    if (auto done = (*admin)->ExecScript(sql, "create database"); !done) {
      return std::unexpected(done.error().ToString());
    }
  }
  return Url(name);
}

PostgresServer* SharedPostgresServer(std::string* why) {
  static auto* const started =
      new std::expected<std::unique_ptr<PostgresServer>, std::string>(PostgresServer::Start());
  // Stopped at exit (not by a static destructor: a forked test child that
  // leaves with _exit must not stop the parent's server).
  static const bool registered = [] {
    std::atexit([] { delete started; });
    return true;
  }();
  (void)registered;
  if (!*started) {
    if (why != nullptr) *why = started->error();
    return nullptr;
  }
  return started->value().get();
}

}  // namespace postline::testing_support
