#include "testing/aws_peers.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "postline/json.h"

namespace postline::testing_support {

AwsPeers::AwsPeers(std::vector<std::string> args) {
  const char* source = std::getenv("POSTLINE_SOURCE_DIR");
  std::string script =
      std::string(source ? source : POSTLINE_SOURCE_DIR) + "/tests/peers/aws_peers.mjs";
  int out[2], in[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(in, O_CLOEXEC) != 0) {
    error_ = "pipe failed";
    return;
  }
  std::vector<std::string> argv_strings = {"node", script};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  pid_ = fork();
  if (pid_ == 0) {
    dup2(out[1], 1);
    dup2(in[0], 0);
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    execvp("node", argv.data());
    _exit(127);
  }
  close(out[1]);
  close(in[0]);
  stdin_fd_ = in[1];
  std::string line;
  char c;
  pollfd p{out[0], POLLIN, 0};
  while (poll(&p, 1, 20000) > 0 && read(out[0], &c, 1) == 1) {
    if (c == '\n') break;
    line += c;
  }
  close(out[0]);
  auto announce = ParseJson(line, {.document = "the aws_peers.mjs announce line"});
  endpoint_ = announce ? JsonString(*announce, "endpoint") : std::string();
  if (endpoint_.empty()) {
    error_ =
        "aws_peers.mjs did not start (run scripts/bootstrap for tests/peers/node_modules): " + line;
    return;
  }
}

AwsPeers::~AwsPeers() {
  if (stdin_fd_ >= 0) close(stdin_fd_);
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

std::shared_ptr<aws::AwsClient> AwsPeers::Client(const std::string& service,
                                                 const std::string& session_token) const {
  aws::AwsClientOptions options;
  options.service = service;
  options.region = kTestRegion;
  options.endpoint = endpoint_;
  options.credentials = aws::NewStaticCredentials(aws::Credentials{
      kTestAccessKeyId, kTestSecretAccessKey, session_token, std::nullopt, "test"});
  return std::make_shared<aws::AwsClient>(options);
}

std::shared_ptr<SqsQueueService> AwsPeers::SqsService() const {
  SqsOptions options;
  options.client = Client("sqs");
  return NewSqsQueueService(options);
}

}  // namespace postline::testing_support
