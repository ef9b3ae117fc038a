// The HTTP API's handlers: requests in, responses out; no sockets here.
#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "postline/api.h"
#include "postline/dashboard.h"
#include "postline/json.h"

namespace postline::api {
namespace {

using nlohmann::json;
using std::chrono::system_clock;

// --- small helpers ----------------------------------------------------------------

std::string Rfc3339(system_clock::time_point t) {
  const long long ms = ToUnixMillis(t);
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// The media type of a Content-Type value, lower case, without parameters.
std::string MediaType(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  while (!t.empty() && t.front() == ' ') t.remove_prefix(1);
  return Lower(t);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes application/x-www-form-urlencoded text ('+' is a space).
Result<std::string> PercentDecode(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%') {
      if (i + 2 >= s.size() || HexValue(s[i + 1]) < 0 || HexValue(s[i + 2]) < 0) {
        return InvalidInput("invalid_query", "the query string has a malformed %-escape", "query");
      }
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

using Query = std::vector<std::pair<std::string, std::string>>;

Result<Query> ParseQuery(std::string_view q) {
  Query out;
  while (!q.empty()) {
    auto amp = q.find('&');
    std::string_view part = q.substr(0, amp);
    q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    auto name = PercentDecode(part.substr(0, eq));
    if (!name) return std::unexpected(name.error());
    auto value = PercentDecode(eq == std::string_view::npos ? "" : part.substr(eq + 1));
    if (!value) return std::unexpected(value.error());
    out.emplace_back(std::move(*name), std::move(*value));
  }
  return out;
}

std::vector<std::string> QueryValues(const Query& q, std::string_view name) {
  std::vector<std::string> out;
  for (const auto& [k, v] : q) {
    if (k == name) out.push_back(v);
  }
  return out;
}

std::array<unsigned char, 32> Sha256(std::string_view s) {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

// Constant-time comparison: both sides are hashed first, so neither the
// content nor the length of the token leaks through timing.
bool TokenMatches(std::string_view given, std::string_view expected) {
  const auto a = Sha256(given);
  const auto b = Sha256(expected);
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

HttpResponse JsonResponse(int status, const json& body) {
  HttpResponse r;
  r.status = status;
  // Messages may quote request bytes (a header, a token): invalid UTF-8 is
  // replaced, never thrown.
  r.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return r;
}

json ErrorJson(const Error& e) {
  return json{{"code", e.code}, {"message", e.message}, {"field", e.field}};
}

// Reads a JSON request body. Errors: unsupported_media_type, and those of
// ParseJson: malformed_json, json_too_deep, number_out_of_range.
Result<json> ReadJsonBody(const HttpRequest& req, bool allow_empty = false) {
  if (allow_empty && req.body.empty()) return json::object();
  const std::string type = MediaType(req.Header("content-type"));
  if (type != "application/json") {
    return InvalidInput("unsupported_media_type",
                        fmt::format("Content-Type must be application/json, got \"{}\"",
                                    std::string(req.Header("content-type"))),
                        "Content-Type");
  }
  return ParseJson(req.body, {.document = "the request body", .field = "body"});
}


Error Prefixed(Error e, std::string_view prefix) {
  if (prefix.empty()) return e;
  e.field = e.field.empty() ? std::string(prefix.substr(0, prefix.size() - 1))
                            : fmt::format("{}{}", prefix, e.field);
  e.message = fmt::format("{} {}", prefix.substr(0, prefix.size() - 1), e.message);
  return e;
}

bool ValidEnvelopeId(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](unsigned char c) {
    return std::isalnum(c) || c == '.' || c == '_' || c == '-';
  });
}

json StatusJson(const EmailStatus& s) {
  json out = {{"id", s.id},
              {"state", s.state},
              {"queue", s.queue},
              {"attempts", s.attempts},
              {"last_error", s.last_error},
              {"reply_code", s.reply_code},
              {"reply", s.reply},
              {"provider_message_id", s.provider_message_id},
              {"recipients", s.recipients},
              {"subject", s.subject},
              {"idempotency_key", s.idempotency_key},
              {"created_at", Rfc3339(s.created_at)},
              {"updated_at", Rfc3339(s.updated_at)},
              {"sent_at", nullptr}};
  if (s.sent_at) out["sent_at"] = Rfc3339(*s.sent_at);
  return out;
}

std::int64_t Depth(const QueueStats& s) {
  return s.approximate_number_of_messages + s.approximate_number_of_messages_not_visible +
         s.approximate_number_of_messages_delayed;
}

struct Lane {
  std::shared_ptr<Queue> queue;
  std::shared_ptr<Queue> dlq;
};

Result<std::vector<Lane>> SelectLanes(const QueuePair& q, std::string_view name,
                                      bool all_if_empty) {
  std::vector<Lane> lanes = {{q.priority, q.priority_dlq}, {q.regular, q.regular_dlq}};
  if ((name.empty() && all_if_empty) || name == "all") return lanes;
  for (const auto& lane : lanes) {
    if (lane.queue->name() == name || lane.dlq->name() == name) return std::vector<Lane>{lane};
  }
  return MakeError(ErrorKind::kNotFound, "QueueDoesNotExist",
                   fmt::format("queue: \"{}\" is not {}, {}, their DLQs, or \"all\"", name,
                               q.priority->name(), q.regular->name()),
                   "queue");
}

}  // namespace

// --- error mapping (the one place) -------------------------------------------------

int HttpStatusFor(const Error& e) {
  switch (e.kind) {
    case ErrorKind::kInvalidInput: {
      static const std::map<std::string_view, int> kByCode = {
          {"malformed_json", 400},    {"malformed_xml", 400},
          {"json_too_deep", 400},     {"invalid_type", 400},
          {"bad_request", 400},       {"invalid_query", 400},
          {"payload_too_large", 413}, {"unsupported_media_type", 415},
          {"unauthorized", 401},      {"method_not_allowed", 405},
          {"header_too_large", 431}};
      auto it = kByCode.find(e.code);
      return it == kByCode.end() ? 422 : it->second;
    }
    case ErrorKind::kNotFound:
      return 404;
    case ErrorKind::kTransient:
      return 503;
    case ErrorKind::kPermanent:
      return 422;
    case ErrorKind::kInternal:
      return 500;
  }
  return 500;
}

HttpResponse ErrorResponse(const Error& e) {
  Error shown = e;
  if (e.kind == ErrorKind::kInternal) {
    shown.message = "internal error; the server log has the details";
    shown.field.clear();
  }
  HttpResponse r = JsonResponse(HttpStatusFor(e), json{{"error", ErrorJson(shown)}});
  if (r.status == 401) r.headers.emplace_back("WWW-Authenticate", "Bearer");
  if (r.status == 503) r.headers.emplace_back("Retry-After", "5");
  return r;
}

std::string_view HttpRequest::Header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return v;
  }
  return {};
}

Result<ListenAddress> ParseListenAddress(std::string_view text, std::string_view field) {
  auto bad = [&] {
    return InvalidInput(
        "invalid_listen_address",
        fmt::format("{} must be HOST:PORT with a port 0–65535, e.g. 127.0.0.1:8080, "
                    "got \"{}\"",
                    field, text),
        std::string(field));
  };
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return bad();
  std::string_view host = text.substr(0, colon);
  std::string_view port_text = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || port_text.empty() || port_text.size() > 5) return bad();
  int port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return bad();
    port = port * 10 + (c - '0');
  }
  if (port > 65535) return bad();
  return ListenAddress{std::string(host), port};
}

