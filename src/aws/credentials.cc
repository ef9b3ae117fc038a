// The credentials chain: environment, shared files, ECS container, EC2 IMDSv2.
#include <curl/curl.h>
#include <fmt/format.h>

#include <ctime>
#include <fstream>
#include <iomanip>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "aws/aws_internal.h"
#include "postline/aws.h"
#include "postline/json.h"

namespace postline::aws {
namespace {

using std::chrono::system_clock;

// ISO 8601 "2026-11-29T12:00:00Z" (fractions ignored).
std::optional<system_clock::time_point> ParseIso8601(const std::string& s) {
  std::tm tm{};
  std::istringstream in(s);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) return std::nullopt;
  return system_clock::from_time_t(timegm(&tm));
}

Result<Credentials> ParseCredentialsJson(const std::string& body, std::string source) {
  auto parsed = ParseJson(body, {.document = "the credentials response"});
  if (!parsed || !parsed->is_object()) {
    return MakeError(ErrorKind::kTransient, "credentials_unavailable",
                     fmt::format("{} credentials: the response is not a JSON object", source));
  }
  const nlohmann::json& j = *parsed;
  Credentials c;
  c.access_key_id = JsonString(j, "AccessKeyId");
  c.secret_access_key = JsonString(j, "SecretAccessKey");
  c.session_token = JsonString(j, "Token");
  if (c.access_key_id.empty() || c.secret_access_key.empty()) {
    return MakeError(ErrorKind::kTransient, "credentials_unavailable",
                     fmt::format("{} credentials: AccessKeyId or SecretAccessKey missing", source));
  }
  if (auto exp = JsonString(j, "Expiration"); !exp.empty()) c.expiration = ParseIso8601(exp);
  c.source = std::move(source);
  return c;
}

class ChainProvider final : public CredentialsProvider {
 public:
  ChainProvider(AwsOptions options, std::shared_ptr<Clock> clock)
      : options_(std::move(options)), clock_(std::move(clock)) {}

  Result<Credentials> Get() override {
    std::lock_guard lock(mu_);
    if (cached_ &&
        (!cached_->expiration || clock_->Now() < *cached_->expiration - std::chrono::minutes(5))) {
      return *cached_;
    }
    auto fresh = Resolve();
    if (fresh) cached_ = *fresh;
    return fresh;
  }

