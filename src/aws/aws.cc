// AWS options, shared files, endpoints, errors, retries, base64, IAM policy.
#include "postline/aws.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace postline::aws {
namespace {

std::string Get(const std::map<std::string, std::string>& v, const std::string& key) {
  auto it = v.find(key);
  return it == v.end() ? std::string() : it->second;
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return std::string(s.substr(b, e - b));
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string StripSlash(std::string s) {
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

}  // namespace

AwsOptions AwsOptionsFromVariables(const std::map<std::string, std::string>& v) {
  AwsOptions o;
  o.region = Get(v, "AWS_REGION");
  if (o.region.empty()) o.region = Get(v, "AWS_DEFAULT_REGION");
  o.access_key_id = Get(v, "AWS_ACCESS_KEY_ID");
  o.secret_access_key = Get(v, "AWS_SECRET_ACCESS_KEY");
  o.session_token = Get(v, "AWS_SESSION_TOKEN");
  o.profile = Get(v, "AWS_PROFILE");
  o.endpoint = Get(v, "AWS_ENDPOINT");
  if (o.endpoint.empty()) o.endpoint = Get(v, "AWS_ENDPOINT_URL");
  for (const auto& [service, var] :
       {std::pair{"sqs", "AWS_ENDPOINT_URL_SQS"}, std::pair{"ses", "AWS_ENDPOINT_URL_SES"},
        std::pair{"s3", "AWS_ENDPOINT_URL_S3"}}) {
    if (auto value = Get(v, var); !value.empty()) o.service_endpoints[service] = value;
  }
  o.home = Get(v, "HOME");
  o.config_file = Get(v, "AWS_CONFIG_FILE");
  o.credentials_file = Get(v, "AWS_SHARED_CREDENTIALS_FILE");
  o.container_relative_uri = Get(v, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  o.container_full_uri = Get(v, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
  o.container_authorization_token = Get(v, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
  o.container_authorization_token_file = Get(v, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
  o.imds_disabled = Lower(Get(v, "AWS_EC2_METADATA_DISABLED")) == "true";
  if (auto e = Get(v, "AWS_EC2_METADATA_SERVICE_ENDPOINT"); !e.empty()) o.imds_endpoint = e;
  return o;
}

Result<std::map<std::string, std::map<std::string, std::string>>> ParseAwsIni(
    std::string_view text) {
  std::map<std::string, std::map<std::string, std::string>> out;
  std::string section;
  std::string parent_key;  // last key with an empty value (a nested block)
  std::istringstream in{std::string(text)};
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const bool indented = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    std::string t = Trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[') {
      if (t.back() != ']') {
        return InvalidInput("invalid_aws_file",
                            fmt::format("line {}: a section header must end with ']'", number));
      }
      section = Trim(t.substr(1, t.size() - 2));
      out[section];
      parent_key.clear();
      continue;
    }
    auto eq = t.find('=');
    if (eq == std::string::npos || section.empty()) {
      return InvalidInput(
          "invalid_aws_file",
          fmt::format("line {}: expected 'key = value' inside a [section]", number));
    }
    std::string key = Lower(Trim(t.substr(0, eq)));
    std::string value = Trim(t.substr(eq + 1));
    if (indented && !parent_key.empty()) {
      out[section][parent_key + "." + key] = value;
      continue;
    }
    parent_key = value.empty() ? key : std::string();
    out[section][key] = value;
  }
  return out;
}

namespace {

std::string ConfigFilePath(const AwsOptions& o) {
  if (!o.config_file.empty()) return o.config_file;
  return o.home.empty() ? std::string() : o.home + "/.aws/config";
}

std::string ProfileName(const AwsOptions& o) {
  return o.profile.empty() ? std::string("default") : o.profile;
}

// The profile's section of the config file ("[default]" or "[profile NAME]").
std::map<std::string, std::string> ConfigProfile(const AwsOptions& o) {
  std::string path = ConfigFilePath(o);
  if (path.empty()) return {};
  std::ifstream in(path);
  if (!in) return {};
  std::stringstream ss;
  ss << in.rdbuf();
  auto ini = ParseAwsIni(ss.str());
  if (!ini) return {};
  const std::string name = ProfileName(o);
  for (const auto& key : {name == "default" ? std::string("default") : "profile " + name, name}) {
    if (auto it = ini->find(key); it != ini->end()) return it->second;
  }
  return {};
}

}  // namespace

Result<std::string> ResolveRegion(const AwsOptions& options) {
  if (!options.region.empty()) return options.region;
  auto profile = ConfigProfile(options);
  if (auto it = profile.find("region"); it != profile.end() && !it->second.empty()) {
    return it->second;
  }
  return InvalidInput("missing_region",
                      fmt::format("AWS_REGION is not set and profile \"{}\" has no region; set "
                                  "AWS_REGION (e.g. us-east-1)",
                                  ProfileName(options)),
                      "AWS_REGION");
}

std::string ResolveEndpoint(const AwsOptions& options, std::string_view service,
                            std::string_view region) {
  if (auto it = options.service_endpoints.find(std::string(service));
      it != options.service_endpoints.end()) {
    return StripSlash(it->second);
  }
  if (!options.endpoint.empty()) return StripSlash(options.endpoint);
  auto profile = ConfigProfile(options);
  if (auto it = profile.find("endpoint_url"); it != profile.end() && !it->second.empty()) {
    return StripSlash(it->second);
  }
  if (service == "ses") return fmt::format("https://email.{}.amazonaws.com", region);
  return fmt::format("https://{}.{}.amazonaws.com", service, region);
}

bool IsThrottlingError(const ServiceError& e) {
  static constexpr std::string_view kCodes[] = {"Throttling",
                                                "ThrottlingException",
                                                "ThrottledException",
                                                "RequestThrottledException",
                                                "TooManyRequestsException",
                                                "ProvisionedThroughputExceededException",
                                                "TransactionInProgressException",
                                                "RequestLimitExceeded",
                                                "BandwidthLimitExceeded",
                                                "LimitExceededException",
                                                "RequestThrottled",
                                                "SlowDown",
                                                "PriorRequestNotComplete",
                                                "EC2ThrottledException",
                                                "RequestThrottledException"};
  if (e.http_status == 429) return true;
  for (auto c : kCodes) {
    if (e.code == c) return true;
  }
  return e.query_code == "AWS.SimpleQueueService.RequestThrottled" ||
         e.query_code == "RequestThrottled";
}

bool IsRetryableError(const ServiceError& e) {
  if (e.http_status == 0) return true;
  if (IsThrottlingError(e)) return true;
  if (e.code == "RequestTimeout" || e.code == "RequestTimeoutException" ||
      e.code == "InternalError" || e.code == "ServiceUnavailable") {
    return true;
  }
  return e.http_status == 500 || e.http_status == 502 || e.http_status == 503 ||
         e.http_status == 504;
}

std::chrono::milliseconds FullJitterBackoff(int attempt, std::chrono::milliseconds base,
                                            std::chrono::milliseconds max_backoff,
                                            std::mt19937_64& random) {
  long long ceiling = base.count();
  for (int i = 0; i < attempt && ceiling < max_backoff.count(); ++i) ceiling *= 2;
  ceiling = std::min<long long>(ceiling, max_backoff.count());
  if (ceiling <= 0) return std::chrono::milliseconds(0);
  std::uniform_int_distribution<long long> dist(0, ceiling - 1);
  return std::chrono::milliseconds(dist(random));
}

std::string Sha256Hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr);
  std::string out;
  for (unsigned int i = 0; i < length; ++i) out += fmt::format("{:02x}", digest[i]);
  return out;
}

std::string Base64Encode(std::string_view in) {
  static constexpr char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                 (static_cast<unsigned char>(in[i + 1]) << 8) |
                 static_cast<unsigned char>(in[i + 2]);
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += kTable[(v >> 6) & 63];
    out += kTable[v & 63];
  }
  if (i < in.size()) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += kTable[(v >> 18) & 63];
    out += kTable[(v >> 12) & 63];
    out += i + 1 < in.size() ? kTable[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

Result<std::string> Base64Decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  size_t padding = 0;
  for (char c : in) {
    if (c == '=') {
      ++padding;
      continue;
    }
    if (c == '\r' || c == '\n') continue;
    int v = value(c);
    if (v < 0 || padding > 0) {
      return InvalidInput("invalid_base64", "base64 text has a character outside A-Z a-z 0-9 + /");
    }
    buffer = (buffer << 6) | static_cast<unsigned>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((buffer >> bits) & 0xFF);
    }
  }
  if (padding > 2) return InvalidInput("invalid_base64", "base64 text has more than 2 '='");
  return out;
}

std::string LeastPrivilegePolicy(const std::vector<std::string>& queue_arns, bool ses,
                                 std::string_view blob_bucket) {
  nlohmann::ordered_json statements = nlohmann::ordered_json::array();
  statements.push_back({
      {"Sid", "PostlineQueues"},
      {"Effect", "Allow"},
      {"Action",
       {"sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl", "sqs:ChangeMessageVisibility"}},
      {"Resource", queue_arns},
  });
  if (ses) {
    statements.push_back({{"Sid", "PostlineSes"},
                          {"Effect", "Allow"},
                          {"Action", {"ses:SendRawEmail", "ses:SendEmail"}},
                          {"Resource", "*"}});
  }
  if (!blob_bucket.empty()) {
    statements.push_back(
        {{"Sid", "PostlineBlobs"},
         {"Effect", "Allow"},
         {"Action", {"s3:PutObject", "s3:GetObject", "s3:DeleteObject"}},
         {"Resource", fmt::format("arn:aws:s3:::{}/postline-blobs/*", blob_bucket)}});
  }
  nlohmann::ordered_json policy = {{"Version", "2012-10-17"}, {"Statement", statements}};
  return policy.dump(2);
}

}  // namespace postline::aws
