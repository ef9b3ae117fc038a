// postline/dashboard.h — the web dashboard served beside the HTTP API.
//
// Server-rendered HTML pages (they work without JavaScript; a few lines of
// script add "select all") over the same module functions the API and the
// CLI use (docs/dashboard.md):
//   /                   queues: per lane and its DLQ the GetQueueAttributes
//                       figures, sent and failed in the last hour, a
//                       throughput chart (inline SVG, 5-minute buckets) and a
//                       red mark above the depth alarm
//   /messages           e-mails waiting in a queue (queued, sending,
//                       retrying) as the status store recorded them — SQS has
//                       no peek, so this is the store's view, not the queue's
//   /dead-letters       both DLQs; /dead-letters/<dlq>/<message-id> one
//                       dead letter; POST /dead-letters/action (fields
//                       queue, action = redrive | delete | redrive-all |
//                       delete-all, id…, csrf, confirm) acts on one, a
//                       selection, or all; delete and "all" first answer
//                       with a confirmation form (confirm=yes)
//   /sent               search by recipient, subject (invoice number) or id
//   /emails/<id>        the status timeline of one e-mail
//   /preview/dlq/<dlq>/<message-id>[/html | /eml | /attachment/<n>]
//                       a dead letter composed with ComposeMessage: headers,
//                       text part, the HTML part in a sandboxed iframe,
//                       attachments (the invoice PDF), the whole .eml
//   /login, /logout     the session for POSTLINE_API_TOKEN
//   /assets/...         CSS and script, embedded in the binary at build time
//
// Paths under /v1, /healthz, /readyz and /metrics belong to the API (Serves
// returns false for them).
//
// Security:
//   - Every value taken from a message or a request is HTML-escaped.
//   - With an API token, pages need a session: the login form checks the
//     token (constant-time) and sets a random session id in the cookie
//     "postline_session" (HttpOnly; SameSite=Strict; Path=/; Secure unless
//     the server listens on loopback only). The token itself never goes into
//     a cookie. "Authorization: Bearer <token>" is accepted as well.
//   - Without a token the dashboard is open only when the server listens on
//     loopback addresses only; otherwise every page answers 403.
//   - Every state-changing request is a POST that must carry the session's
//     CSRF token in the form field "csrf" and an Origin (or, without one, a
//     Referer) naming this server's Host; anything else is 403.
//   - Pages carry a Content-Security-Policy without inline script; the HTML
//     part of an e-mail is served with "Content-Security-Policy: sandbox" and
//     framed with sandbox="" so its script and links cannot run.
//
// The dashboard knows nothing about the HTTP server: a DashboardRequest in,
// a DashboardResponse out. The API's router hands it every request no API
// route matches (FromApiRequest / ToApiResponse below adapt the API's types
// without this module depending on it).
//
// Thread-safety: Dashboard::Handle may be called from many threads at once
// (sessions are guarded by a mutex; the sources are thread-safe).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "postline/clock.h"
#include "postline/error.h"
#include "postline/log.h"
#include "postline/service.h"
#include "postline/queue.h"
#include "postline/state.h"

namespace postline {

struct DashboardRequest {
  std::string method;                          // "GET", "POST", …
  std::string target;                          // origin-form: "/path?query"
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // POST: application/x-www-form-urlencoded
  bool peer_is_loopback = false;               // the client connected from 127/8 or ::1
};

struct DashboardResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;  // Content-Type etc.
  std::string body;
};

struct DashboardSettings {
  // POSTLINE_API_TOKEN; empty: no login (allowed only with loopback_only).
  std::string api_token;
  // True when the server listens on loopback addresses only. Decides whether
  // an empty token is acceptable and whether cookies need Secure.
  bool loopback_only = true;
  // POSTLINE_DEPTH_ALARM: available + in flight + delayed above this many
  // messages marks the queue red.
  std::int64_t depth_alarm = 1000;
  // POSTLINE_RETRY_MIN / POSTLINE_RETRY_MAX, seconds: the worker's backoff
  // bounds, to show the window in which a retrying e-mail is tried next.
  // 0: not known here (the pages then name only when the backoff started).
  int retry_min_seconds = 0;
  int retry_max_seconds = 0;
  std::chrono::seconds session_lifetime{12 * 3600};
  // At most this many dead letters are read per DLQ for a page or an action.
  int max_dead_letters = 500;
};

