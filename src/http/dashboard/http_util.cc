// HTTP plumbing of the dashboard: escaping, forms, cookies, origins, secrets.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include <cctype>
#include <stdexcept>

#include "http/dashboard/dashboard_internal.h"
#include "postline/dashboard.h"

namespace postline {

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 8);
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseFormUrlEncoded(std::string_view body) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!body.empty()) {
    auto amp = body.find('&');
    std::string_view part = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    std::string_view name = part.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : part.substr(eq + 1);
    out.emplace_back(dashboard_internal::FormDecode(name), dashboard_internal::FormDecode(value));
  }
  return out;
}

std::string SessionCookie(std::string_view session_id, bool secure, std::chrono::seconds max_age) {
  return fmt::format("postline_session={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
                     session_id, max_age.count(), secure ? "; Secure" : "");
}

std::string CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    auto semi = header.find(';');
    std::string_view part = header.substr(0, semi);
    header = semi == std::string_view::npos ? std::string_view() : header.substr(semi + 1);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    auto eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) {
      return std::string(part.substr(eq + 1));
    }
  }
  return {};
}

namespace {

std::string_view Header(const DashboardRequest& request, const std::string& name) {
  auto it = request.headers.find(name);
  return it == request.headers.end() ? std::string_view() : std::string_view(it->second);
}

// "http://host:port/path" → "host:port"; empty unless http or https.
std::string_view Authority(std::string_view url) {
  for (std::string_view scheme : {"http://", "https://"}) {
    if (url.starts_with(scheme)) {
      url.remove_prefix(scheme.size());
      return url.substr(0, url.find('/'));
    }
  }
  return {};
}

}  // namespace

bool SameOrigin(const DashboardRequest& request) {
  std::string_view host = Header(request, "host");
  if (host.empty()) return false;
  std::string_view origin = Header(request, "origin");
  if (!origin.empty() && origin != "null") {
    return Authority(origin) == host &&
           origin.find('/', origin.find("//") + 2) == std::string_view::npos;
  }
  std::string_view referer = Header(request, "referer");
  if (referer.empty()) return false;
  return Authority(referer) == host;
}

bool SecretsEqual(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool IsLoopbackHost(std::string_view host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return host == "localhost" || host == "::1" || host.starts_with("127.");
}

namespace dashboard_internal {

std::string RandomHex(int bytes) {
  std::vector<unsigned char> buf(static_cast<std::size_t>(bytes));
  if (RAND_bytes(buf.data(), bytes) != 1) throw std::runtime_error("RAND_bytes failed");
  std::string out;
  out.reserve(buf.size() * 2);
  for (unsigned char b : buf) out += fmt::format("{:02x}", b);
  return out;
}

std::string FormatTime(std::chrono::system_clock::time_point t) {
  return fmt::format("{:%Y-%m-%d %H:%M:%S}", std::chrono::time_point_cast<std::chrono::seconds>(t));
}

std::string FormatAge(std::int64_t s) {
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m {:02}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h {:02}m", s / 3600, s % 3600 / 60);
  return fmt::format("{}d {}h", s / 86400, s % 86400 / 3600);
}

std::string FormDecode(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() &&
               std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::string UrlEncode(std::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

std::string FormValue(const std::vector<std::pair<std::string, std::string>>& form,
                      std::string_view name) {
  for (const auto& [k, v] : form) {
    if (k == name) return v;
  }
  return {};
}

std::vector<std::string> FormValues(const std::vector<std::pair<std::string, std::string>>& form,
                                    std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : form) {
    if (k == name) out.push_back(v);
  }
  return out;
}

std::vector<std::string> PathSegments(std::string_view path) {
  std::vector<std::string> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    auto slash = path.find('/');
    std::string_view seg = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash);
    std::string decoded;
    for (std::size_t i = 0; i < seg.size(); ++i) {
      if (seg[i] == '%' && i + 2 < seg.size() &&
          std::isxdigit(static_cast<unsigned char>(seg[i + 1])) &&
          std::isxdigit(static_cast<unsigned char>(seg[i + 2]))) {
        decoded += static_cast<char>(std::stoi(std::string(seg.substr(i + 1, 2)), nullptr, 16));
        i += 2;
      } else {
        decoded += seg[i];
      }
    }
    out.push_back(std::move(decoded));
  }
  return out;
}

}  // namespace dashboard_internal
}  // namespace postline
