#include "postline/transport.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <string>

namespace postline {

std::string_view SendOutcomeName(SendOutcome outcome) {
  switch (outcome) {
    case SendOutcome::kSent:
      return "sent";
    case SendOutcome::kTransient:
      return "transient";
    case SendOutcome::kPermanent:
      return "permanent";
  }
  return "transient";
}

namespace {

// "localhost", any 127.0.0.0/8 address, ::1 (with or without brackets) and
// ::ffff:127.x.y.z.
bool IsLoopbackHost(std::string_view host) {
  std::string h(host);
  std::transform(h.begin(), h.end(), h.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!h.empty() && h.back() == '.') h.pop_back();
  if (h == "localhost") return true;
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

// Characters that would change the meaning of the smtp:// URL built from the
// host, or that no host name or address literal contains.
bool HasUrlBreakingChar(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](unsigned char c) {
    return c <= 0x20 || c == 0x7f || c == '/' || c == '?' || c == '#' || c == '@' || c == '\\' ||
           c == '%';
  });
}

}  // namespace

Result<void> ValidateSmtpSettings(const SmtpSettings& settings) {
  if (settings.host.empty()) {
    return InvalidInput("smtp_host_missing", "SMTP_HOST is empty; set the SMTP server's host name",
                        "SMTP_HOST");
  }
  if (HasUrlBreakingChar(settings.host)) {
    return InvalidInput("smtp_host_invalid",
                        fmt::format("SMTP_HOST \"{}\" is not a host name or IP address "
                                    "(no spaces, '/', '?', '#', '@', '%' or '\\')",
                                    settings.host),
                        "SMTP_HOST");
  }
  if (settings.port < 1 || settings.port > 65535) {
    return InvalidInput(
        "smtp_port_invalid",
        fmt::format("SMTP_PORT must be between 1 and 65535 (587 or 465 usually), got {}",
                    settings.port),
        "SMTP_PORT");
  }
  if (settings.tls == SmtpTls::kNone && !IsLoopbackHost(settings.host)) {
    return InvalidInput(
        "smtp_plaintext_not_loopback",
        fmt::format("POSTLINE_SMTP_TLS=none is allowed only for a loopback SMTP_HOST "
                    "(localhost, 127.0.0.0/8, ::1), got \"{}\"; use auto, starttls or implicit",
                    settings.host),
        "POSTLINE_SMTP_TLS");
  }
  if (std::any_of(settings.helo_name.begin(), settings.helo_name.end(), [](unsigned char c) {
        return !(std::isalnum(c) || c == '.' || c == '-' || c == '[' || c == ']' || c == ':');
      })) {
    return InvalidInput("smtp_helo_invalid",
                        fmt::format("the EHLO name \"{}\" may contain only letters, digits, "
                                    "'.', '-', and an address literal's '[', ']' and ':'",
                                    settings.helo_name),
                        "helo_name");
  }
  if (settings.connect_timeout_ms <= 0 || settings.timeout_ms <= 0) {
    return InvalidInput("smtp_timeout_invalid",
                        fmt::format("SMTP timeouts must be positive milliseconds, got connect "
                                    "{} ms and transaction {} ms",
                                    settings.connect_timeout_ms, settings.timeout_ms),
                        "timeout_ms");
  }
  return {};
}

}  // namespace postline
