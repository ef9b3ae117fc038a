// Test support: runs tests/peers/aws_peers.mjs (SQS and SES emulators behind
// a SigV4-checking proxy) for the lifetime of the object.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "postline/aws.h"
#include "postline/sqs.h"

namespace postline::testing_support {

// The credentials the proxy accepts.
inline constexpr const char* kTestAccessKeyId = "AKIDPOSTLINETEST";
inline constexpr const char* kTestSecretAccessKey = "postline/test/secret/key";
inline constexpr const char* kTestRegion = "us-east-1";

class AwsPeers {
 public:
  // `args`: aws_peers.mjs arguments, e.g. {"--sqs"}. On failure `ok()` is
  // false and `error()` says why (node missing, peers not installed).
  explicit AwsPeers(std::vector<std::string> args);
  ~AwsPeers();
  AwsPeers(const AwsPeers&) = delete;
  AwsPeers& operator=(const AwsPeers&) = delete;

  bool ok() const { return !endpoint_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& endpoint() const { return endpoint_; }  // the proxy

  // An SQS client through the proxy with the test credentials (and
  // `session_token` when not empty).
  std::shared_ptr<aws::AwsClient> Client(const std::string& service,
                                         const std::string& session_token = "") const;
  std::shared_ptr<SqsQueueService> SqsService() const;

 private:
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  std::string endpoint_;
  std::string error_;
};

}  // namespace postline::testing_support