// --- DLQ operations ------------------------------------------------------------------

Result<std::vector<std::pair<std::string, std::int64_t>>> RedriveDeadLetters(
    const QueuePair& queues, std::string_view queue, std::int64_t max, StatusObserver* observer) {
  auto lanes = SelectLanes(queues, queue, true);
  if (!lanes) return std::unexpected(lanes.error());
  std::vector<std::pair<std::string, std::int64_t>> moved;
  RedriveSelection selection;
  selection.max = max;
  for (const auto& lane : *lanes) {
    auto outcome = RedriveFromDeadLetterQueue(queues, *lane.dlq, selection, observer);
    if (!outcome) return std::unexpected(outcome.error());
    if (!outcome->errors.empty()) {
      // Messages already moved stay moved.
      return MakeError(ErrorKind::kTransient, "redrive_incomplete",
                       fmt::format("{} moved from {}, {} not: {}", outcome->moved,
                                   lane.dlq->name(), outcome->errors.size(),
                                   outcome->errors.front()));
    }
    moved.emplace_back(lane.queue->name(), outcome->moved);
  }
  return moved;
}

Result<std::vector<std::pair<std::string, std::int64_t>>> PurgeDeadLetters(const QueuePair& queues,
                                                                           std::string_view queue) {
  auto lanes = SelectLanes(queues, queue, false);
  if (!lanes) return std::unexpected(lanes.error());
  std::vector<std::pair<std::string, std::int64_t>> purged;
  for (const auto& lane : *lanes) {
    auto stats = lane.dlq->GetQueueAttributes();
    if (!stats) return std::unexpected(stats.error());
    if (auto ok = lane.dlq->PurgeQueue(); !ok) return std::unexpected(ok.error());
    purged.emplace_back(lane.dlq->name(), Depth(*stats));
  }
  return purged;
}

// --- the service ------------------------------------------------------------------------

struct ApiService::State {
  ApiSettings settings;
  ApiDependencies deps;
  Log log;
  StatusObserver* observer = nullptr;

  std::mutex alarm_mu;
  std::map<std::string, std::chrono::steady_clock::time_point> last_alarm;

