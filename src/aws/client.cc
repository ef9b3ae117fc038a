// AwsClient: SigV4-signed HTTP through libcurl, with the standard retry mode.
#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "aws/aws_internal.h"
#include "postline/aws.h"
#include "postline/json.h"

namespace postline::aws {
namespace {

size_t WriteBody(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t WriteHeader(char* data, size_t size, size_t n, void* user) {
  auto* headers = static_cast<std::map<std::string, std::string>*>(user);
  std::string_view line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() &&
           (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
      value.remove_suffix(1);
    }
    (*headers)[name] = std::string(value);
  } else if (line.starts_with("HTTP/")) {
    headers->clear();  // a new response (e.g. after 100 Continue)
  }
  return size * n;
}

int StopProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* stop = static_cast<const std::stop_token*>(user);
  return stop->stop_requested() ? 1 : 0;
}

struct Slist {
  curl_slist* list = nullptr;
  ~Slist() { curl_slist_free_all(list); }
  void Add(const std::string& s) { list = curl_slist_append(list, s.c_str()); }
};

bool IsAuthError(const ServiceError& e) {
  static constexpr std::string_view kCodes[] = {"AccessDenied",
                                                "AccessDeniedException",
                                                "InvalidClientTokenId",
                                                "SignatureDoesNotMatch",
                                                "UnrecognizedClientException",
                                                "ExpiredToken",
                                                "ExpiredTokenException",
                                                "IncompleteSignature",
                                                "MissingAuthenticationToken",
                                                "InvalidSignatureException",
                                                "InvalidAccessKeyId",
                                                "AuthFailure"};
  for (auto c : kCodes) {
    if (e.code == c) return true;
  }
  return e.http_status == 401 || e.http_status == 403;
}

std::string XmlElement(const std::string& body, std::string_view name) {
  const std::string open = fmt::format("<{}>", name);
  const std::string close = fmt::format("</{}>", name);
  auto b = body.find(open);
  if (b == std::string::npos) return {};
  b += open.size();
  auto e = body.find(close, b);
  return e == std::string::npos ? std::string() : body.substr(b, e - b);
}

}  // namespace

void EnsureCurlGlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

CurlHandle::CurlHandle() {
  EnsureCurlGlobalInit();
  handle_ = curl_easy_init();
}
CurlHandle::~CurlHandle() {
  if (handle_) curl_easy_cleanup(handle_);
}

Result<HttpResponse> PlainHttp(const std::string& method, const std::string& url,
                               const std::vector<std::string>& headers, long timeout_ms) {
  CurlHandle handle;
  CURL* h = handle.get();
  HttpResponse response;
  Slist list;
  for (const auto& header : headers) list.Add(header);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
  if (method == "PUT") curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, list.list);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &response.body);
  CURLcode rc = curl_easy_perform(h);
  if (rc != CURLE_OK) {
    return MakeError(ErrorKind::kTransient, "http_failed",
                     fmt::format("{} {}: {}", method, url, curl_easy_strerror(rc)));
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &response.status);
  return response;
}

ServiceError ParseServiceError(const HttpResponse& response) {
  ServiceError e;
  e.http_status = response.status;
  if (auto it = response.headers.find("x-amzn-query-error"); it != response.headers.end()) {
    auto semi = it->second.find(';');
    e.query_code = it->second.substr(0, semi);
    e.sender_fault = semi != std::string::npos && it->second.substr(semi + 1) == "Sender";
  }
  if (auto it = response.headers.find("x-amzn-errortype"); it != response.headers.end()) {
    e.code = it->second.substr(0, it->second.find(':'));
  }
  auto json = ParseJson(response.body, {.document = "the AWS error response"});
  if (json && json->is_object()) {
    for (const char* key : {"__type", "code", "Code"}) {
      if (e.code.empty()) {
        std::string type = JsonString(*json, key);
        auto hash = type.rfind('#');
        e.code = hash == std::string::npos ? type : type.substr(hash + 1);
      }
    }
    for (const char* key : {"message", "Message"}) {
      if (e.message.empty()) e.message = JsonString(*json, key);
    }
  } else if (response.body.find("<Code>") != std::string::npos) {
    if (e.code.empty()) e.code = XmlElement(response.body, "Code");
    e.message = XmlElement(response.body, "Message");
  }
  if (e.code.empty()) e.code = fmt::format("HTTP{}", response.status);
  if (e.http_status >= 400 && e.http_status < 500 && e.query_code.empty()) e.sender_fault = true;
  return e;
}

struct AwsClient::Pool {
  std::mutex mu;
  std::vector<std::unique_ptr<CurlHandle>> free;
  std::mt19937_64 random{std::random_device{}()};
};

AwsClient::AwsClient(AwsClientOptions options)
    : options_(std::move(options)), pool_(std::make_unique<Pool>()) {
  EnsureCurlGlobalInit();
}