 private:
  Result<Credentials> Resolve() {
    std::vector<std::string> tried;
    // 1. Environment.
    if (!options_.access_key_id.empty() && !options_.secret_access_key.empty()) {
      return Credentials{options_.access_key_id, options_.secret_access_key, options_.session_token,
                         std::nullopt, "environment"};
    }
    tried.push_back("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
    // 2. Shared files.
    if (auto c = FromSharedFiles()) return *c;
    tried.push_back(fmt::format("profile \"{}\" in the shared credentials/config files",
                                options_.profile.empty() ? "default" : options_.profile));
    // 3. Container.
    if (!options_.container_relative_uri.empty() || !options_.container_full_uri.empty()) {
      return FromContainer();
    }
    tried.push_back("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI");
    // 4. IMDSv2.
    if (!options_.imds_disabled) {
      auto c = FromImds();
      if (c) return c;
      tried.push_back(fmt::format("EC2 instance metadata ({})", c.error().message));
    }
    return MakeError(ErrorKind::kPermanent, "no_credentials",
                     fmt::format("no AWS credentials found; tried {}", fmt::join(tried, ", ")),
                     "AWS_ACCESS_KEY_ID");
  }

  std::optional<Credentials> FromSharedFiles() {
    const std::string profile = options_.profile.empty() ? "default" : options_.profile;
    auto read =
        [](const std::string& path) -> std::map<std::string, std::map<std::string, std::string>> {
      if (path.empty()) return {};
      std::ifstream in(path);
      if (!in) return {};
      std::stringstream ss;
      ss << in.rdbuf();
      auto ini = ParseAwsIni(ss.str());
      return ini ? *ini : std::map<std::string, std::map<std::string, std::string>>{};
    };
    std::string home_dir = options_.home;
    auto credentials = read(!options_.credentials_file.empty()
                                ? options_.credentials_file
                                : (home_dir.empty() ? "" : home_dir + "/.aws/credentials"));
    auto config =
        read(!options_.config_file.empty() ? options_.config_file
                                           : (home_dir.empty() ? "" : home_dir + "/.aws/config"));
    std::vector<const std::map<std::string, std::string>*> sections;
    if (auto it = credentials.find(profile); it != credentials.end())
      sections.push_back(&it->second);
    for (const auto& key : {profile == "default" ? profile : "profile " + profile, profile}) {
      if (auto it = config.find(key); it != config.end()) {
        sections.push_back(&it->second);
        break;
      }
    }
    for (const auto* section : sections) {
      auto id = section->find("aws_access_key_id");
      auto secret = section->find("aws_secret_access_key");
      if (id == section->end() || secret == section->end()) continue;
      Credentials c{id->second, secret->second, "", std::nullopt, "shared-files"};
      if (auto token = section->find("aws_session_token"); token != section->end()) {
        c.session_token = token->second;
      }
      return c;
    }
    return std::nullopt;
  }

  Result<Credentials> FromContainer() {
    std::string url = !options_.container_relative_uri.empty()
                          ? options_.container_host + options_.container_relative_uri
                          : options_.container_full_uri;
    std::vector<std::string> headers;
    std::string token = options_.container_authorization_token;
    if (!options_.container_authorization_token_file.empty()) {
      std::ifstream in(options_.container_authorization_token_file);
      std::stringstream ss;
      ss << in.rdbuf();
      token = ss.str();
      while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
    }
    if (!token.empty()) headers.push_back("Authorization: " + token);
    auto response = PlainHttp("GET", url, headers, 2000);
    if (!response || response->status != 200) {
      return MakeError(ErrorKind::kTransient, "credentials_unavailable",
                       fmt::format("container credentials from {}: {}", url,
                                   response ? fmt::format("HTTP {}", response->status)
                                            : response.error().message));
    }
    return ParseCredentialsJson(response->body, "container");
  }

  Result<Credentials> FromImds() {
    const std::string base = options_.imds_endpoint;
    auto token = PlainHttp("PUT", base + "/latest/api/token",
                           {"X-aws-ec2-metadata-token-ttl-seconds: 21600"}, 1000);
    if (!token || token->status != 200) {
      return MakeError(
          ErrorKind::kTransient, "credentials_unavailable",
          token ? fmt::format("token request: HTTP {}", token->status) : token.error().message);
    }
    const std::string header = "X-aws-ec2-metadata-token: " + token->body;
    const std::string path = base + "/latest/meta-data/iam/security-credentials/";
    auto role = PlainHttp("GET", path, {header}, 1000);
    if (!role || role->status != 200 || role->body.empty()) {
      return MakeError(ErrorKind::kTransient, "credentials_unavailable",
                       "no IAM role attached to the instance");
    }
    std::string role_name = role->body.substr(0, role->body.find('\n'));
    auto creds = PlainHttp("GET", path + role_name, {header}, 1000);
    if (!creds || creds->status != 200) {
      return MakeError(ErrorKind::kTransient, "credentials_unavailable",
                       fmt::format("credentials of role {} unavailable", role_name));
    }
    return ParseCredentialsJson(creds->body, "imds");
  }

  AwsOptions options_;
  std::shared_ptr<Clock> clock_;
  std::mutex mu_;
  std::optional<Credentials> cached_;
};

class StaticProvider final : public CredentialsProvider {
 public:
  explicit StaticProvider(Credentials c) : c_(std::move(c)) {}
  Result<Credentials> Get() override { return c_; }

 private:
  Credentials c_;
};

}  // namespace

std::shared_ptr<CredentialsProvider> NewDefaultCredentialsChain(const AwsOptions& options,
                                                                std::shared_ptr<Clock> clock) {
  return std::make_shared<ChainProvider>(options, std::move(clock));
}

std::shared_ptr<CredentialsProvider> NewStaticCredentials(Credentials credentials) {
  return std::make_shared<StaticProvider>(std::move(credentials));
}

}  // namespace postline::aws
