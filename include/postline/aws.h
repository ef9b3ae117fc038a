// postline/aws.h — what every AWS call needs: credentials, region,
// endpoints, SigV4 signing and the SDKs' "standard" retry mode.
//
// Used only by the SQS queue backend (postline/sqs.h), the SES transport
// (postline/ses.h) and the S3 blob store (postline/blob_store.h).
//
// Credentials chain (the order of the AWS SDKs, "Standardized credential
// providers" in the AWS SDKs and Tools Reference Guide):
//   1. environment: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN)
//   2. shared files: ~/.aws/credentials and ~/.aws/config (AWS_SHARED_CREDENTIALS_FILE,
//      AWS_CONFIG_FILE), profile AWS_PROFILE or "default"; static keys only
//      (aws_access_key_id, aws_secret_access_key, aws_session_token)
//   3. ECS container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
//      (fetched from http://169.254.170.2<uri>) or AWS_CONTAINER_CREDENTIALS_FULL_URI
//      with the optional AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE) as Authorization
//   4. EC2 instance metadata, IMDSv2 (PUT /latest/api/token, then
//      GET /latest/meta-data/iam/security-credentials/[role]); skipped when
//      AWS_EC2_METADATA_DISABLED=true; AWS_EC2_METADATA_SERVICE_ENDPOINT overrides
//      http://169.254.169.254
// Temporary credentials (3, 4) are cached until 5 minutes before they expire.
//
// Signing: libcurl's CURLOPT_AWS_SIGV4 ("aws:amz:<region>:<service>"). With
// session credentials the X-Amz-Security-Token header is set before signing,
// so libcurl includes it in SignedHeaders (verified by the end-to-end tests
// against the AWS SDK for JavaScript's signer).
//
// Retries ("standard" mode of the AWS SDKs): at most 3 attempts; retried are
// throttling errors (HTTP 429, Throttling, ThrottlingException,
// RequestThrottled, TooManyRequestsException, SlowDown, …), HTTP 500/502/503/504
// and connection failures/timeouts; the delay before attempt n+1 is a random
// value in [0, min(20 s, 2^n × base)) (full jitter), base 1 s after a
// throttling error and 50 ms after any other (the SDKs' values). The optional
// retry quota (token bucket) is not implemented.
//
// Thread-safety: CredentialsProvider and AwsClient are safe to use from many
// threads at once.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "postline/clock.h"
#include "postline/error.h"

typedef void CURL;

namespace postline::aws {

// Everything AWS-related the entry point resolved from the environment and
// `.env`. Empty strings mean "not set".
struct AwsOptions {
  std::string region;             // AWS_REGION (or AWS_DEFAULT_REGION, or the profile's region)
  std::string access_key_id;      // AWS_ACCESS_KEY_ID
  std::string secret_access_key;  // AWS_SECRET_ACCESS_KEY
  std::string session_token;      // AWS_SESSION_TOKEN
  std::string profile;            // AWS_PROFILE (default "default")
  std::string endpoint;           // AWS_ENDPOINT (the guide's name) or AWS_ENDPOINT_URL
  std::map<std::string, std::string>
      service_endpoints;               // "sqs" → AWS_ENDPOINT_URL_SQS, "ses", "s3"
  std::string home;                    // HOME, for ~/.aws
  std::string config_file;             // AWS_CONFIG_FILE (default ~/.aws/config)
  std::string credentials_file;        // AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials)
  std::string container_relative_uri;  // AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
  std::string container_full_uri;      // AWS_CONTAINER_CREDENTIALS_FULL_URI
  std::string container_authorization_token;             // AWS_CONTAINER_AUTHORIZATION_TOKEN
  std::string container_authorization_token_file;        // AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
  std::string container_host = "http://169.254.170.2";   // base of the relative URI
  bool imds_disabled = false;                            // AWS_EC2_METADATA_DISABLED=true
  std::string imds_endpoint = "http://169.254.169.254";  // AWS_EC2_METADATA_SERVICE_ENDPOINT
};

// Fills AwsOptions from variables named as above (the process environment
// merged with `.env`; the caller merges). Never fails.
AwsOptions AwsOptionsFromVariables(const std::map<std::string, std::string>& variables);

// An INI file as the AWS shared files use it: section → key → value. Keys are
// lowercased; "#" and ";" start comments; indented lines continue a nested
// block (kept as "key.subkey"). Errors: kInvalidInput "invalid_aws_file"
// naming the line.
Result<std::map<std::string, std::map<std::string, std::string>>> ParseAwsIni(
    std::string_view text);

// The region: options.region, else the profile's "region" in the config file.
// Errors: kInvalidInput "missing_region" (field AWS_REGION) when neither is set.
Result<std::string> ResolveRegion(const AwsOptions& options);

// The endpoint base URL (scheme://host[:port][/path], no trailing slash) for
// `service` ("sqs", "ses", "s3"): the service's own variable, else
// AWS_ENDPOINT / AWS_ENDPOINT_URL, else the profile's endpoint_url, else the
// public AWS endpoint (https://sqs.<region>.amazonaws.com,
// https://email.<region>.amazonaws.com, https://s3.<region>.amazonaws.com).
std::string ResolveEndpoint(const AwsOptions& options, std::string_view service,
                            std::string_view region);

struct Credentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // empty for long-term keys
  // When temporary credentials expire; absent for long-term keys.
  std::optional<std::chrono::system_clock::time_point> expiration;
  std::string source;  // "environment", "shared-files", "container", "imds"
};