  std::mutex ready_mu;
  std::chrono::steady_clock::time_point transport_checked;
  Result<void> transport_ok = {};
  bool transport_checked_once = false;

  State(ApiSettings s, ApiDependencies d)
      : settings(std::move(s)), deps(std::move(d)), log(deps.logger) {
    observer = deps.observer ? deps.observer.get() : deps.state.get();
    // The web dashboard answers the paths outside the API (postline/dashboard.h).
    dashboard = std::make_unique<Dashboard>(
        DashboardSettings{.api_token = settings.token,
                          .loopback_only = IsLoopbackHost(settings.listen.host),
                          .depth_alarm = settings.depth_alarm},
        DashboardSources{deps.queues, deps.state,
                         deps.observer ? deps.observer : deps.state, deps.clock},
        log);
  }
  std::unique_ptr<Dashboard> dashboard;

  using Params = std::vector<std::string>;
  using Handler = HttpResponse (State::*)(const HttpRequest&, const Query&, const Params&);

  struct Route {
    RouteInfo info;
    Handler handler;
  };

  static const std::vector<Route>& Table() {
    static const std::vector<Route> kRoutes = {
        {{"POST", "/v1/emails", true}, &State::PostEmail},
        {{"POST", "/v1/emails:batch", true}, &State::PostEmailBatch},
        {{"GET", "/v1/emails/{id}", true}, &State::GetEmail},
        {{"POST", "/v1/invoices:email", true}, &State::PostInvoiceEmail},
        {{"POST", "/v1/invoices:render", true}, &State::PostInvoiceRender},
        {{"GET", "/v1/queues", true}, &State::GetQueues},
        {{"GET", "/v1/dlq", true}, &State::GetDlq},
        {{"POST", "/v1/dlq:redrive", true}, &State::PostDlqRedrive},
        {{"POST", "/v1/dlq:purge", true}, &State::PostDlqPurge},
        {{"GET", "/healthz", false}, &State::GetHealthz},
        {{"GET", "/readyz", false}, &State::GetReadyz},
        {{"GET", "/metrics", false}, &State::GetMetrics},
    };
    return kRoutes;
  }

  // Matches `path` against a pattern; {name} matches one non-empty segment.
  static bool Match(std::string_view pattern, std::string_view path, Params& params) {
    params.clear();
    while (!pattern.empty() || !path.empty()) {
      if (pattern.empty() || path.empty()) return false;
      if (pattern.front() != '/' || path.front() != '/') return false;
      pattern.remove_prefix(1);
      path.remove_prefix(1);
      auto p_end = pattern.find('/');
      auto s_end = path.find('/');
      std::string_view p_seg = pattern.substr(0, p_end);
      std::string_view s_seg = path.substr(0, s_end);
      if (p_seg.size() > 2 && p_seg.front() == '{' && p_seg.back() == '}') {
        if (s_seg.empty()) return false;
        params.emplace_back(s_seg);
      } else if (p_seg != s_seg) {
        return false;
      }
      pattern = p_end == std::string_view::npos ? std::string_view() : pattern.substr(p_end);
      path = s_end == std::string_view::npos ? std::string_view() : path.substr(s_end);
    }
    return true;
  }

  HttpResponse Handle(const HttpRequest& req) {
    std::string_view target = req.target;
    const auto qmark = target.find('?');
    std::string_view path = target.substr(0, qmark);
    std::string_view query_text =
        qmark == std::string_view::npos ? std::string_view() : target.substr(qmark + 1);
    Params params;
    std::vector<std::string> allowed;
    const Route* found = nullptr;
    for (const auto& route : Table()) {
      if (!Match(route.info.path, path, params)) continue;
      if (route.info.method == req.method) {
        found = &route;
        break;
      }
      allowed.push_back(route.info.method);
    }
    if (!found) {
      if (allowed.empty() && Dashboard::Serves(path)) {
        return ToApiResponse<HttpResponse>(dashboard->Handle(FromApiRequest(req)));
      }
      if (!allowed.empty()) {
        std::string allow;
        for (const auto& m : allowed) allow += allow.empty() ? m : ", " + m;
        HttpResponse r = ErrorResponse(
            {ErrorKind::kInvalidInput, "method_not_allowed",
             fmt::format("{} is not allowed on {}; use {}", req.method, path, allow), "method"});
        r.headers.emplace_back("Allow", allow);
        return r;
      }
      return ErrorResponse({ErrorKind::kNotFound, "not_found",
                            fmt::format("no route {} {}", req.method, path), "path"});
    }
    // Re-match to fill params for the found route.
    Match(found->info.path, path, params);
    HttpResponse response = [&]() -> HttpResponse {
      if (found->info.needs_token && !settings.token.empty()) {
        std::string_view auth = req.Header("authorization");
        if (auth.empty()) {
          return ErrorResponse({ErrorKind::kInvalidInput, "unauthorized",
                                "missing bearer token: send \"Authorization: Bearer <token>\"",
                                "Authorization"});
        }
        constexpr std::string_view kBearer = "bearer ";
        if (auth.size() <= kBearer.size() || Lower(auth.substr(0, kBearer.size())) != kBearer ||
            !TokenMatches(auth.substr(kBearer.size()), settings.token)) {
          return ErrorResponse(
              {ErrorKind::kInvalidInput, "unauthorized", "invalid bearer token", "Authorization"});
        }
      }
      auto query = ParseQuery(query_text);
      if (!query) return ErrorResponse(query.error());
      return (this->*(found->handler))(req, *query, params);
    }();
    response.route = found->info.path;
    return response;
  }

