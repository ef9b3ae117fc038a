// The HTTP/1.1 server: Boost.Beast on Asio. One strand per connection on a
// small I/O thread pool; every request is handled on a separate blocking
// pool and its response written back on the connection's strand.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "postline/api.h"

namespace postline::api {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr auto kLingerTimeout = std::chrono::seconds(2);

std::string_view Sv(beast::string_view v) { return {v.data(), v.size()}; }

std::string LowerAscii(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

class Session;

// State shared by the acceptor and the sessions; outlives both.
struct Core {
  ApiSettings settings;
  std::shared_ptr<ApiService> service;
  std::shared_ptr<Metrics> metrics;
  Log log;
  std::atomic<bool> stopping{false};
  net::thread_pool* pool = nullptr;

  std::mutex mu;
  std::condition_variable cv;
  std::map<Session*, std::weak_ptr<Session>> sessions;

  Core(ApiSettings s, std::shared_ptr<ApiService> svc, std::shared_ptr<Metrics> m,
       std::shared_ptr<spdlog::logger> logger)
      : settings(std::move(s)),
        service(std::move(svc)),
        metrics(std::move(m)),
        log(std::move(logger)) {}

  // Returns false when the connection limit is exceeded (the session is
  // registered anyway and answers 503).
  bool Register(const std::shared_ptr<Session>& s) {
    std::lock_guard lock(mu);
    sessions[s.get()] = s;
    return sessions.size() <= static_cast<std::size_t>(settings.max_connections);
  }
  void Unregister(Session* s) {
    std::lock_guard lock(mu);
    sessions.erase(s);
    if (sessions.empty()) cv.notify_all();
  }
  void Dispatch(HttpRequest request, std::shared_ptr<Session> session);
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Core& core) : stream_(std::move(socket)), core_(core) {}
  ~Session() { core_.Unregister(this); }

  void Start(bool reject) {
    net::dispatch(stream_.get_executor(), [self = shared_from_this(), reject] {
      if (!reject) return self->ReadHeader();
      self->keep_alive_ = false;
      self->Write(ErrorResponse({ErrorKind::kTransient, "too_many_connections",
                                 "the server has too many open connections; retry later", ""}));
    });
  }

  // Closes the connection if it is waiting for a new request (shutdown).
  void CloseIfIdle() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (self->state_ == State::kIdle) self->Close();
    });
  }

  // Called from the blocking pool with the handler's response.
  void Respond(HttpResponse response) {
    net::post(stream_.get_executor(),
              [self = shared_from_this(), r = std::move(response)]() mutable {
                self->Write(std::move(r));
              });
  }

 private:
  enum class State { kIdle, kReading, kHandling, kWriting, kClosed };

  void ReadHeader() {
    state_ = State::kIdle;
    if (core_.stopping) return Close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(core_.settings.max_header_bytes));
    parser_->body_limit(core_.settings.max_body_bytes);
    stream_.expires_after(core_.settings.idle_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    state_ = State::kReading;
    const auto& header = parser_->get();
    if (LowerAscii(Sv(header[http::field::expect])) == "100-continue") {
      auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                     header.version());
      stream_.expires_after(core_.settings.write_timeout);
      http::async_write(stream_, *cont,
                        [self = shared_from_this(), cont](beast::error_code wec, std::size_t) {
                          if (wec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(core_.settings.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnBody, shared_from_this()));
  }

  void OnBody(beast::error_code ec, std::size_t) {
    if (ec) return OnReadError(ec);
    state_ = State::kHandling;
    auto req = parser_->release();
    keep_alive_ = req.keep_alive();
    HttpRequest r;
    r.method = std::string(Sv(req.method_string()));
    r.target = std::string(Sv(req.target()));
    for (const auto& field : req) {
      r.headers.emplace_back(LowerAscii(Sv(field.name_string())), std::string(Sv(field.value())));
    }
    r.body = std::move(req.body());
    stream_.expires_never();  // the handler's time is not the client's
    core_.Dispatch(std::move(r), shared_from_this());
  }

  void OnReadError(beast::error_code ec) {
    keep_alive_ = false;
    if (ec == http::error::body_limit) {
      return Write(ErrorResponse(
          {ErrorKind::kInvalidInput, "payload_too_large",
           fmt::format("the request body exceeds {} bytes", core_.settings.max_body_bytes),
           "body"}));
    }
    if (ec == http::error::header_limit) {
      return Write(ErrorResponse(
          {ErrorKind::kInvalidInput, "header_too_large",
           fmt::format("the request header exceeds {} bytes", core_.settings.max_header_bytes),
           "headers"}));
    }
    if (ec == http::error::end_of_stream || ec == beast::error::timeout ||
        ec == net::error::operation_aborted || ec == net::error::eof ||
        ec == net::error::connection_reset || !parser_ || !parser_->got_some()) {
      return Close();
    }
    Write(ErrorResponse({ErrorKind::kInvalidInput, "bad_request",
                         fmt::format("malformed HTTP request: {}", ec.message()), "request"}));
  }

  void Write(HttpResponse r) {
    if (state_ == State::kClosed) return;
    state_ = State::kWriting;
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<unsigned>(r.status));
    res->set(http::field::server, "postline");
    res->set(http::field::content_type, r.content_type);
    res->set(http::field::cache_control, "no-store");
    res->set("X-Content-Type-Options", "nosniff");
    for (const auto& [name, value] : r.headers) res->set(name, value);
    res->body() = std::move(r.body);
    const bool close = !keep_alive_ || core_.stopping;
    res->keep_alive(!close);
    res->prepare_payload();
    stream_.expires_after(core_.settings.write_timeout);
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, close](beast::error_code ec, std::size_t) {
                        if (ec) return self->Close();
                        if (close) return self->LingerClose();
                        self->ReadHeader();
                      });
  }

  // Half-closes and reads what the client still sends (briefly), so an
  // unread request body does not turn the close into a reset that destroys
  // the response before the client reads it.
  void LingerClose() {
    state_ = State::kClosed;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(kLingerTimeout);
    Drain();
  }
  void Drain() {
    stream_.async_read_some(net::buffer(scratch_),
                            [self = shared_from_this()](beast::error_code ec, std::size_t) {
                              if (ec) return self->stream_.close();
                              self->Drain();
                            });
  }

  void Close() {
    state_ = State::kClosed;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.close();
  }

  beast::tcp_stream stream_;
  Core& core_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::array<char, 4096> scratch_{};
  State state_ = State::kIdle;
  bool keep_alive_ = true;
};

