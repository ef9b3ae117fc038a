// Unit tests of the aws module: shared files, endpoints, queue URLs, the SQS
// attribute MD5, backoff, and — against a small HTTP server on 127.0.0.1 —
// the container and IMDSv2 credential sources, retries and stop.
#include "postline/aws.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "postline/blob_store.h"
#include "postline/sqs.h"

namespace postline::aws {
namespace {

// A one-connection-at-a-time HTTP/1.1 server; `handler` answers each request
// (method, path, headers lowercased, body) with (status, body).
class TinyHttpServer {
 public:
  struct Request {
    std::string method, path, body;
    std::map<std::string, std::string> headers;
  };
  using Handler = std::function<std::pair<int, std::string>(const Request&)>;

  explicit TinyHttpServer(Handler handler) : handler_(std::move(handler)) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(fd_, 16);
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~TinyHttpServer() {
    stopping_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string url() const { return fmt::format("http://127.0.0.1:{}", port_); }
  int requests() const { return requests_; }

 private:
  void Serve() {
    while (!stopping_) {
      int c = accept(fd_, nullptr, nullptr);
      if (c < 0) return;
      std::string data;
      char buf[4096];
      size_t header_end;
      while ((header_end = data.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        data.append(buf, static_cast<size_t>(n));
      }
      if (header_end == std::string::npos) {
        close(c);
        continue;
      }
      Request req;
      std::istringstream head(data.substr(0, header_end));
      std::string line;
      std::getline(head, line);
      std::istringstream first(line);
      first >> req.method >> req.path;
      while (std::getline(head, line)) {
        auto colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        std::string value = line.substr(colon + 1);
        while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
        while (!value.empty() && (value.back() == '\r')) value.pop_back();
        req.headers[name] = value;
      }
      size_t length =
          req.headers.count("content-length") ? std::stoul(req.headers["content-length"]) : 0;
      req.body = data.substr(header_end + 4);
      while (req.body.size() < length) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n <= 0) break;
        req.body.append(buf, static_cast<size_t>(n));
      }
      ++requests_;
      auto [status, body] = handler_(req);
      if (status == 0) {  // never answer (until the client gives up)
        while (read(c, buf, sizeof buf) > 0) {
        }
        close(c);
        continue;
      }
      std::string out = fmt::format(
          "HTTP/1.1 {} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\n"
          "Connection: close\r\n\r\n{}",
          status, body.size(), body);
      (void)!write(c, out.data(), out.size());
      close(c);
    }
  }

