// The dashboard: sessions, CSRF and origin checks, routing.
#include "postline/dashboard.h"

#include <fmt/format.h>

#include <set>
#include <stdexcept>

#include "http/dashboard/assets.h"
#include "http/dashboard/dashboard_internal.h"
#include "http/dashboard/pages.h"

namespace postline {

using dashboard_internal::FormValue;
using dashboard_internal::FormValues;
using dashboard_internal::Page;
using dashboard_internal::PageContext;
using dashboard_internal::PathSegments;
using dashboard_internal::RandomHex;

namespace {

constexpr std::string_view kSessionCookie = "postline_session";
constexpr std::size_t kMaxSessions = 10000;

std::string_view HeaderOf(const DashboardRequest& request, const std::string& name) {
  auto it = request.headers.find(name);
  return it == request.headers.end() ? std::string_view() : std::string_view(it->second);
}

// Headers every dashboard page carries.
void PageHeaders(DashboardResponse& r) {
  bool has_csp = false;
  for (const auto& [name, value] : r.headers)
    has_csp = has_csp || name == "Content-Security-Policy";
  if (!has_csp) {
    r.headers.emplace_back("Content-Security-Policy",
                           "default-src 'none'; script-src 'self'; style-src 'self'; "
                           "img-src 'self' data:; frame-src 'self'; form-action 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'");
    r.headers.emplace_back("X-Frame-Options", "DENY");
  }
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("Referrer-Policy", "same-origin");
  r.headers.emplace_back("Cache-Control", "no-store");
}

DashboardResponse Redirect(std::string location) {
  DashboardResponse r;
  r.status = 303;
  r.headers.emplace_back("Location", std::move(location));
  r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  r.body = "See Other\n";
  return r;
}

DashboardResponse Asset(std::string_view name) {
  for (const auto& asset : dashboard_internal::Assets()) {
    if (asset.name != name || name.ends_with(".mustache")) continue;
    DashboardResponse r;
    r.headers.emplace_back("Content-Type", name.ends_with(".css")
                                               ? "text/css; charset=utf-8"
                                               : "text/javascript; charset=utf-8");
    r.headers.emplace_back("Cache-Control", "max-age=300");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    r.body = std::string(asset.bytes);
    return r;
  }
  DashboardResponse r;
  r.status = 404;
  r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
  r.body = "not found\n";
  return r;
}

std::string FlashFor(std::string_view query) {
  auto form = ParseFormUrlEncoded(query);
  std::string done = FormValue(form, "done");
  std::string n = FormValue(form, "n");
  std::string failed = FormValue(form, "failed");
  std::string text;
  if (done == "redrive") text = fmt::format("Redrove {} dead letter(s).", std::atoi(n.c_str()));
  if (done == "delete") text = fmt::format("Deleted {} dead letter(s).", std::atoi(n.c_str()));
  if (!text.empty() && std::atoi(failed.c_str()) > 0) {
    text += fmt::format(" {} could not be processed; see the log.", std::atoi(failed.c_str()));
  }
  return text;
}

}  // namespace

Dashboard::Dashboard(DashboardSettings settings, DashboardSources sources, Log log)
    : settings_(std::move(settings)), sources_(std::move(sources)), log_(std::move(log)) {
  if (!sources_.clock) sources_.clock = SystemClock();
}

bool Dashboard::Serves(std::string_view path) {
  for (std::string_view api : {"/v1", "/healthz", "/readyz", "/metrics"}) {
    if (path == api) return false;
    if (path.starts_with(api) && path.size() > api.size() &&
        (path[api.size()] == '/' || path[api.size()] == '?')) {
      return false;
    }
  }
  return path.starts_with("/");
}

DashboardResponse Dashboard::Handle(const DashboardRequest& request) {
  const auto now = sources_.clock->Now();
  std::string_view target = request.target;
  std::string_view path = target.substr(0, target.find('?'));
  std::string_view query = target.find('?') == std::string_view::npos
                               ? std::string_view()
                               : target.substr(target.find('?') + 1);
  const auto segments = PathSegments(path);

  if (!segments.empty() && segments[0] == "assets" && segments.size() == 2 &&
      request.method == "GET") {
    return Asset(segments[1]);
  }

  const bool secure = !settings_.loopback_only;
  DashboardResponse forbidden_open;
  if (settings_.api_token.empty() && !settings_.loopback_only) {
    forbidden_open.status = 403;
    forbidden_open.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    forbidden_open.body =
        "The dashboard needs POSTLINE_API_TOKEN when the server listens beyond loopback.\n";
    return forbidden_open;
  }

  // The session (created on first contact, so even the login form has a CSRF token).
  std::string session_id = CookieValue(std::string(HeaderOf(request, "cookie")), kSessionCookie);
  Session session;
  bool new_session = false;
  {
    std::lock_guard lock(sessions_mu_);
    for (auto it = sessions_.begin(); it != sessions_.end();) {
      it = it->second.expires <= now ? sessions_.erase(it) : std::next(it);
    }
    auto it = sessions_.find(session_id);
    if (session_id.empty() || it == sessions_.end()) {
      if (sessions_.size() >= kMaxSessions) {
        // Drop an anonymous session to make room; logged-in ones stay.
        for (auto j = sessions_.begin(); j != sessions_.end(); ++j) {
          if (!j->second.authenticated) {
            sessions_.erase(j);
            break;
          }
        }
      }
      session_id = RandomHex(32);
      session = Session{RandomHex(32), false, now + settings_.session_lifetime};
      sessions_[session_id] = session;
      new_session = true;
    } else {
      session = it->second;
    }
  }

  std::string_view authorization = HeaderOf(request, "authorization");
  const bool bearer = !settings_.api_token.empty() && authorization.starts_with("Bearer ") &&
                      SecretsEqual(authorization.substr(7), settings_.api_token);
  const bool authenticated = settings_.api_token.empty() || session.authenticated || bearer;

  PageContext ctx{settings_, sources_, session.csrf,
                  !settings_.api_token.empty() && session.authenticated, now};
  auto finish = [&](DashboardResponse r) {
    PageHeaders(r);
    if (new_session) {
      r.headers.emplace_back("Set-Cookie",
                             SessionCookie(session_id, secure, settings_.session_lifetime));
    }
    return r;
  };
  auto error = [&](int status, std::string_view message) {
    return finish(dashboard_internal::ErrorPage(ctx, status, message));
  };

  std::vector<std::pair<std::string, std::string>> form;
  if (request.method == "POST") {
    form = ParseFormUrlEncoded(request.body);
    // Cross-site protection: same origin and the session's CSRF token.
    if (!SameOrigin(request)) {
      log_.Warn("dashboard_csrf_refused", {{"reason", "origin"}, {"path", std::string(path)}});
      return error(403, "This request did not come from the dashboard (Origin check).");
    }
    if (new_session || !SecretsEqual(FormValue(form, "csrf"), session.csrf)) {
      log_.Warn("dashboard_csrf_refused", {{"reason", "token"}, {"path", std::string(path)}});
      return error(403,
                   "The form has expired or did not come from the dashboard; reload the page.");
    }
  } else if (request.method != "GET" && request.method != "HEAD") {
    DashboardResponse r;
    r.status = 405;
    r.headers.emplace_back("Allow", "GET, HEAD, POST");
    r.headers.emplace_back("Content-Type", "text/plain; charset=utf-8");
    r.body = "method not allowed\n";
    return finish(std::move(r));
  }

  try {
    // --- login / logout ---
    if (path == "/login") {
      if (settings_.api_token.empty()) return finish(Redirect("/"));
      if (request.method == "POST") {
        if (!SecretsEqual(FormValue(form, "token"), settings_.api_token)) {
          log_.Warn("dashboard_login_failed", {{"peer_loopback", request.peer_is_loopback}});
          kainjow::mustache::data values;
          values.set("csrf", session.csrf);
          Page page;
          page.status = 401;
          page.title = "Log in";
          page.error = "That is not the API token.";
          page.content = dashboard_internal::RenderTemplate("login", values);
          return finish(dashboard_internal::RenderPage(ctx, page));
        }
        // A fresh session id on login (no fixation).
        std::string fresh = RandomHex(32);
        {
          std::lock_guard lock(sessions_mu_);
          sessions_.erase(session_id);
          sessions_[fresh] = Session{RandomHex(32), true, now + settings_.session_lifetime};
        }
        log_.Info("dashboard_login", {{"peer_loopback", request.peer_is_loopback}});
        auto r = Redirect("/");
        PageHeaders(r);
        r.headers.emplace_back("Set-Cookie",
                               SessionCookie(fresh, secure, settings_.session_lifetime));
        return r;
      }
      if (authenticated) return finish(Redirect("/"));
      kainjow::mustache::data values;
      values.set("csrf", session.csrf);
      Page page;
      page.title = "Log in";
      page.content = dashboard_internal::RenderTemplate("login", values);
      return finish(dashboard_internal::RenderPage(ctx, page));
    }
    if (path == "/logout" && request.method == "POST") {
      {
        std::lock_guard lock(sessions_mu_);
        sessions_.erase(session_id);
      }
      auto r = Redirect(settings_.api_token.empty() ? "/" : "/login");
      PageHeaders(r);
      r.headers.emplace_back("Set-Cookie", SessionCookie("", secure, std::chrono::seconds(0)));
      return r;
    }

    if (!authenticated) {
      if (request.method == "GET" || request.method == "HEAD") return finish(Redirect("/login"));
      return error(403, "Log in first.");
    }

    // --- pages ---
    if (request.method != "POST") {
      Page page;
      if (path == "/" || path.empty()) {
        page = QueuesPage(ctx);
      } else if (path == "/messages") {
        page = MessagesPage(ctx);
      } else if (path == "/dead-letters") {
        page = DeadLettersPage(ctx);
        page.flash = FlashFor(query);
      } else if (segments.size() == 3 && segments[0] == "dead-letters") {
        page = DeadLetterDetailPage(ctx, segments[1], segments[2]);
      } else if (path == "/sent") {
        page = SentPage(ctx, FormValue(ParseFormUrlEncoded(query), "q"));
      } else if (segments.size() == 2 && segments[0] == "emails") {
        page = EmailPage(ctx, segments[1]);
      } else if (segments.size() >= 4 && segments.size() <= 6 && segments[0] == "preview" &&
                 segments[1] == "dlq") {
        return finish(dashboard_internal::PreviewDeadLetter(
            ctx, segments[2], segments[3], segments.size() > 4 ? segments[4] : "",
            segments.size() > 5 ? segments[5] : ""));
      } else {
        return error(404, "There is no such page.");
      }
      return finish(dashboard_internal::RenderPage(ctx, page));
    }

    // --- actions ---
    if (path == "/dead-letters/action") {
      const std::string dlq_name = FormValue(form, "queue");
      const std::string action = FormValue(form, "action");
      const auto id_list = FormValues(form, "id");
      auto dlq = dashboard_internal::FindDeadLetterQueue(sources_, dlq_name);
      if (!dlq)
        return error(400, fmt::format("queue: \"{}\" is not a dead-letter queue", dlq_name));
      const bool all = action == "redrive-all" || action == "delete-all";
      const bool del = action == "delete" || action == "delete-all";
      if (!all && !del && action != "redrive") {
        return error(400, "action: must be redrive, delete, redrive-all or delete-all");
      }
      if (!all && id_list.empty()) {
        return error(400, "id: select at least one dead letter");
      }
      if ((all || del) && FormValue(form, "confirm") != "yes") {
        return finish(dashboard_internal::RenderPage(
            ctx, dashboard_internal::ConfirmPage(ctx, dlq_name, action, id_list)));
      }
      std::set<std::string> ids(id_list.begin(), id_list.end());
      auto done =
          del ? dashboard_internal::DeleteSelected(*dlq, ids, all, settings_.max_dead_letters)
              : dashboard_internal::RedriveSelected(sources_.queues, *dlq, ids, all,
                                                    settings_.max_dead_letters,
                                                    sources_.observer.get());
      if (!done) {
        return error(done.error().kind == ErrorKind::kTransient ? 503 : 500,
                     "The dead-letter queue could not be read: " + done.error().ToString());
      }
      for (const auto& e : done->errors) {
        log_.Warn("dashboard_dead_letter_failed",
                  {{"dlq", dlq_name}, {"action", action}, {"error", e}});
      }
      log_.Info("dashboard_dead_letters", {{"dlq", dlq_name},
                                           {"action", action},
                                           {"count", done->done},
                                           {"failed", done->errors.size()}});
      return finish(Redirect(
          fmt::format("/dead-letters?done={}&n={}&failed={}#{}", del ? "delete" : "redrive",
                      done->done, done->errors.size(), dashboard_internal::UrlEncode(dlq_name))));
    }
    return error(404, "There is no such action.");
  } catch (const std::exception& e) {
    log_.Error("dashboard_failed", {{"path", std::string(path)}, {"error", e.what()}});
    return error(500, "The page could not be rendered; see the server log.");
  }
}

}  // namespace postline