  // Idempotency-Key (header) or the envelope's idempotency_key.
  Result<std::string> IdempotencyKey(const HttpRequest& req, const Email* email) {
    std::string header(req.Header("idempotency-key"));
    if (header.size() > 128 || std::any_of(header.begin(), header.end(),
                                           [](unsigned char c) { return c < 0x21 || c > 0x7e; })) {
      return InvalidInput("invalid_idempotency_key",
                          "Idempotency-Key must be 1–128 printable ASCII characters without spaces",
                          "Idempotency-Key");
    }
    if (email && !header.empty() && !email->idempotency_key.empty() &&
        email->idempotency_key != header) {
      return InvalidInput("idempotency_key_conflict",
                          "the Idempotency-Key header and the envelope's idempotency_key differ",
                          "idempotency_key");
    }
    if (!header.empty()) return header;
    return email ? email->idempotency_key : std::string();
  }

  // The 202 body for a replayed key: the same id, the current state.
  HttpResponse Replay(const IdempotencyClaim& claim) {
    std::string state = "queued", queue = claim.queue;
    if (auto s = deps.state->GetStatus(claim.envelope_id); s && s->has_value()) {
      state = (*s)->state;
      if (queue.empty()) queue = (*s)->queue;
    }
    HttpResponse r = JsonResponse(
        202,
        json{{"id", claim.envelope_id}, {"queue", queue}, {"status", state}, {"replayed", true}});
    r.headers.emplace_back("Idempotent-Replayed", "true");
    r.headers.emplace_back("Location", "/v1/emails/" + claim.envelope_id);
    r.envelope_id = claim.envelope_id;
    return r;
  }

  // Validates, claims the idempotency key when there is one, and queues.
  HttpResponse EnqueueOne(Email email, const std::string& key, json extra = json::object()) {
    if (email.id.empty()) email.id = NewEnvelopeId(*deps.clock);
    if (auto ok = ValidateEmail(email); !ok) return ErrorResponse(ok.error());
    if (!key.empty()) {
      email.idempotency_key = key;
      auto claim = deps.state->ClaimIdempotencyKey(key, email.id);
      if (!claim) return ErrorResponse(claim.error());
      if (claim->existed) return Replay(*claim);
    }
    const std::string id = email.id;
    auto queued = EnqueueEmail(deps.queues, std::move(email), *deps.clock, observer);
    if (!queued) {
      if (!key.empty()) (void)deps.state->ReleaseIdempotencyKey(key, id);
      return ErrorResponse(queued.error());
    }
    if (!key.empty()) (void)deps.state->SetIdempotencyQueue(key, queued->queue);
    json body = {{"id", queued->id}, {"queue", queued->queue}, {"status", "queued"}};
    body.update(extra);
    HttpResponse r = JsonResponse(202, body);
    r.headers.emplace_back("Location", "/v1/emails/" + queued->id);
    r.envelope_id = queued->id;
    log.Info("api_enqueued", {{"envelope_id", queued->id}, {"queue", queued->queue}});
    return r;
  }

  // An envelope from a JSON document (from defaulted); path attachments refused.
  Result<Email> EnvelopeFrom(const json& doc, std::string_view prefix) {
    if (!doc.is_object()) {
      return std::unexpected(Prefixed(
          Error{ErrorKind::kInvalidInput, "invalid_type", "an envelope must be a JSON object", ""},
          prefix));
    }
    // The sender defaults to POSTLINE_FROM.
    json with_from = doc;
    if ((!doc.contains("from") || doc["from"].is_null()) && !deps.default_from.empty()) {
      with_from["from"] = deps.default_from;
    }
    // No base directory: attachments given by path are refused.
    auto email = ParseEmailJson(with_from.dump(), "");
    if (!email) return std::unexpected(Prefixed(email.error(), prefix));
    if (email->from.email.empty()) {
      if (deps.default_from.empty()) {
        return std::unexpected(
            Prefixed(Error{ErrorKind::kInvalidInput, "missing_field",
                           "from is required (no POSTLINE_FROM default is configured)", "from"},
                     prefix));
      }
      auto from = ParseAddress(deps.default_from, "POSTLINE_FROM");
      if (!from) return std::unexpected(from.error());
      email->from = *from;
    }
    return email;
  }

