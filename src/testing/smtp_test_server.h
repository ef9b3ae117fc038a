// smtp_test_server.h — for tests: runs tests/peers/smtp_server.py as a child
// process on 127.0.0.1 (a free port), with its own temporary directory, and
// reads back what it received.
//
//   auto server = SmtpTestServer::Start({"--reject-rcpt", "bad@=550"});
//   ASSERT_TRUE(server.has_value()) << server.error();
//   settings.port = (*server)->port();
//   ...
//   EXPECT_EQ((*server)->MessageBytes(1), message.data);
//
// The destructor stops the server (SIGTERM, then SIGKILL after 10 s) and
// removes the temporary directory. Header-only so that other modules' tests
// can include it; needs POSTLINE_SOURCE_DIR and nlohmann_json.
//
// Thread-safety: one thread at a time.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <expected>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace postline::testing {

class SmtpTestServer {
 public:
  // Starts the server with `extra_args` (see the script's --help) in
  // addition to --host 127.0.0.1 --port 0 --maildir <tmp>/mail. The
  // argument "{tmp}" inside an extra argument is replaced by the server's
  // temporary directory. Returns the running server, or a description of why
  // it did not start (with the server's stderr).
  static std::expected<std::unique_ptr<SmtpTestServer>, std::string> Start(
      std::vector<std::string> extra_args = {}) {
    std::unique_ptr<SmtpTestServer> server(new SmtpTestServer());
    std::string templ = (std::filesystem::temp_directory_path() / "postline-smtp-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) return std::unexpected("mkdtemp failed");
    server->dir_ = templ;
    server->maildir_ = templ + "/mail";

    std::vector<std::string> args = {
        "/usr/bin/python3", std::string(POSTLINE_SOURCE_DIR) + "/tests/peers/smtp_server.py",
        "--host",           "127.0.0.1",
        "--port",           "0",
        "--maildir",        server->maildir_};
    for (std::string& a : extra_args) {
      for (size_t pos; (pos = a.find("{tmp}")) != std::string::npos;) a.replace(pos, 5, templ);
      args.push_back(std::move(a));
    }
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);

    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return std::unexpected("pipe failed");
    std::string log_path = templ + "/server.log";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(pipe_fds[1]);
    if (rc != 0) {
      ::close(pipe_fds[0]);
      return std::unexpected("posix_spawn of /usr/bin/python3 failed: " + std::to_string(rc));
    }
    server->pid_ = pid;

    // Read the announcement line: {"port": N, ...}.
    std::string line;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (line.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      pollfd p{pipe_fds[0], POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) continue;
      char buf[256];
      ssize_t n = ::read(pipe_fds[0], buf, sizeof buf);
      if (n <= 0) break;
      line.append(buf, static_cast<size_t>(n));
    }
    ::close(pipe_fds[0]);
    try {
      server->announce_ = nlohmann::json::parse(line.substr(0, line.find('\n')));
      server->port_ = server->announce_.at("port").get<int>();
    } catch (const std::exception& e) {
      return std::unexpected("SMTP test server did not announce its port (" +
                             std::string(e.what()) + "); its log:\n" + server->Log());
    }
    return server;
  }

  SmtpTestServer(const SmtpTestServer&) = delete;
  SmtpTestServer& operator=(const SmtpTestServer&) = delete;

  ~SmtpTestServer() {
    Stop();
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }

  // Sends SIGTERM and waits (SIGKILL after 10 s). Returns the exit status
  // as from waitpid, or -1 when the server was already stopped.
  int Stop() {
    if (pid_ <= 0) return -1;
    ::kill(pid_, SIGTERM);
    int status = 0;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (true) {
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_ || (r < 0 && errno != EINTR)) break;
      if (std::chrono::steady_clock::now() > deadline) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    return status;
  }

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  const std::string& maildir() const { return maildir_; }
  // The self-signed certificate (PEM) made by --self-signed-dir, or "".
  std::string cert_file() const { return announce_.value("cert", std::string()); }

  // The server's stderr so far.
  std::string Log() const { return ReadFile(dir_ + "/server.log"); }

  // Bytes of the seq-th accepted message (from 1), or "" when absent.
  std::string MessageBytes(int seq) const {
    return ReadFile(maildir_ + "/" + std::to_string(seq) + ".eml");
  }
  // The envelope sidecar of the seq-th accepted message (null when absent).
  nlohmann::json Envelope(int seq) const {
    std::string text = ReadFile(maildir_ + "/" + std::to_string(seq) + ".json");
    if (text.empty()) return nullptr;
    return nlohmann::json::parse(text);
  }
  // Number of accepted messages.
  int MessageCount() const {
    int count = 0;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(maildir_, ec)) {
      if (entry.path().extension() == ".eml") ++count;
    }
    return count;
  }
  // The recorded events (see the script), in order.
  std::vector<nlohmann::json> Events() const {
    std::vector<nlohmann::json> events;
    std::istringstream in(ReadFile(maildir_ + "/events.jsonl"));
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) events.push_back(nlohmann::json::parse(line));
    }
    return events;
  }
  // Number of recorded events of `kind` ("connection", "auth", ...).
  int CountEvents(const std::string& kind) const {
    int n = 0;
    for (const auto& e : Events()) n += e.value("event", std::string()) == kind ? 1 : 0;
    return n;
  }

 private:
  SmtpTestServer() = default;

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return {};
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
  }

  std::string dir_;
  std::string maildir_;
  nlohmann::json announce_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// A port on 127.0.0.1 with nothing listening (bound, then released).
inline int UnusedLoopbackPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  return port;
}

}  // namespace postline::testing