// What the pages read. Every pointer may be null except clock; a page whose
// source is missing says so instead of showing figures.
struct DashboardSources {
  QueuePair queues;
  std::shared_ptr<StateStore> state;
  // Told "queued" when a dead letter is redriven (usually the state store).
  std::shared_ptr<StatusObserver> observer;
  std::shared_ptr<Clock> clock = SystemClock();
};

class Dashboard {
 public:
  Dashboard(DashboardSettings settings, DashboardSources sources, Log log);
  Dashboard(const Dashboard&) = delete;
  Dashboard& operator=(const Dashboard&) = delete;

  // True for the paths the dashboard answers: everything except /v1,
  // /v1/…, /healthz, /readyz and /metrics.
  static bool Serves(std::string_view path);

  // Answers one request. Never fails: errors become 4xx/5xx pages (a
  // queue's kTransient error is 503, bad input 400, unknown things 404).
  DashboardResponse Handle(const DashboardRequest& request);

 private:
  struct Session {
    std::string csrf;
    bool authenticated = false;
    std::chrono::system_clock::time_point expires;
  };
  DashboardSettings settings_;
  DashboardSources sources_;
  Log log_;
  std::mutex sessions_mu_;
  std::map<std::string, Session> sessions_;  // by session id
};

// --- helpers, public for their unit tests ---------------------------------

// Escapes & < > " ' for HTML text and attribute values.
std::string HtmlEscape(std::string_view text);

// Decodes application/x-www-form-urlencoded ("a=1&b=x%20y+z"); repeated
// names keep every value in order. Malformed %-escapes are kept as text.
std::vector<std::pair<std::string, std::string>> ParseFormUrlEncoded(std::string_view body);

// The Set-Cookie value for a session id: HttpOnly; SameSite=Strict; Path=/;
// Max-Age in seconds; "; Secure" when `secure`. max_age 0 deletes it.
std::string SessionCookie(std::string_view session_id, bool secure, std::chrono::seconds max_age);

// The value of cookie `name` in a Cookie header, or empty.
std::string CookieValue(std::string_view cookie_header, std::string_view name);

// True when the request's Origin (or, without Origin, its Referer) names the
// scheme-less authority in its Host header ("http://host:port" or
// "https://host:port"). False when both are absent or "null".
bool SameOrigin(const DashboardRequest& request);

// Constant-time comparison of two secrets (false when lengths differ).
bool SecretsEqual(std::string_view a, std::string_view b);

// True for host names or literals that only reach this machine: "localhost",
// 127.0.0.0/8, "::1" (bracketed or not).
bool IsLoopbackHost(std::string_view host);

// Adapters for the HTTP API's types (postline::api::HttpRequest /
// HttpResponse in postline/api.h), as templates so the dashboard does not
// depend on the API module: ApiRequest has method, target, body and
// `headers`, a sequence of (lower-case name, value); ApiResponse has status,
// content_type, body, headers and route.
template <typename ApiRequest>
DashboardRequest FromApiRequest(const ApiRequest& request, bool peer_is_loopback = false) {
  DashboardRequest out;
  out.method = request.method;
  out.target = request.target;
  for (const auto& [name, value] : request.headers) out.headers.emplace(name, value);
  out.body = request.body;
  out.peer_is_loopback = peer_is_loopback;
  return out;
}
template <typename ApiResponse>
ApiResponse ToApiResponse(DashboardResponse response) {
  ApiResponse out;
  out.status = response.status;
  out.route = "dashboard";
  for (auto& [name, value] : response.headers) {
    if (name == "Content-Type") {
      out.content_type = std::move(value);
    } else {
      out.headers.emplace_back(std::move(name), std::move(value));
    }
  }
  out.body = std::move(response.body);
  return out;
}

}  // namespace postline