  Handler handler_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_ = false;
  std::atomic<int> requests_ = 0;
  std::thread thread_;
};

class TempHome {
 public:
  TempHome() {
    char tmpl[] = "/tmp/postline-aws-XXXXXX";
    path_ = mkdtemp(tmpl);
    std::filesystem::create_directories(path_ + "/.aws");
  }
  ~TempHome() { std::filesystem::remove_all(path_); }
  void Write(const std::string& relative, const std::string& text) {
    std::ofstream(path_ + "/" + relative) << text;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(SqsAttributesMd5, MatchesTheReferenceImplementation) {
  // Reference: aws-md5-of-message-attributes (npm), the algorithm of the AWS
  // SDKs, for these three attributes (String, Number, Binary).
  MessageAttributes attributes;
  attributes["priority"] = {"Number", "5"};
  attributes["kind"] = {"String", "invoice"};
  attributes["blob"] = {"Binary", std::string("\x00\xFF\x01", 3)};
  EXPECT_EQ(SqsAttributesMd5(attributes), "47d8c7e4ab9003e402d30e7e096d0261");
  attributes["kind"].value = "invoicf";
  EXPECT_NE(SqsAttributesMd5(attributes), "47d8c7e4ab9003e402d30e7e096d0261");
  EXPECT_EQ(SqsAttributesMd5({}), "");
}

TEST(ParseSqsQueueUrl, AcceptsTheGuideFormAndCustomEndpoints) {
  auto aws = ParseSqsQueueUrl(
      "https://sqs.eu-west-1.amazonaws.com/123456789012/invoice-generation-queue", false, "X");
  ASSERT_TRUE(aws) << aws.error().ToString();
  EXPECT_EQ(aws->region, "eu-west-1");
  EXPECT_EQ(aws->account_id, "123456789012");
  EXPECT_EQ(aws->name, "invoice-generation-queue");
  auto local = ParseSqsQueueUrl("http://127.0.0.1:9324/000000000000/q", true, "X");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->name, "q");
  EXPECT_FALSE(ParseSqsQueueUrl("http://127.0.0.1:9324/000000000000/q", false, "X"));
  // The guide's placeholder "account" is not an account id.
  auto placeholder =
      ParseSqsQueueUrl("https://sqs.us-east-1.amazonaws.com/account/invoice-generation-queue",
                       false, "SQS_REGULAR_QUEUE_URL");
  ASSERT_FALSE(placeholder);
  EXPECT_EQ(placeholder.error().field, "SQS_REGULAR_QUEUE_URL");
  EXPECT_FALSE(
      ParseSqsQueueUrl("https://sqs.us-east-1.amazonaws.com/123456789012/bad name", false, "X"));
  EXPECT_FALSE(ParseSqsQueueUrl("ftp://x/1/q", true, "X"));
}

TEST(AwsIni, ParsesProfilesCommentsAndNestedBlocks) {
  auto ini = ParseAwsIni(
      "# comment\n[default]\nregion = us-east-1\n\n[profile b]\nAWS_Access_Key_ID=AK ; x\n"
      "s3 =\n  addressing_style = path\n");
  ASSERT_TRUE(ini) << ini.error().ToString();
  EXPECT_EQ((*ini)["default"]["region"], "us-east-1");
  EXPECT_EQ((*ini)["profile b"]["s3.addressing_style"], "path");
  EXPECT_FALSE(ParseAwsIni("[open\n"));
  EXPECT_FALSE(ParseAwsIni("key = outside a section\n"));
}

TEST(ResolveRegionAndEndpoint, FollowTheirPrecedence) {
  TempHome home;
  home.Write(".aws/config", "[profile work]\nregion = eu-central-1\nendpoint_url = http://x:1/\n");
  AwsOptions o;
  o.home = home.path();
  o.profile = "work";
  EXPECT_EQ(*ResolveRegion(o), "eu-central-1");
  EXPECT_EQ(ResolveEndpoint(o, "sqs", "eu-central-1"), "http://x:1");
  o.region = "us-west-2";
  EXPECT_EQ(*ResolveRegion(o), "us-west-2");
  o.endpoint = "http://proxy:8080";
  EXPECT_EQ(ResolveEndpoint(o, "sqs", "us-west-2"), "http://proxy:8080");
  o.service_endpoints["sqs"] = "http://sqs-only:1";
  EXPECT_EQ(ResolveEndpoint(o, "sqs", "us-west-2"), "http://sqs-only:1");
  EXPECT_EQ(ResolveEndpoint(o, "ses", "us-west-2"), "http://proxy:8080");
  AwsOptions bare;
  bare.home = home.path();
  EXPECT_EQ(ResolveEndpoint(bare, "sqs", "us-east-1"), "https://sqs.us-east-1.amazonaws.com");
  EXPECT_EQ(ResolveEndpoint(bare, "ses", "us-east-1"), "https://email.us-east-1.amazonaws.com");
  auto missing = ResolveRegion(bare);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().field, "AWS_REGION");
}

TEST(CredentialsChain, EnvironmentThenSharedFiles) {
  TempHome home;
  home.Write(".aws/credentials",
             "[default]\naws_access_key_id = AKDEFAULT\naws_secret_access_key = s1\n"
             "[ops]\naws_access_key_id = AKOPS\naws_secret_access_key = s2\n"
             "aws_session_token = tok\n");
  AwsOptions o;
  o.home = home.path();
  o.imds_disabled = true;
  auto c = NewDefaultCredentialsChain(o)->Get();
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->access_key_id, "AKDEFAULT");
  EXPECT_EQ(c->source, "shared-files");
  o.profile = "ops";
  c = NewDefaultCredentialsChain(o)->Get();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key_id, "AKOPS");
  EXPECT_EQ(c->session_token, "tok");
  o.access_key_id = "AKENV";
  o.secret_access_key = "s3";
  c = NewDefaultCredentialsChain(o)->Get();
  ASSERT_TRUE(c);
  EXPECT_EQ(c->access_key_id, "AKENV");
  EXPECT_EQ(c->source, "environment");
  AwsOptions none;
  none.home = home.path() + "/nowhere";
  none.imds_disabled = true;
  auto missing = NewDefaultCredentialsChain(none)->Get();
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, "no_credentials");
}