  // POST /v1/emails
  HttpResponse PostEmail(const HttpRequest& req, const Query&, const Params&) {
    auto doc = ReadJsonBody(req);
    if (!doc) return ErrorResponse(doc.error());
    auto email = EnvelopeFrom(*doc, "");
    if (!email) return ErrorResponse(email.error());
    auto key = IdempotencyKey(req, &*email);
    if (!key) return ErrorResponse(key.error());
    return EnqueueOne(std::move(*email), *key);
  }

  // POST /v1/emails:batch
  HttpResponse PostEmailBatch(const HttpRequest& req, const Query&, const Params&) {
    auto doc = ReadJsonBody(req);
    if (!doc) return ErrorResponse(doc.error());
    if (!req.Header("idempotency-key").empty()) {
      return ErrorResponse({ErrorKind::kInvalidInput, "bad_request",
                            "Idempotency-Key is not used on a batch; give each envelope its "
                            "idempotency_key",
                            "Idempotency-Key"});
    }
    if (!doc->is_object() || !doc->contains("emails") || !(*doc)["emails"].is_array()) {
      return ErrorResponse({ErrorKind::kInvalidInput, "invalid_type",
                            "the body must be {\"emails\": [envelope, …]}", "emails"});
    }
    const json& items = (*doc)["emails"];
    if (items.empty() || items.size() > settings.max_batch) {
      return ErrorResponse(
          {ErrorKind::kInvalidInput, "invalid_batch_size",
           fmt::format("emails must hold 1–{} envelopes, got {}", settings.max_batch, items.size()),
           "emails"});
    }
    json results = json::array();
    std::vector<Email> valid;
    std::vector<std::size_t> valid_index;
    std::vector<std::string> valid_keys;
    std::size_t rejected = 0, replayed = 0;
    for (std::size_t i = 0; i < items.size(); ++i) {
      const std::string prefix = fmt::format("emails[{}].", i);
      results.push_back(json{{"index", i}});
      auto email = EnvelopeFrom(items[i], prefix);
      if (email && email->id.empty()) email->id = NewEnvelopeId(*deps.clock);
      Result<void> ok =
          email ? ValidateEmail(*email) : Result<void>(std::unexpected(email.error()));
      if (email && !ok) ok = std::unexpected(Prefixed(ok.error(), prefix));
      if (!ok) {
        results[i]["status"] = "rejected";
        results[i]["error"] = ErrorJson(ok.error());
        ++rejected;
        continue;
      }
      const std::string key = email->idempotency_key;
      if (!key.empty()) {
        auto claim = deps.state->ClaimIdempotencyKey(key, email->id);
        if (!claim) {
          results[i]["status"] = "rejected";
          results[i]["error"] = ErrorJson(Prefixed(claim.error(), prefix));
          ++rejected;
          continue;
        }
        if (claim->existed) {
          HttpResponse replay = Replay(*claim);
          if (auto body = ParseJson(replay.body)) results[i].update(*body);
          ++replayed;
          continue;
        }
      }
      valid.push_back(std::move(*email));
      valid_index.push_back(i);
      valid_keys.push_back(key);
    }
    std::size_t queued = 0;
    if (!valid.empty()) {
      std::vector<std::string> ids;
      for (const auto& e : valid) ids.push_back(e.id);
      auto sent = EnqueueEmails(deps.queues, std::move(valid), *deps.clock, observer);
      for (std::size_t k = 0; k < valid_index.size(); ++k) {
        json& item = results[valid_index[k]];
        const Result<EnqueueResult>* r = sent ? &(*sent)[k] : nullptr;
        if (r && *r) {
          item["id"] = (*r)->id;
          item["queue"] = (*r)->queue;
          item["status"] = "queued";
          if (!valid_keys[k].empty())
            (void)deps.state->SetIdempotencyQueue(valid_keys[k], (*r)->queue);
          ++queued;
        } else {
          const Error& e = r ? r->error() : sent.error();
          if (!valid_keys[k].empty())
            (void)deps.state->ReleaseIdempotencyKey(valid_keys[k], ids[k]);
          item["status"] = "rejected";
          item["error"] = ErrorJson(e);
          ++rejected;
        }
      }
    }
    log.Info("api_batch", {{"queued", queued}, {"rejected", rejected}, {"replayed", replayed}});
    return JsonResponse(200, json{{"results", results},
                                  {"queued", queued},
                                  {"rejected", rejected},
                                  {"replayed", replayed}});
  }