class CredentialsProvider {
 public:
  virtual ~CredentialsProvider() = default;
  // Current credentials. Errors: kPermanent "no_credentials" when no source
  // in the chain has any (the message lists what was tried); kTransient
  // "credentials_unavailable" when a source (container, IMDS) failed.
  virtual Result<Credentials> Get() = 0;
};

// The chain described at the top of this file. Files are read and endpoints
// contacted on the first Get(), not here.
std::shared_ptr<CredentialsProvider> NewDefaultCredentialsChain(
    const AwsOptions& options, std::shared_ptr<Clock> clock = SystemClock());

// Fixed credentials (tests, and callers that resolved them elsewhere).
std::shared_ptr<CredentialsProvider> NewStaticCredentials(Credentials credentials);

// An AWS service error, parsed from any of the protocols we speak: AWS JSON
// 1.0 ("__type", x-amzn-query-error), REST-JSON (X-Amzn-ErrorType,
// "message") and REST-XML (<Code>, <Message>).
struct ServiceError {
  long http_status = 0;  // 0: no HTTP response (connection failure, timeout)
  std::string code;      // e.g. "QueueDoesNotExist", "Throttling"; the short name
  std::string
      query_code;  // x-amzn-query-error's code, e.g. "AWS.SimpleQueueService.NonExistentQueue"
  std::string message;
  bool sender_fault = false;
};

// True for the throttling error codes of the standard retry mode.
bool IsThrottlingError(const ServiceError& error);
// True when the standard retry mode retries: throttling, HTTP 500/502/503/504,
// no response at all.
bool IsRetryableError(const ServiceError& error);

// Exponential backoff with full jitter: a uniformly random delay in
// [0, min(max_backoff, base × 2^attempt)), attempt counting from 0.
std::chrono::milliseconds FullJitterBackoff(int attempt, std::chrono::milliseconds base,
                                            std::chrono::milliseconds max_backoff,
                                            std::mt19937_64& random);

struct RetryPolicy {
  int max_attempts = 3;
  std::chrono::milliseconds throttling_base{1000};
  std::chrono::milliseconds base{50};
  std::chrono::milliseconds max_backoff{20000};
};

struct HttpRequest {
  std::string method = "POST";
  std::string path = "/";            // appended to the endpoint, e.g. "/v2/email/outbound-emails"
  std::vector<std::string> headers;  // "Name: value"
  std::string body;
  long timeout_ms = 30000;  // whole transfer
  long connect_timeout_ms = 5000;
};

struct HttpResponse {
  long status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // names lowercased
};

struct AwsClientOptions {
  std::string service;  // SigV4 service name: "sqs", "ses", "s3"
  std::string region;
  std::string endpoint;  // base URL (see ResolveEndpoint)
  std::shared_ptr<CredentialsProvider> credentials;
  RetryPolicy retry;
  std::shared_ptr<Clock> clock = SystemClock();
  // Called before each retry sleep (attempt number from 1, the error); for logs.
  std::function<void(int, const ServiceError&)> on_retry;
};

// A signed HTTP client for one service.
class AwsClient {
 public:
  explicit AwsClient(AwsClientOptions options);
  ~AwsClient();
  AwsClient(const AwsClient&) = delete;
  AwsClient& operator=(const AwsClient&) = delete;

  // Sends `request` signed with SigV4, retrying per the policy. A 2xx
  // response is returned as is. Non-2xx and transport failures: the last
  // ServiceError in `*service_error` (if not null) and an Error whose kind is
  // kTransient for retryable errors, kPermanent for credential/access errors,
  // kInvalidInput otherwise, and whose code is the service's error code.
  // `handle`: a libcurl easy handle to reuse (keeps its connection; the caller
  // owns it and uses it from one thread at a time); null: one from an
  // internal pool. When `stop` is requested during the transfer the transfer
  // is abandoned and kTransient "stopped" is returned at once (no retry).
  Result<HttpResponse> Send(const HttpRequest& request, CURL* handle = nullptr,
                            std::stop_token stop = {}, ServiceError* service_error = nullptr);

  const AwsClientOptions& options() const { return options_; }

 private:
  struct Pool;
  AwsClientOptions options_;
  std::unique_ptr<Pool> pool_;
};

// A libcurl easy handle owned by RAII (curl_easy_cleanup on destruction).
class CurlHandle {
 public:
  CurlHandle();
  ~CurlHandle();
  CurlHandle(const CurlHandle&) = delete;
  CurlHandle& operator=(const CurlHandle&) = delete;
  CURL* get() const { return handle_; }

 private:
  CURL* handle_;
};

// Lowercase hex SHA-256 of bytes (S3's x-amz-content-sha256).
std::string Sha256Hex(std::string_view bytes);

// Base64 (RFC 4648, with padding).
std::string Base64Encode(std::string_view bytes);
// Errors: kInvalidInput "invalid_base64".
Result<std::string> Base64Decode(std::string_view text);

// IAM: the least-privilege policy document (JSON text, 2 spaces indent) for
// the given queue ARNs (SQS actions the producer and worker use), plus SES
// sending when `ses` is true and S3 object access to `blob_bucket` when not
// empty. See docs in deploy/iam-policy.json.
std::string LeastPrivilegePolicy(const std::vector<std::string>& queue_arns, bool ses,
                                 std::string_view blob_bucket);

}  // namespace postline::aws
