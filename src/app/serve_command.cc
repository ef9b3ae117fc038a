#include "app/serve_command.h"

#include <fmt/format.h>

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <thread>

#include "app/render_settings.h"
#include "postline/api.h"
#include "postline/state.h"
#include "postline/delivery.h"

namespace postline::app {
namespace {

struct ServeOptions {
  std::string listen;  // empty: POSTLINE_HTTP_ADDR
  bool routes = false;
  int concurrency = 0;
};

// Blocks until `stop` is requested.
void WaitForStop(std::stop_token stop) {
  std::mutex mu;
  std::condition_variable_any cv;
  std::unique_lock lock(mu);
  cv.wait(lock, stop, [] { return false; });
}

int Run(Context& ctx, const ServeOptions& o, bool with_worker) {
  if (o.routes) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& r : api::ApiService::Routes()) {
      out.push_back({{"method", r.method}, {"path", r.path}, {"token", r.needs_token}});
    }
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  auto listen = api::ParseListenAddress(o.listen.empty() ? ctx.settings.http_addr : o.listen,
                                        o.listen.empty() ? "POSTLINE_HTTP_ADDR" : "--listen");
  if (!listen) return PrintError(listen.error(), o.listen.empty() ? kExitConfig : kExitUsage);

  TransportFactory factory;
  if (with_worker) {
    auto f = MakeTransportFactory(ctx.settings);
    if (!f) return PrintError(f.error(), kExitConfig);
    factory = *f;
  }
  if (auto ok = OpenQueues(ctx); !ok) return PrintError(ok.error(), kExitUnavailable);
  auto state = OpenState(ctx);
  if (!state) return PrintError(state.error(), kExitUnavailable);
  Log log(ctx.logger);
  {
    Retention retention;
    retention.sent_log = std::chrono::seconds(ctx.settings.sent_log_retention_seconds);
    if (auto pruned = (*state)->Prune(retention); pruned && pruned->status_records > 0) {
      log.Info("status_pruned", {{"records", pruned->status_records}});
    }
  }

  auto metrics = std::make_shared<api::Metrics>(
      std::string(with_worker ? EmailProviderName(ctx.settings.email_provider) : "none"));
  auto observer = metrics->Observe(*state, ctx.queues.priority->name());

  api::ApiSettings as;
  as.listen = *listen;
  as.token = ctx.settings.api_token;
  as.max_body_bytes = static_cast<std::size_t>(ctx.settings.http_max_body_bytes);
  as.depth_alarm = ctx.settings.depth_alarm;
  api::ApiDependencies deps;
  deps.queues = ctx.queues;
  deps.state = *state;
  deps.observer = observer;
  deps.render = RenderSettingsFrom(ctx.settings);
  deps.default_from = ctx.settings.from;
  deps.transport = factory;
  deps.clock = SystemClock();
  deps.logger = ctx.logger;
  deps.metrics = metrics;
  auto service = std::make_shared<api::ApiService>(as, deps);
  api::ApiServer server(as, service, metrics, ctx.logger);

  std::stop_source stop;
  SignalWatcher watcher(ctx.signals, stop);
  auto port = server.Start();
  if (!port) {
    return PrintError(port.error(), port.error().kind == ErrorKind::kInvalidInput
                                        ? kExitConfig
                                        : kExitUnavailable);
  }
  // The bound address as one JSON line (tests and supervisors read it).
  std::cout << nlohmann::json{{"listen", fmt::format("{}:{}", listen->host, *port)},
                              {"port", *port},
                              {"worker", with_worker}}
                   .dump()
            << std::endl;

  std::optional<Worker> worker;
  std::jthread worker_thread;
  Result<void> worker_result;
  if (with_worker) {
    WorkerSettings ws = WorkerSettingsFrom(ctx.settings, o.concurrency);
    worker.emplace(ws, ctx.queues, factory, *state, SystemClock(), log);
    worker->SetStatusObserver(observer);
    worker_thread = std::jthread([&] {
      worker_result = worker->Run(stop.get_token());
      if (!worker_result) stop.request_stop();  // the worker could not start: shut down
    });
  }

  WaitForStop(stop.get_token());
  log.Info("shutting_down", {{"worker", with_worker}});
  server.Stop();                                       // stop accepting, drain in-flight requests
  if (worker_thread.joinable()) worker_thread.join();  // Run returns after finishing sends
  if (!worker_result) return PrintError(worker_result.error(), kExitFailure);
  log.Info("stopped");
  return kExitOk;
}

void AddOptions(CLI::App* cmd, ServeOptions& o, bool with_worker) {
  cmd->add_option("--listen", o.listen,
                  "HOST:PORT to listen on (default POSTLINE_HTTP_ADDR, 127.0.0.1:8080); port 0 "
                  "picks a free port");
  cmd->add_flag("--routes", o.routes, "Print the route table as JSON and exit");
  if (with_worker) {
    cmd->add_option("--concurrency", o.concurrency,
                    "Worker sender threads (default POSTLINE_CONCURRENCY)");
  }
}

}  // namespace

Command RegisterServeCommand(CLI::App& app) {
  auto opts = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Run the HTTP API and the worker in one process (until SIGTERM / Ctrl-C)");
  AddOptions(cmd, *opts, true);
  return Command{cmd, [opts](Context& ctx) { return Run(ctx, *opts, true); }};
}

Command RegisterApiCommand(CLI::App& app) {
  auto opts = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "api", "Run the HTTP API alone, without a worker (for scale-out; until SIGTERM / Ctrl-C)");
  AddOptions(cmd, *opts, false);
  return Command{cmd, [opts](Context& ctx) { return Run(ctx, *opts, false); }};
}

}  // namespace postline::app