  // GET /v1/emails/{id}
  HttpResponse GetEmail(const HttpRequest&, const Query&, const Params& params) {
    const std::string& id = params.at(0);
    if (!ValidEnvelopeId(id)) {
      return ErrorResponse({ErrorKind::kNotFound, "not_found",
                            "id: an envelope id is 1–128 of [A-Za-z0-9._-]", "id"});
    }
    auto s = deps.state->GetStatus(id);
    if (!s) return ErrorResponse(s.error());
    if (s->has_value()) {
      HttpResponse r = JsonResponse(200, StatusJson(**s));
      r.envelope_id = id;
      return r;
    }
    // Sent before the status store knew it (e.g. queued by a process without one).
    if (deps.state) {
      auto sent = deps.state->FindSent(id);
      if (sent && sent->has_value()) {
        EmailStatus st;
        st.id = id;
        st.state = "sent";
        st.queue = (*sent)->queue;
        st.attempts = (*sent)->attempts;
        st.reply = (*sent)->reply;
        st.provider_message_id = (*sent)->provider_message_id;
        st.idempotency_key = (*sent)->idempotency_key;
        st.created_at = st.updated_at = (*sent)->sent_at;
        st.sent_at = (*sent)->sent_at;
        HttpResponse r = JsonResponse(200, StatusJson(st));
        r.envelope_id = id;
        return r;
      }
    }
    return ErrorResponse({ErrorKind::kNotFound, "not_found",
                          fmt::format("id: no e-mail with id \"{}\" is known", id), "id"});
  }

  Result<invoice::Invoice> ReadInvoice(const HttpRequest& req) {
    const std::string type = MediaType(req.Header("content-type"));
    invoice::FormatHint hint = invoice::FormatHint::kAuto;
    if (type == "application/json") {
      hint = invoice::FormatHint::kJson;
    } else if (type == "application/xml" || type == "text/xml") {
      hint = invoice::FormatHint::kUbl;
    } else {
      return InvalidInput("unsupported_media_type",
                          fmt::format("Content-Type must be application/json (postline invoice "
                                      "JSON) or application/xml / text/xml (UBL 2.1), got \"{}\"",
                                      std::string(req.Header("content-type"))),
                          "Content-Type");
    }
    auto inv = invoice::ParseInvoice(req.body, hint, "invoice");
    // As with attachment paths: the server does not read files a client names.
    if (inv && !inv->seller.logo_path.empty()) {
      return InvalidInput("logo_path_refused",
                          "/seller/logo: a logo file path is not accepted over HTTP",
                          "/seller/logo");
    }
    return inv;
  }

  // POST /v1/invoices:email
  HttpResponse PostInvoiceEmail(const HttpRequest& req, const Query& query, const Params&) {
    auto inv = ReadInvoice(req);
    if (!inv) return ErrorResponse(inv.error());
    std::vector<Address> to, cc;
    for (auto [name, list] : {std::pair{"to", &to}, std::pair{"cc", &cc}}) {
      for (const auto& text : QueryValues(query, name)) {
        auto addrs = ParseAddressList(text, name);
        if (!addrs) return ErrorResponse(addrs.error());
        list->insert(list->end(), addrs->begin(), addrs->end());
      }
    }
    bool attach_xml = false;
    for (const auto& v : QueryValues(query, "attach_xml")) attach_xml = v == "true" || v == "1";
    auto from = ParseAddress(deps.default_from, "POSTLINE_FROM");
    if (!from) {
      return ErrorResponse({ErrorKind::kInternal, "sender_not_configured",
                            "POSTLINE_FROM is not set or invalid; invoices need a sender", ""});
    }
    auto email = invoice::BuildInvoiceEmail(*inv, deps.render, *from, to, attach_xml);
    if (!email) {
      Error e = email.error();
      if (e.code == "missing_recipient") e.field = "to";
      return ErrorResponse(e);
    }
    email->cc = cc;
    auto key = IdempotencyKey(req, nullptr);
    if (!key) return ErrorResponse(key.error());
    return EnqueueOne(std::move(*email), *key, json{{"invoice", inv->number}});
  }

  // POST /v1/invoices:render
  HttpResponse PostInvoiceRender(const HttpRequest& req, const Query&, const Params&) {
    auto inv = ReadInvoice(req);
    if (!inv) return ErrorResponse(inv.error());
    auto pdf = invoice::RenderInvoicePdf(*inv, deps.render);
    if (!pdf) return ErrorResponse(pdf.error());
    HttpResponse r;
    r.status = 200;
    r.content_type = "application/pdf";
    r.body = std::move(*pdf);
    r.headers.emplace_back("Content-Disposition",
                           fmt::format("inline; filename=\"{}\"", invoice::PdfFileName(*inv)));
    return r;
  }

