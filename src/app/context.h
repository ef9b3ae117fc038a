// Wiring shared by the subcommands: settings → queues, transports, logs.
#pragma once

#include <CLI/CLI.hpp>
#include <signal.h>

#include <functional>
#include <stop_token>
#include <thread>
#include <memory>
#include <vector>

#include "postline/config.h"
#include "postline/error.h"
#include "postline/log.h"
#include "postline/service.h"
#include "postline/queue.h"
#include "postline/transport.h"
#include "postline/delivery.h"
#include "postline/state.h"

namespace postline::app {

// Exit codes (documented in the README).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;       // a runtime failure; `health`: unhealthy
inline constexpr int kExitConfig = 2;        // invalid configuration (.env / environment)
inline constexpr int kExitUsage = 64;        // bad command line (EX_USAGE)
inline constexpr int kExitDataErr = 65;      // invalid input data: envelope, invoice (EX_DATAERR)
inline constexpr int kExitNoInput = 66;      // an input file or attachment cannot be read (EX_NOINPUT)
inline constexpr int kExitUnavailable = 69;  // queue or transport unreachable (EX_UNAVAILABLE)
inline constexpr int kExitTempFail = 75;     // temporary failure; try again (EX_TEMPFAIL)

// Everything a subcommand may need; queues are opened on first use.
struct Context {
  Settings settings;
  std::shared_ptr<spdlog::logger> logger;
  std::shared_ptr<QueueService> service;
  QueuePair queues;
  // The state store (sent log, status, idempotency keys); opened on first
  // use by OpenState. Null before that, or when it could not be opened.
  std::shared_ptr<StateStore> state;
  sigset_t signals;  // SIGTERM/SIGINT, blocked in every thread; sigwait them
};

// Opens the configured queue service and the guide's queues (idempotent).
Result<void> OpenQueues(Context& ctx);

// Opens the state store (<data dir>/state.db) on first use; later calls
// return the same one. Commands that only read files or render (invoice
// render) never call it, so they create nothing on disk.
Result<std::shared_ptr<StateStore>> OpenState(Context& ctx);

// OpenState for commands that work without it (status is advisory): logs a
// warning and returns null when it cannot be opened.
std::shared_ptr<StateStore> OpenStateOrWarn(Context& ctx);

// A factory of the configured transport (one instance per sender thread).
Result<TransportFactory> MakeTransportFactory(const Settings& settings);

// The worker's settings from the configuration; `concurrency` > 0 overrides
// POSTLINE_CONCURRENCY (a --concurrency flag).
WorkerSettings WorkerSettingsFrom(const Settings& settings, int concurrency);

// Prints "postline: <error>" on stderr; returns `code`.
int PrintError(const Error& e, int code);

// The exit code for an error kind (see the table above).
int ExitCodeFor(const Error& e);

// A subcommand: registered on the CLI app; `run` is called when it was parsed.
struct Command {
  CLI::App* app = nullptr;
  std::function<int(Context&)> run;
};

// Blocks until SIGTERM/SIGINT arrives or `stop` is requested elsewhere, then
// requests `stop`. Returns a thread to join (joining wakes it if needed).
class SignalWatcher {
 public:
  SignalWatcher(const sigset_t& signals, std::stop_source stop);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  std::jthread thread_;
};

}  // namespace postline::app
