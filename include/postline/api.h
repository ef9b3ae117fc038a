// postline/api.h — the HTTP API (`postline serve`, `postline api`):
// enqueue e-mails and invoices, read an e-mail's status, queue and DLQ
// metrics, health, readiness and Prometheus metrics. The routes, request and
// response bodies are described in docs/openapi.yaml and docs/api.md.
//
// Two layers:
//   ApiService — the handlers: a request in, a response out, blocking
//                (queues, SQLite, PDF rendering). No sockets; unit-tested.
//   ApiServer  — HTTP/1.1 on Boost.Beast + Asio: asynchronous reads with
//                timeouts and size limits on a small I/O thread pool; every
//                request is handled on a separate blocking pool, so neither a
//                slow client nor a slow handler stalls the event loop.
//
// Errors are answered as {"error": {"code", "message", "field"}}; the one
// mapping from postline::Error to an HTTP status is HttpStatusFor.
//
// Thread-safety: ApiService::Handle may be called from many threads at once.
// ApiServer's Start and Stop are called from one thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "postline/clock.h"
#include "postline/error.h"
#include "postline/invoice.h"
#include "postline/log.h"
#include "postline/service.h"
#include "postline/queue.h"
#include "postline/state.h"
#include "postline/transport.h"

namespace postline::api {

// HOST:PORT to listen on. host is a name or an IP literal ("[::1]" form for
// IPv6); port 0 asks the system for a free port.
struct ListenAddress {
  std::string host = "127.0.0.1";
  int port = 8080;
};

// Parses "HOST:PORT" ("127.0.0.1:8080", "localhost:0", "[::1]:9000",
// "0.0.0.0:80"). Errors: kInvalidInput "invalid_listen_address" naming
// `field` when the host is empty or the port is not 0–65535.
Result<ListenAddress> ParseListenAddress(std::string_view text,
                                         std::string_view field = "--listen");

struct ApiSettings {
  ListenAddress listen;
  // Bearer token every /v1 route requires (POSTLINE_API_TOKEN). Empty: no
  // token — allowed only when every address the server binds is loopback.
  std::string token;
  std::size_t max_body_bytes = 10 * 1024 * 1024;  // request body limit → 413
  std::size_t max_header_bytes = 8 * 1024;        // request header limit → 431
  // A new or kept-alive connection has idle_timeout to send a complete
  // request header, then read_timeout for the body (a timed-out connection
  // is closed).
  std::chrono::seconds idle_timeout{30};
  std::chrono::seconds read_timeout{30};
  std::chrono::seconds write_timeout{30};  // sending one response
  std::chrono::seconds drain_timeout{30};  // Stop(): longest wait for in-flight requests
  int io_threads = 2;                      // event loop threads, 1–64
  int blocking_threads = 4;                // handler threads (SQLite, PDF), 1–256
  int max_connections = 1024;              // more are answered 503 and closed
  std::int64_t depth_alarm = 1000;         // POSTLINE_DEPTH_ALARM: warn while a queue is deeper
  std::chrono::seconds depth_check_interval{15};  // periodic depth check and warning rate
  std::size_t max_batch = 500;                    // envelopes per POST /v1/emails:batch
};

// Prometheus metrics of one process: HTTP requests, e-mails sent and failed
// by transport and lane, send durations, queue gauges, the depth-alarm
// threshold. Thread-safe.
class Metrics {
 public:
  // `transport` labels the delivery counters ("smtp", "file", …).
  explicit Metrics(std::string transport);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // A StatusObserver that counts sent / retrying / dead e-mails, observes
  // the time from "sending" to the outcome in the send-duration histogram,
  // and forwards every event to `inner` (may be null). The lane of an event
  // is "priority" when its queue is `priority_queue` or its DLQ, else
  // "regular". The returned observer holds a reference to this Metrics.
  std::shared_ptr<StatusObserver> Observe(std::shared_ptr<StatusObserver> inner,
                                          std::string priority_queue);

  // Counts one answered HTTP request (`route` is the route's pattern, or
  // "unmatched").
  void CountRequest(std::string_view method, std::string_view route, int status);

  // Sets the gauges of one queue from its attributes; `dlq_of` names the
  // source queue when `queue` is a DLQ ("" otherwise).
  void SetQueue(const std::string& queue, const QueueStats& stats, const std::string& dlq_of);
  // Sets the sent-log total of a queue (records kept by the sent log).
  void SetSentLogTotal(const std::string& queue, std::int64_t total);
  void SetDepthAlarm(std::int64_t threshold);

  // The Prometheus text exposition format (version 0.0.4).
  std::string Serialize() const;

  struct Impl;  // implementation detail (prometheus-cpp registry)