  Result<json> QueueRows() {
    json out = json::array();
    for (const auto& lane : std::vector<Lane>{{deps.queues.priority, deps.queues.priority_dlq},
                                              {deps.queues.regular, deps.queues.regular_dlq}}) {
      auto stats = lane.queue->GetQueueAttributes();
      if (!stats) return std::unexpected(stats.error());
      auto dlq = lane.dlq->GetQueueAttributes();
      if (!dlq) return std::unexpected(dlq.error());
      deps.metrics->SetQueue(lane.queue->name(), *stats, "");
      deps.metrics->SetQueue(lane.dlq->name(), *dlq, lane.queue->name());
      json q = {{"queue", lane.queue->name()},
                {"available", stats->approximate_number_of_messages},
                {"in_flight", stats->approximate_number_of_messages_not_visible},
                {"delayed", stats->approximate_number_of_messages_delayed},
                {"oldest_age_s", stats->approximate_age_of_oldest_message_seconds},
                {"dlq", lane.dlq->name()},
                {"dlq_depth", Depth(*dlq)},
                {"dlq_available", dlq->approximate_number_of_messages},
                {"dlq_in_flight", dlq->approximate_number_of_messages_not_visible},
                {"dlq_delayed", dlq->approximate_number_of_messages_delayed},
                {"dlq_oldest_age_s", dlq->approximate_age_of_oldest_message_seconds}};
      if (deps.state) {
        auto total = deps.state->CountSentSince({}, lane.queue->name());
        if (total) {
          q["sent"] = *total;
          deps.metrics->SetSentLogTotal(lane.queue->name(), *total);
        }
      }
      Alarm(lane.queue->name(), Depth(*stats));
      Alarm(lane.dlq->name(), Depth(*dlq));
      out.push_back(q);
    }
    return out;
  }

  void Alarm(const std::string& queue, std::int64_t depth) {
    if (depth <= settings.depth_alarm) return;
    const auto now = deps.clock->SteadyNow();
    {
      std::lock_guard lock(alarm_mu);
      auto it = last_alarm.find(queue);
      if (it != last_alarm.end() && now - it->second < settings.depth_check_interval) return;
      last_alarm[queue] = now;
    }
    log.Warn("queue_depth_alarm",
             {{"queue", queue}, {"depth", depth}, {"threshold", settings.depth_alarm}});
  }

  // GET /v1/queues
  HttpResponse GetQueues(const HttpRequest&, const Query&, const Params&) {
    auto rows = QueueRows();
    if (!rows) return ErrorResponse(rows.error());
    return JsonResponse(200, json{{"queues", *rows}, {"depth_alarm", settings.depth_alarm}});
  }