void Core::Dispatch(HttpRequest request, std::shared_ptr<Session> session) {
  net::post(*pool, [this, request = std::move(request), session = std::move(session)] {
    const auto started = std::chrono::steady_clock::now();
    HttpResponse response = service->Handle(request);
    metrics->CountRequest(request.method, response.route, response.status);
    nlohmann::json fields = {{"method", request.method},
                             {"path", request.target.substr(0, request.target.find('?'))},
                             {"status", response.status},
                             {"duration_ms", std::chrono::duration_cast<std::chrono::milliseconds>(
                                                 std::chrono::steady_clock::now() - started)
                                                 .count()}};
    if (!response.envelope_id.empty()) fields["envelope_id"] = response.envelope_id;
    if (response.status >= 500) {
      log.Warn("http_request", fields);
    } else {
      log.Info("http_request", fields);
    }
    session->Respond(std::move(response));
  });
}

}  // namespace

struct ApiServer::Impl {
  Core core;  // before io_context: sessions destroyed with its handlers unregister here
  std::unique_ptr<net::thread_pool> pool;
  net::io_context ioc;
  // Keeps the I/O threads running while a request is on the blocking pool
  // (no I/O pending then); Stop() ends them with ioc.stop().
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::optional<tcp::acceptor> acceptor;
  std::optional<net::steady_timer> depth_timer;
  std::vector<std::thread> threads;
  bool running = false;

  Impl(ApiSettings settings, std::shared_ptr<ApiService> service, std::shared_ptr<Metrics> metrics,
       std::shared_ptr<spdlog::logger> logger)
      : core(std::move(settings), std::move(service), std::move(metrics), std::move(logger)) {}

  void Accept() {
    acceptor->async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
      if (core.stopping) return;
      if (ec) {
        // E.g. out of file descriptors: wait a little instead of spinning.
        core.log.Warn("http_accept_failed", {{"error", ec.message()}});
        auto timer = std::make_shared<net::steady_timer>(acceptor->get_executor(),
                                                         std::chrono::milliseconds(100));
        timer->async_wait([this, timer](beast::error_code) {
          if (!core.stopping) Accept();
        });
        return;
      }
      auto session = std::make_shared<Session>(std::move(socket), core);
      const bool ok = core.Register(session);
      session->Start(!ok);
      Accept();
    });
  }

  void ScheduleDepthCheck() {
    depth_timer->expires_after(core.settings.depth_check_interval);
    depth_timer->async_wait([this](beast::error_code ec) {
      if (ec || core.stopping) return;
      net::post(*pool, [this] {
        if (auto rows = core.service->RefreshQueueStats(); !rows) {
          core.log.Warn("queue_stats_failed", {{"error", rows.error().ToString()}});
        }
      });
      ScheduleDepthCheck();
    });
  }
};