AwsClient::~AwsClient() = default;

Result<HttpResponse> AwsClient::Send(const HttpRequest& request, CURL* handle, std::stop_token stop,
                                     ServiceError* service_error) {
  std::unique_ptr<CurlHandle> pooled;
  if (!handle) {
    {
      std::lock_guard lock(pool_->mu);
      if (!pool_->free.empty()) {
        pooled = std::move(pool_->free.back());
        pool_->free.pop_back();
      }
    }
    if (!pooled) pooled = std::make_unique<CurlHandle>();
    handle = pooled->get();
  }
  struct Return {
    AwsClient::Pool* pool;
    std::unique_ptr<CurlHandle>* pooled;
    ~Return() {
      if (*pooled) {
        std::lock_guard lock(pool->mu);
        pool->free.push_back(std::move(*pooled));
      }
    }
  } give_back{pool_.get(), &pooled};

  const std::string url = options_.endpoint + request.path;
  const std::string sigv4 = fmt::format("aws:amz:{}:{}", options_.region, options_.service);
  ServiceError last;
  for (int attempt = 0; attempt < options_.retry.max_attempts; ++attempt) {
    auto credentials = options_.credentials->Get();
    if (!credentials) return std::unexpected(credentials.error());
    Slist headers;
    for (const auto& h : request.headers) headers.Add(h);
    // Set before signing: libcurl signs every header it sends from this list.
    if (!credentials->session_token.empty()) {
      headers.Add("X-Amz-Security-Token: " + credentials->session_token);
    }
    HttpResponse response;
    curl_easy_reset(handle);
    curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
    if (request.method == "GET") {
      curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
    } else {
      if (request.method != "POST") {
        curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
      }
      if (request.method != "DELETE" || !request.body.empty()) {
        curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE,
                         static_cast<curl_off_t>(request.body.size()));
        curl_easy_setopt(handle, CURLOPT_POSTFIELDS, request.body.data());
      }
    }
    curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers.list);
    curl_easy_setopt(handle, CURLOPT_AWS_SIGV4, sigv4.c_str());
    curl_easy_setopt(handle, CURLOPT_USERNAME, credentials->access_key_id.c_str());
    curl_easy_setopt(handle, CURLOPT_PASSWORD, credentials->secret_access_key.c_str());
    curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, request.timeout_ms);
    curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT_MS, request.connect_timeout_ms);
    curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, WriteBody);
    curl_easy_setopt(handle, CURLOPT_WRITEDATA, &response.body);
    curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, WriteHeader);
    curl_easy_setopt(handle, CURLOPT_HEADERDATA, &response.headers);
    curl_easy_setopt(handle, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(handle, CURLOPT_XFERINFOFUNCTION, StopProgress);
    curl_easy_setopt(handle, CURLOPT_XFERINFODATA, &stop);
    CURLcode rc = curl_easy_perform(handle);
    if (rc == CURLE_ABORTED_BY_CALLBACK || stop.stop_requested()) {
      return MakeError(ErrorKind::kTransient, "stopped", "the request was abandoned on shutdown");
    }
    if (rc != CURLE_OK) {
      last = ServiceError{0, "ServiceUnavailable", "",
                          fmt::format("{} {}: {}", options_.service, url, curl_easy_strerror(rc)),
                          false};
    } else {
      curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &response.status);
      if (response.status >= 200 && response.status < 300) return response;
      last = ParseServiceError(response);
    }
    if (!IsRetryableError(last) || attempt + 1 >= options_.retry.max_attempts) break;
    std::chrono::milliseconds delay;
    {
      std::lock_guard lock(pool_->mu);
      delay = FullJitterBackoff(
          attempt, IsThrottlingError(last) ? options_.retry.throttling_base : options_.retry.base,
          options_.retry.max_backoff, pool_->random);
    }
    if (options_.on_retry) options_.on_retry(attempt + 1, last);
    const auto until = std::chrono::steady_clock::now() + delay;
    while (std::chrono::steady_clock::now() < until) {
      if (stop.stop_requested()) {
        return MakeError(ErrorKind::kTransient, "stopped", "the request was abandoned on shutdown");
      }
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          std::chrono::milliseconds(50), until - std::chrono::steady_clock::now()));
    }
  }
  if (service_error) *service_error = last;
  ErrorKind kind = IsRetryableError(last) ? ErrorKind::kTransient
                   : IsAuthError(last)    ? ErrorKind::kPermanent
                                          : ErrorKind::kInvalidInput;
  std::string message =
      last.http_status == 0
          ? last.message
          : fmt::format("{} answered HTTP {} {}{}{}", options_.service, last.http_status, last.code,
                        last.message.empty() ? "" : ": ", last.message);
  return MakeError(kind, last.code, std::move(message));
}

}  // namespace postline::aws