  Result<int> IntParam(const Query& q, std::string_view name, int def, int min, int max) {
    auto values = QueryValues(q, name);
    if (values.empty()) return def;
    const std::string& v = values.back();
    int n = 0;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || ptr != v.data() + v.size() || n < min || n > max) {
      return InvalidInput("invalid_query",
                          fmt::format("{} must be an integer {}–{}, got \"{}\"", name, min, max, v),
                          std::string(name));
    }
    return n;
  }

  // GET /v1/dlq
  HttpResponse GetDlq(const HttpRequest&, const Query& query, const Params&) {
    auto limit = IntParam(query, "limit", 100, 1, 1000);
    if (!limit) return ErrorResponse(limit.error());
    json queues = json::array();
    for (const auto& lane : std::vector<Lane>{{deps.queues.priority, deps.queues.priority_dlq},
                                              {deps.queues.regular, deps.queues.regular_dlq}}) {
      auto stats = lane.dlq->GetQueueAttributes();
      if (!stats) return ErrorResponse(stats.error());
      queues.push_back(json{{"dlq", lane.dlq->name()},
                            {"queue", lane.queue->name()},
                            {"depth", Depth(*stats)},
                            {"oldest_age_s", stats->approximate_age_of_oldest_message_seconds}});
    }
    auto dead = deps.state->ListStatus("dead", *limit);
    if (!dead) return ErrorResponse(dead.error());
    json letters = json::array();
    for (const auto& s : *dead) {
      std::string reason = s.last_error.substr(0, s.last_error.find(':'));
      letters.push_back(json{{"id", s.id},
                             {"queue", s.queue},
                             {"reason", reason},
                             {"last_error", s.last_error},
                             {"reply_code", s.reply_code},
                             {"attempts", s.attempts},
                             {"subject", s.subject},
                             {"recipients", s.recipients},
                             {"dead_at", Rfc3339(s.updated_at)}});
    }
    return JsonResponse(200, json{{"queues", queues}, {"dead", letters}});
  }

  // POST /v1/dlq:redrive
  HttpResponse PostDlqRedrive(const HttpRequest& req, const Query&, const Params&) {
    auto doc = ReadJsonBody(req, true);
    if (!doc) return ErrorResponse(doc.error());
    if (!doc->is_object()) {
      return ErrorResponse(
          {ErrorKind::kInvalidInput, "invalid_type", "the body must be a JSON object", "body"});
    }
    std::string queue;
    std::int64_t max = 1000;
    if (doc->contains("queue")) {
      if (!(*doc)["queue"].is_string()) {
        return ErrorResponse(
            {ErrorKind::kInvalidInput, "invalid_type", "queue must be a string", "queue"});
      }
      queue = (*doc)["queue"].get<std::string>();
    }
    if (doc->contains("max")) {
      const auto& m = (*doc)["max"];
      if (!m.is_number_integer() || m.get<std::int64_t>() < 1 || m.get<std::int64_t>() > 100000) {
        return ErrorResponse(
            {ErrorKind::kInvalidInput, "invalid_field", "max must be an integer 1–100000", "max"});
      }
      max = m.get<std::int64_t>();
    }
    auto moved = RedriveDeadLetters(deps.queues, queue, max, observer);
    if (!moved) return ErrorResponse(moved.error());
    json out = json::object();
    std::int64_t total = 0;
    for (const auto& [q, n] : *moved) {
      out[q] = n;
      total += n;
    }
    log.Info("api_dlq_redrive", {{"redriven", total}});
    return JsonResponse(200, json{{"redriven", out}, {"total", total}});
  }

  // POST /v1/dlq:purge
  HttpResponse PostDlqPurge(const HttpRequest& req, const Query&, const Params&) {
    auto doc = ReadJsonBody(req);
    if (!doc) return ErrorResponse(doc.error());
    if (!doc->is_object() || !doc->contains("queue") || !(*doc)["queue"].is_string()) {
      return ErrorResponse({ErrorKind::kInvalidInput, "missing_field",
                            "queue is required: a lane's queue or DLQ name, or \"all\"", "queue"});
    }
    auto purged = PurgeDeadLetters(deps.queues, (*doc)["queue"].get<std::string>());
    if (!purged) return ErrorResponse(purged.error());
    json out = json::object();
    for (const auto& [q, n] : *purged) out[q] = n;
    log.Warn("api_dlq_purge", {{"purged", out}});
    return JsonResponse(200, json{{"purged", out}});
  }

  HttpResponse GetHealthz(const HttpRequest&, const Query&, const Params&) {
    return JsonResponse(200, json{{"status", "ok"}});
  }

  // GET /readyz: every queue answers, and (with the worker in this process)
  // the transport's check passes (cached for 10 s so probes don't open an
  // SMTP session each).
  HttpResponse GetReadyz(const HttpRequest&, const Query&, const Params&) {
    bool ready = true;
    json queues = json::object();
    for (const auto& q : {deps.queues.priority, deps.queues.regular, deps.queues.priority_dlq,
                          deps.queues.regular_dlq}) {
      auto stats = q->GetQueueAttributes();
      queues[q->name()] =
          stats ? json{{"ok", true}} : json{{"ok", false}, {"error", stats.error().ToString()}};
      ready = ready && stats.has_value();
    }
    json out = {{"queues", queues}};
    if (deps.transport) {
      std::lock_guard lock(ready_mu);
      const auto now = deps.clock->SteadyNow();
      if (!transport_checked_once || now - transport_checked > std::chrono::seconds(10)) {
        transport_ok = deps.transport()->Check();
        transport_checked = now;
        transport_checked_once = true;
      }
      out["transport"] = transport_ok
                             ? json{{"ok", true}}
                             : json{{"ok", false}, {"error", transport_ok.error().ToString()}};
      ready = ready && transport_ok.has_value();
    }
    out["status"] = ready ? "ready" : "unavailable";
    return JsonResponse(ready ? 200 : 503, out);
  }

  HttpResponse GetMetrics(const HttpRequest&, const Query&, const Params&) {
    if (auto rows = QueueRows(); !rows) {
      log.Warn("metrics_queue_stats_failed", {{"error", rows.error().ToString()}});
    }
    HttpResponse r;
    r.status = 200;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = deps.metrics->Serialize();
    return r;
  }
};

ApiService::ApiService(ApiSettings settings, ApiDependencies deps)
    : state_(std::make_shared<State>(std::move(settings), std::move(deps))) {
  state_->deps.metrics->SetDepthAlarm(state_->settings.depth_alarm);
}

const std::vector<RouteInfo>& ApiService::Routes() {
  static const std::vector<RouteInfo> kInfo = [] {
    std::vector<RouteInfo> out;
    for (const auto& r : State::Table()) out.push_back(r.info);
    return out;
  }();
  return kInfo;
}

HttpResponse ApiService::Handle(const HttpRequest& request) {
  try {
    return state_->Handle(request);
  } catch (const std::exception& e) {
    state_->log.Error("api_handler_exception", {{"path", request.target}, {"error", e.what()}});
  } catch (...) {
    state_->log.Error("api_handler_exception", {{"path", request.target}});
  }
  return ErrorResponse({ErrorKind::kInternal, "internal_error", "unexpected exception", ""});
}

Result<nlohmann::json> ApiService::RefreshQueueStats() { return state_->QueueRows(); }

}  // namespace postline::api