 private:
  std::shared_ptr<Impl> impl_;
};

// What the handlers use; wired by the program's entry point.
struct ApiDependencies {
  QueuePair queues;                          // all four queues; required
  std::shared_ptr<StateStore> state;         // required
  std::shared_ptr<StatusObserver> observer;  // receives "queued"; null: `state`
  invoice::InvoiceRenderSettings render;     // as for `postline invoice`
  std::string default_from;                  // POSTLINE_FROM ("Name <addr>"); may be empty
  TransportFactory transport;                // checked by /readyz; empty: not checked
  std::shared_ptr<Clock> clock;              // required
  std::shared_ptr<spdlog::logger> logger;    // required
  std::shared_ptr<Metrics> metrics;          // required
};

struct HttpRequest {
  std::string method;  // "GET", "POST", …
  std::string target;  // origin-form: path and optional "?query"
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  std::string body;
  // The first value of header `name` (lower case), or "".
  std::string_view Header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  std::string route = "unmatched";  // the matched route's pattern (for metrics and logs)
  std::string envelope_id;          // when the request created or named one (for logs)
};

// One entry of the route table (the same table docs/openapi.yaml describes).
struct RouteInfo {
  std::string method;  // "GET" | "POST"
  std::string path;    // OpenAPI form: "/v1/emails/{id}"
  bool needs_token;    // /v1 routes
};

// The one mapping from an error to an HTTP status:
//   kInvalidInput → 400 for a request that cannot be read ("malformed_json",
//     "json_too_deep", "malformed_xml", "invalid_type", "bad_request",
//     "invalid_query"), 413
//     "payload_too_large", 415 "unsupported_media_type", 401 "unauthorized",
//     405 "method_not_allowed", 431 "header_too_large", else 422;
//   kNotFound → 404; kTransient → 503; kPermanent → 422; kInternal → 500.
int HttpStatusFor(const Error& error);

// The JSON error body {"error": {"code", "message", "field"}} for `error`
// with HttpStatusFor's status. kInternal messages are replaced by a generic
// one (the detail goes to the log, never to the client).
HttpResponse ErrorResponse(const Error& error);

class ApiService {
 public:
  // REQUIRES: deps.queues has all four queues; deps.state, clock, logger
  // and metrics are non-null. /readyz checks the transport only when
  // deps.transport is set (`serve`, where the worker runs in this process).
  ApiService(ApiSettings settings, ApiDependencies deps);

  // The route table.
  static const std::vector<RouteInfo>& Routes();

  // Handles one complete request (authentication, routing, the handler).
  // Blocking; never throws (an exception becomes a 500 and a log line).
  HttpResponse Handle(const HttpRequest& request);

  // Reads every queue's attributes, updates the metrics' gauges and logs a
  // "queue_depth_alarm" warning (at most once per depth_check_interval per
  // queue) for each lane or DLQ holding more than depth_alarm messages
  // (available + in flight + delayed). Returns the `postline queues --json`
  // rows. Errors: the queue's (kTransient ServiceUnavailable, …).
  Result<nlohmann::json> RefreshQueueStats();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Moves up to `max` of the messages a selected lane's DLQ holds when the call
// starts back to their source queue with RedriveFromDeadLetterQueue
// (postline/service.h: SendMessage of RedriveRequest, then DeleteMessage;
// "queued" reported to `observer`, which may be null). `queue` selects a
// lane by its queue or DLQ name; "" means both. Returns the number moved per
// lane queue. Errors: kNotFound "QueueDoesNotExist" for an unknown queue
// name; the DLQ's error when it cannot be read; kTransient
// "redrive_incomplete" naming the first message that could not be moved or
// deleted (the others of that lane were still tried; messages moved stay
// moved).
Result<std::vector<std::pair<std::string, std::int64_t>>> RedriveDeadLetters(
    const QueuePair& queues, std::string_view queue, std::int64_t max, StatusObserver* observer);

// Empties the DLQ of the selected lane ("all": both). Returns each purged DLQ
// with the number of messages it held. Errors: kNotFound "QueueDoesNotExist"
// for an unknown name; the queue's.
Result<std::vector<std::pair<std::string, std::int64_t>>> PurgeDeadLetters(const QueuePair& queues,
                                                                           std::string_view queue);

// The HTTP server.
class ApiServer {
 public:
  ApiServer(ApiSettings settings, std::shared_ptr<ApiService> service,
            std::shared_ptr<Metrics> metrics, std::shared_ptr<spdlog::logger> logger);
  ~ApiServer();  // Stop()s if running
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // Resolves and binds settings.listen, starts the threads and accepts.
  // Returns the bound port. Errors: kInvalidInput "api_token_required"
  // (field POSTLINE_API_TOKEN) when a bound address is not loopback and no
  // token is set; "invalid_listen_address" when the host does not resolve;
  // kTransient "listen_failed" when the address cannot be bound (in use,
  // permission).
  Result<int> Start();

  // Graceful shutdown: stops accepting, closes idle keep-alive connections,
  // lets requests already being read or handled finish (up to
  // drain_timeout), then stops the threads. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace postline::api