TEST(CredentialsChain, ContainerCredentialsWithAuthorization) {
  TinyHttpServer server([](const TinyHttpServer::Request& r) -> std::pair<int, std::string> {
    if (r.path != "/v2/credentials/abc") return {404, "{}"};
    if (r.headers.count("authorization") == 0 || r.headers.at("authorization") != "secret-token") {
      return {401, "{}"};
    }
    return {200, R"({"AccessKeyId":"ASIACONTAINER","SecretAccessKey":"cs","Token":"ct",)"
                 R"("Expiration":"2099-01-01T00:00:00Z"})"};
  });
  AwsOptions o;
  o.home = "/nonexistent";
  o.imds_disabled = true;
  o.container_relative_uri = "/v2/credentials/abc";
  o.container_host = server.url();
  o.container_authorization_token = "secret-token";
  auto chain = NewDefaultCredentialsChain(o);
  auto c = chain->Get();
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->access_key_id, "ASIACONTAINER");
  EXPECT_EQ(c->session_token, "ct");
  EXPECT_EQ(c->source, "container");
  ASSERT_TRUE(c->expiration.has_value());
  // Cached until shortly before expiry: no second request.
  ASSERT_TRUE(chain->Get());
  EXPECT_EQ(server.requests(), 1);
}

TEST(CredentialsChain, ImdsV2UsesASessionToken) {
  TinyHttpServer server([](const TinyHttpServer::Request& r) -> std::pair<int, std::string> {
    if (r.method == "PUT" && r.path == "/latest/api/token") {
      if (!r.headers.count("x-aws-ec2-metadata-token-ttl-seconds")) return {400, ""};
      return {200, "imds-token"};
    }
    if (!r.headers.count("x-aws-ec2-metadata-token") ||
        r.headers.at("x-aws-ec2-metadata-token") != "imds-token") {
      return {401, ""};  // IMDSv1 requests are refused
    }
    if (r.path == "/latest/meta-data/iam/security-credentials/") return {200, "worker-role"};
    if (r.path == "/latest/meta-data/iam/security-credentials/worker-role") {
      return {200, R"({"Code":"Success","AccessKeyId":"ASIAIMDS","SecretAccessKey":"is",)"
                   R"("Token":"it","Expiration":"2099-01-01T00:00:00Z"})"};
    }
    return {404, ""};
  });
  AwsOptions o;
  o.home = "/nonexistent";
  o.imds_endpoint = server.url();
  auto c = NewDefaultCredentialsChain(o)->Get();
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(c->access_key_id, "ASIAIMDS");
  EXPECT_EQ(c->session_token, "it");
  EXPECT_EQ(c->source, "imds");
}

AwsClientOptions ClientFor(const std::string& endpoint) {
  AwsClientOptions o;
  o.service = "sqs";
  o.region = "us-east-1";
  o.endpoint = endpoint;
  o.credentials = NewStaticCredentials({"AK", "SK", "", std::nullopt, "test"});
  o.retry.base = std::chrono::milliseconds(1);
  o.retry.throttling_base = std::chrono::milliseconds(1);
  return o;
}

TEST(AwsClient, RetriesThrottlingAndServerErrorsAtMostThreeTimes) {
  std::atomic<int> calls = 0;
  TinyHttpServer server([&](const TinyHttpServer::Request& r) -> std::pair<int, std::string> {
    EXPECT_NE(r.headers.count("authorization"), 0u);  // signed by libcurl
    int n = ++calls;
    if (r.path == "/flaky") {
      if (n == 1)
        return {400, R"({"__type":"com.amazonaws.sqs#ThrottlingException","message":"slow down"})"};
      if (n == 2) return {503, "{}"};
      return {200, R"({"ok":true})"};
    }
    if (r.path == "/down") return {500, R"({"__type":"InternalError"})"};
    return {400, R"({"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"gone"})"};
  });
  AwsClient client(ClientFor(server.url()));
  HttpRequest request;
  request.path = "/flaky";
  auto ok = client.Send(request);
  ASSERT_TRUE(ok) << ok.error().ToString();
  EXPECT_EQ(calls, 3);
  calls = 0;
  request.path = "/down";
  auto down = client.Send(request);
  ASSERT_FALSE(down);
  EXPECT_EQ(down.error().kind, ErrorKind::kTransient);
  EXPECT_EQ(calls, 3);  // max 3 attempts
  calls = 0;
  request.path = "/missing";
  ServiceError se;
  auto missing = client.Send(request, nullptr, {}, &se);
  ASSERT_FALSE(missing);
  EXPECT_EQ(calls, 1);  // not retryable
  EXPECT_EQ(se.code, "QueueDoesNotExist");
  EXPECT_EQ(missing.error().kind, ErrorKind::kInvalidInput);
}