ApiServer::ApiServer(ApiSettings settings, std::shared_ptr<ApiService> service,
                     std::shared_ptr<Metrics> metrics, std::shared_ptr<spdlog::logger> logger)
    : impl_(std::make_unique<Impl>(std::move(settings), std::move(service), std::move(metrics),
                                   std::move(logger))) {}

ApiServer::~ApiServer() { Stop(); }

Result<int> ApiServer::Start() {
  Impl& m = *impl_;
  const ApiSettings& s = m.core.settings;
  beast::error_code ec;
  tcp::resolver resolver(m.ioc);
  auto results = resolver.resolve(s.listen.host, std::to_string(s.listen.port), ec);
  if (ec || results.empty()) {
    return InvalidInput("invalid_listen_address",
                        fmt::format("cannot resolve listen host \"{}\": {}", s.listen.host,
                                    ec ? ec.message() : "no address"),
                        "POSTLINE_HTTP_ADDR");
  }
  const tcp::endpoint endpoint = results.begin()->endpoint();
  if (s.token.empty() && !endpoint.address().is_loopback()) {
    return InvalidInput(
        "api_token_required",
        fmt::format("listening on {} (not loopback) requires POSTLINE_API_TOKEN; set a token or "
                    "listen on 127.0.0.1",
                    endpoint.address().to_string()),
        "POSTLINE_API_TOKEN");
  }
  m.acceptor.emplace(net::make_strand(m.ioc));
  auto fail = [&](std::string_view what) {
    return MakeError(ErrorKind::kTransient, "listen_failed",
                     fmt::format("cannot {} {}:{}: {}", what, endpoint.address().to_string(),
                                 endpoint.port(), ec.message()),
                     "POSTLINE_HTTP_ADDR");
  };
  m.acceptor->open(endpoint.protocol(), ec);
  if (ec) return fail("open");
  m.acceptor->set_option(net::socket_base::reuse_address(true), ec);
  m.acceptor->bind(endpoint, ec);
  if (ec) return fail("bind");
  m.acceptor->listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("listen on");
  const int port = m.acceptor->local_endpoint().port();

  m.pool = std::make_unique<net::thread_pool>(
      static_cast<std::size_t>(std::clamp(s.blocking_threads, 1, 256)));
  m.core.pool = m.pool.get();
  m.depth_timer.emplace(m.ioc);
  m.work.emplace(net::make_work_guard(m.ioc));
  m.Accept();
  m.ScheduleDepthCheck();
  m.running = true;
  for (int i = 0; i < std::clamp(s.io_threads, 1, 64); ++i) {
    m.threads.emplace_back([&m] { m.ioc.run(); });
  }
  m.core.log.Info("http_listening", {{"address", endpoint.address().to_string()},
                                     {"port", port},
                                     {"token_required", !s.token.empty()}});
  return port;
}

void ApiServer::Stop() {
  Impl& m = *impl_;
  if (!m.running) return;
  m.running = false;
  m.core.stopping = true;
  net::post(m.acceptor->get_executor(), [&m] {
    beast::error_code ec;
    m.acceptor->close(ec);
  });
  net::post(m.ioc, [&m] { m.depth_timer->cancel(); });
  std::vector<std::shared_ptr<Session>> open;
  {
    std::lock_guard lock(m.core.mu);
    for (auto& [ptr, weak] : m.core.sessions) {
      if (auto s = weak.lock()) open.push_back(std::move(s));
    }
  }
  // Outside the lock: dropping the last reference unregisters the session.
  for (auto& s : open) s->CloseIfIdle();
  open.clear();
  {
    std::unique_lock lock(m.core.mu);
    const bool drained = m.core.cv.wait_for(lock, m.core.settings.drain_timeout,
                                            [&] { return m.core.sessions.empty(); });
    if (!drained) {
      m.core.log.Warn("http_drain_timeout", {{"open_connections", m.core.sessions.size()}});
    }
  }
  m.pool->join();
  m.work.reset();
  m.ioc.stop();
  for (auto& t : m.threads) t.join();
  m.threads.clear();
  m.core.log.Info("http_stopped");
}

}  // namespace postline::api