TEST(AwsClient, StopAbandonsARequestInFlight) {
  TinyHttpServer server([](const TinyHttpServer::Request&) -> std::pair<int, std::string> {
    return {0, ""};  // never answers
  });
  AwsClient client(ClientFor(server.url()));
  HttpRequest request;
  request.timeout_ms = 60000;
  std::stop_source stop;
  std::jthread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    stop.request_stop();
  });
  auto r = client.Send(request, nullptr, stop.get_token());
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, "stopped");
}

TEST(FullJitterBackoff, StaysWithinTheExponentialCeiling) {
  std::mt19937_64 random(42);
  using std::chrono::milliseconds;
  for (int attempt = 0; attempt < 12; ++attempt) {
    const long long ceiling = std::min<long long>(20000, 1000LL << attempt);
    for (int i = 0; i < 200; ++i) {
      auto d = FullJitterBackoff(attempt, milliseconds(1000), milliseconds(20000), random);
      EXPECT_GE(d.count(), 0);
      EXPECT_LT(d.count(), ceiling);
    }
  }
}

TEST(Base64, RoundTrips) {
  for (std::string s : {std::string(), std::string("a"), std::string("ab"), std::string("abc"),
                        std::string("\x00\xFF\x10 binary", 10)}) {
    auto back = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(Base64Encode("hello"), "aGVsbG8=");
  EXPECT_FALSE(Base64Decode("a*b"));
}

TEST(FolderBlobStore, PutGetDelete) {
  TempHome dir;
  auto store = NewFolderBlobStore(dir.path() + "/blobs");
  ASSERT_TRUE(store->Put("k1", std::string("\x00pdf", 4)));
  auto got = store->Get("k1");
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, std::string("\x00pdf", 4));
  ASSERT_TRUE(store->Delete("k1"));
  EXPECT_EQ(store->Get("k1").error().code, "blob_not_found");
  EXPECT_TRUE(store->Delete("k1"));
  EXPECT_FALSE(store->Put("../escape", "x"));
}

// A memory queue that takes at most 1 KB, behind an OffloadingQueue with a
// folder blob store in a temporary home.
struct OffloadingFixture {
  TempHome dir;
  std::shared_ptr<QueueService> service = NewMemoryQueueService();
  std::shared_ptr<Queue> queue;
  OffloadingFixture() {
    QueueAttributes attributes;
    attributes.maximum_message_size = 1024;
    queue = NewOffloadingQueue(*service->CreateQueue("small", attributes),
                               NewFolderBlobStore(dir.path() + "/blobs"));
  }
};

TEST(OffloadingQueue, LargeBodiesTravelThroughTheBlobStore) {
  OffloadingFixture fixture;
  auto& dir = fixture.dir;
  auto& queue = fixture.queue;
  SendMessageRequest big;
  big.body = std::string(5000, 'x');
  big.attributes["k"] = {"String", "v"};
  auto sent = queue->SendMessage(big);
  ASSERT_TRUE(sent) << sent.error().ToString();
  EXPECT_EQ(sent->md5_of_body, Md5Hex(big.body));
  SendMessageRequest small;
  small.body = "tiny";
  ASSERT_TRUE(queue->SendMessage(small));
  ReceiveMessageRequest receive;
  receive.max_number_of_messages = 10;
  auto got = queue->ReceiveMessage(receive);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 2u);
  int blob_files = 0;
  for (auto& entry : std::filesystem::directory_iterator(dir.path() + "/blobs")) {
    (void)entry;
    ++blob_files;
  }
  EXPECT_EQ(blob_files, 1);
  for (const auto& m : *got) {
    if (m.body.size() == 5000) {
      EXPECT_EQ(m.body, big.body);
      EXPECT_EQ(m.attributes, big.attributes);  // the pointer attribute is removed
    } else {
      EXPECT_EQ(m.body, "tiny");
    }
    ASSERT_TRUE(queue->DeleteMessage(m.receipt_handle));
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path() + "/blobs"));
}

// The bulk path: a producer checking requests against the decorated queue's
// configuration accepts a body above the inner MaximumMessageSize, and
// SendMessages offloads it like SendMessage does.
TEST(OffloadingQueue, SendMessagesOffloadsLargeBodies) {
  OffloadingFixture fixture;
  auto& dir = fixture.dir;
  auto& queue = fixture.queue;
  std::vector<SendMessageRequest> requests(12);
  for (std::size_t i = 0; i < requests.size(); ++i) requests[i].body = fmt::format("m{}", i);
  requests[3].body = std::string(5000, 'y');
  auto configuration = queue->GetQueueConfiguration();
  ASSERT_TRUE(configuration);
  for (const auto& r : requests) EXPECT_TRUE(ValidateSendMessageRequest(r, *configuration));
  auto sent = queue->SendMessages(requests);
  ASSERT_TRUE(sent) << sent.error().ToString();
  ASSERT_EQ(sent->size(), requests.size());
  for (std::size_t i = 0; i < sent->size(); ++i) {
    ASSERT_TRUE((*sent)[i]) << (*sent)[i].error().ToString();
    EXPECT_EQ((*sent)[i]->md5_of_body, Md5Hex(requests[i].body));
  }
  std::set<std::string> bodies;
  while (true) {
    ReceiveMessageRequest receive;
    receive.max_number_of_messages = 10;
    auto got = queue->ReceiveMessage(receive);
    ASSERT_TRUE(got);
    if (got->empty()) break;
    for (const auto& m : *got) {
      bodies.insert(m.body);
      ASSERT_TRUE(queue->DeleteMessage(m.receipt_handle));
    }
  }
  EXPECT_EQ(bodies.size(), requests.size());
  EXPECT_TRUE(bodies.contains(requests[3].body));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path() + "/blobs"));
}

// A pointer body whose "md5" was not a string made value() throw (the worker
// aborted on every receive); a bad pointer or a mismatching blob failed the
// whole receive, so the good messages received with it stayed in flight.
// Each now comes back as a body the worker dead-letters as unparseable.
TEST(OffloadingQueue, UnreadablePointersBecomeUnparseableBodiesNotFailedReceives) {
  OffloadingFixture fixture;
  auto blobs = NewFolderBlobStore(fixture.dir.path() + "/blobs");
  auto inner = fixture.service->GetQueue("small");
  ASSERT_TRUE(inner);
  ASSERT_TRUE(blobs->Put("kbad", "the stored body"));
  const std::string pointers[] = {
      R"({"postline_blob":{"key":"kbad","md5":5}})",
      R"({"postline_blob":"kbad"})",
      R"({"postline_blob":{"key":"kbad","size":1e400,"md5":"x"}})",
      std::string(200, '[') + std::string(200, ']'),
      R"({"postline_blob":{"key":"kbad","md5":"00000000000000000000000000000000"}})",
  };
  for (const auto& body : pointers) {
    SendMessageRequest req;
    req.body = body;
    req.attributes[std::string(kBlobAttribute)] = {"String", "kbad"};
    ASSERT_TRUE((*inner)->SendMessage(req));
  }
  SendMessageRequest good;
  good.body = "tiny";
  ASSERT_TRUE(fixture.queue->SendMessage(good));
  ReceiveMessageRequest receive;
  receive.max_number_of_messages = 10;
  auto got = fixture.queue->ReceiveMessage(receive);
  ASSERT_TRUE(got) << got.error().ToString();
  ASSERT_EQ(got->size(), std::size(pointers) + 1);
  int unreadable = 0;
  for (const auto& m : *got) {
    if (m.body == "tiny") continue;
    EXPECT_TRUE(m.body.starts_with("postline: large body kbad ")) << m.body;
    EXPECT_NE(m.body, "the stored body");
    ++unreadable;
  }
  EXPECT_EQ(unreadable, static_cast<int>(std::size(pointers)));
}

}  // namespace
}  // namespace postline::aws
