#include "app/commands.h"

#include "app/aws_command.h"
#include "app/context.h"
#include "app/dlq_command.h"
#include "app/invoice_command.h"
#include "app/serve_command.h"

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <pthread.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stop_token>
#include <thread>

#include "postline/config.h"
#include "postline/envelope.h"
#include "postline/log.h"
#include "postline/service.h"
#include "postline/state.h"
#include "postline/queue.h"
#include "postline/transport.h"
#include "postline/delivery.h"

namespace postline::app {
namespace {

using nlohmann::json;

// Largest input read from a file or stdin: the envelope's own size budget
// plus room for base64 and JSON (inputs are refused, never truncated).
constexpr std::size_t kMaxInputBytes = 64 * 1024 * 1024;

Result<std::string> ReadFileOrStdin(const std::string& path) {
  std::ifstream file;
  if (path != "-") {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      return MakeError(ErrorKind::kNotFound, "file_not_found",
                       fmt::format("\"{}\" is a directory, not a file", path), "FILE");
    }
    file.open(path, std::ios::binary);
    if (!file) {
      return MakeError(ErrorKind::kNotFound, "file_not_found",
                       fmt::format("cannot read \"{}\": {}", path, std::strerror(errno)), "FILE");
    }
  }
  std::istream& in = path == "-" ? std::cin : file;
  std::string out;
  char buf[65536];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    out.append(buf, static_cast<std::size_t>(in.gcount()));
    if (out.size() > kMaxInputBytes) {
      return InvalidInput("too_large",
                          fmt::format("\"{}\" is larger than {} MiB", path,
                                      kMaxInputBytes / (1024 * 1024)),
                          "FILE");
    }
  }
  return out;
}

// Queues one validated envelope through the producer path.
// An envelope's idempotency_key is claimed in the status store first: the
// same key again answers the first e-mail's id and queues nothing (as the
// HTTP API's Idempotency-Key does).
Result<json> Enqueue(Context& ctx, Email email) {
  if (auto ok = OpenQueues(ctx); !ok) return std::unexpected(ok.error());
  if (email.id.empty()) email.id = NewEnvelopeId();
  const std::string key = email.idempotency_key;
  auto store = OpenStateOrWarn(ctx);
  if (store && !key.empty()) {
    if (auto ok = ValidateEmail(email); !ok) return std::unexpected(ok.error());
    auto claim = store->ClaimIdempotencyKey(key, email.id);
    if (!claim) return std::unexpected(claim.error());
    if (claim->existed) {
      return json{{"id", claim->envelope_id}, {"queue", claim->queue}, {"replayed", true}};
    }
  }
  const std::string id = email.id;
  auto queued = EnqueueEmail(ctx.queues, std::move(email), *SystemClock(), store.get());
  if (!queued) {
    if (store && !key.empty()) (void)store->ReleaseIdempotencyKey(key, id);
    return std::unexpected(queued.error());
  }
  if (store && !key.empty()) (void)store->SetIdempotencyQueue(key, queued->queue);
  return json{{"id", queued->id}, {"queue", queued->queue}, {"message_id", queued->message_id}};
}

// --- send -------------------------------------------------------------------

struct SendOptions {
  std::string file;
  std::string from, subject, text, html, idempotency_key, send_at, text_file, html_file;
  std::vector<std::string> to, cc, bcc, reply_to, attach, headers;
  int priority = kDefaultPriority;
  bool jsonl = false;
};

Result<Email> EmailFromFlags(const Context& ctx, const SendOptions& o) {
  json doc = json::object();
  doc["from"] = o.from.empty() ? ctx.settings.from : o.from;
  auto list = [](const std::vector<std::string>& v) {
    json a = json::array();
    for (const auto& s : v) a.push_back(s);
    return a;
  };
  if (!o.to.empty()) doc["to"] = list(o.to);
  if (!o.cc.empty()) doc["cc"] = list(o.cc);
  if (!o.bcc.empty()) doc["bcc"] = list(o.bcc);
  if (!o.reply_to.empty()) doc["reply_to"] = list(o.reply_to);
  doc["subject"] = o.subject;
  std::string text = o.text, html = o.html;
  if (!o.text_file.empty()) {
    auto t = ReadFileOrStdin(o.text_file);
    if (!t) return std::unexpected(t.error());
    text = *t;
  }
  if (!o.html_file.empty()) {
    auto h = ReadFileOrStdin(o.html_file);
    if (!h) return std::unexpected(h.error());
    html = *h;
  }
  if (!text.empty()) doc["text"] = text;
  if (!html.empty()) doc["html"] = html;
  doc["priority"] = o.priority;
  if (!o.idempotency_key.empty()) doc["idempotency_key"] = o.idempotency_key;
  if (!o.send_at.empty()) doc["send_at"] = o.send_at;
  if (!o.attach.empty()) {
    json atts = json::array();
    for (const auto& path : o.attach) {
      json a = {{"path", path}, {"filename", std::filesystem::path(path).filename().string()}};
      std::string ext = std::filesystem::path(path).extension().string();
      a["content_type"] = ext == ".pdf"    ? "application/pdf"
                          : ext == ".xml"  ? "application/xml"
                          : ext == ".txt"  ? "text/plain"
                          : ext == ".html" ? "text/html"
                          : ext == ".png"  ? "image/png"
                          : ext == ".jpg"  ? "image/jpeg"
                                           : "application/octet-stream";
      atts.push_back(a);
    }
    doc["attachments"] = atts;
  }
  if (!o.headers.empty()) {
    json hs = json::array();
    for (const auto& h : o.headers) {
      auto colon = h.find(':');
      if (colon == std::string::npos) {
        return InvalidInput("invalid_header",
                            fmt::format("--header \"{}\": expected \"Name: value\"", h), "--header");
      }
      std::string value = h.substr(colon + 1);
      while (!value.empty() && value.front() == ' ') value.erase(value.begin());
      hs.push_back(json::array({h.substr(0, colon), value}));
    }
    doc["headers"] = hs;
  }
  std::string encoded;
  try {
    encoded = doc.dump();
  } catch (const json::exception&) {
    // nlohmann refuses invalid UTF-8; name the flag that carried it.
    for (const auto& [field, value] : doc.items()) {
      try {
        (void)value.dump();
      } catch (const json::exception&) {
        return InvalidInput("invalid_utf8",
                            fmt::format("--{} is not valid UTF-8; convert the text to UTF-8",
                                        field == "text" ? (o.text_file.empty() ? "text" : "text-file")
                                        : field == "html" ? (o.html_file.empty() ? "html" : "html-file")
                                                          : field),
                            field);
      }
    }
    return InvalidInput("invalid_utf8", "the input is not valid UTF-8", "");
  }
  return ParseEmailJson(encoded, std::filesystem::current_path().string());
}

int RunSend(Context& ctx, const SendOptions& o) {
  if (o.file.empty()) {
    if (o.to.empty() && o.cc.empty() && o.bcc.empty()) {
      return PrintError({ErrorKind::kInvalidInput, "missing_recipient",
                         "give a FILE with a JSON envelope, or --to ADDRESS", "--to"},
                        kExitUsage);
    }
    auto email = EmailFromFlags(ctx, o);
    if (!email) return PrintError(email.error(), ExitCodeFor(email.error()));
    auto queued = Enqueue(ctx, std::move(*email));
    if (!queued) return PrintError(queued.error(), ExitCodeFor(queued.error()));
    std::cout << queued->dump() << "\n";
    return kExitOk;
  }
  auto text = ReadFileOrStdin(o.file);
  if (!text) return PrintError(text.error(), ExitCodeFor(text.error()));
  std::string base_dir = o.file == "-" ? std::filesystem::current_path().string()
                                       : std::filesystem::absolute(o.file).parent_path().string();
  if (!o.jsonl) {
    auto email = ParseEmailJson(*text, base_dir);
    if (!email) return PrintError(email.error(), ExitCodeFor(email.error()));
    if (email->from.email.empty()) {
      auto from = ParseAddress(ctx.settings.from, "POSTLINE_FROM");
      if (from) email->from = *from;
    }
    auto queued = Enqueue(ctx, std::move(*email));
    if (!queued) return PrintError(queued.error(), ExitCodeFor(queued.error()));
    std::cout << queued->dump() << "\n";
    return kExitOk;
  }
  // JSON Lines: every line is validated first; nothing is queued unless all
  // are valid, so a bad line never leaves a half-queued batch.
  std::vector<Email> emails;
  std::vector<int> line_numbers;
  std::istringstream lines(*text);
  std::string line;
  int line_no = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto email = ParseEmailJson(line, base_dir);
    if (!email) {
      Error e = email.error();
      e.message = fmt::format("line {}: {}", line_no, e.message);
      return PrintError(e, ExitCodeFor(e));
    }
    if (email->id.empty()) email->id = NewEnvelopeId();
    if (auto ok = ValidateEmail(*email); !ok) {
      Error e = ok.error();
      e.message = fmt::format("line {}: {}", line_no, e.message);
      return PrintError(e, ExitCodeFor(e));
    }
    emails.push_back(std::move(*email));
    line_numbers.push_back(line_no);
  }
  if (auto ok = OpenQueues(ctx); !ok) return PrintError(ok.error(), ExitCodeFor(ok.error()));
  // Idempotency keys are claimed as for a single envelope: a key seen before
  // (in an earlier run or earlier in this file) is a replay and not queued.
  auto store = OpenStateOrWarn(ctx);
  std::vector<std::pair<std::string, std::string>> claimed;  // (key, envelope id)
  const auto release_claims = [&] {
    for (const auto& [key, id] : claimed) (void)store->ReleaseIdempotencyKey(key, id);
  };
  std::size_t replayed = 0;
  if (store) {
    std::vector<Email> fresh;
    std::vector<int> fresh_lines;
    for (std::size_t i = 0; i < emails.size(); ++i) {
      const std::string key = emails[i].idempotency_key;
      if (!key.empty()) {
        auto claim = store->ClaimIdempotencyKey(key, emails[i].id);
        if (!claim) {
          release_claims();
          Error e = claim.error();
          e.message = fmt::format("line {}: {}", line_numbers[i], e.message);
          return PrintError(e, ExitCodeFor(e));
        }
        if (claim->existed) {
          ++replayed;
          continue;
        }
        claimed.emplace_back(key, emails[i].id);
      }
      fresh.push_back(std::move(emails[i]));
      fresh_lines.push_back(line_numbers[i]);
    }
    emails = std::move(fresh);
    line_numbers = std::move(fresh_lines);
  }
  std::vector<std::pair<std::string, std::string>> keys;  // per e-mail: (key, envelope id)
  for (const auto& e : emails) keys.emplace_back(e.idempotency_key, e.id);
  auto results = EnqueueEmails(ctx.queues, std::move(emails), *SystemClock(), store.get());
  if (!results) {
    release_claims();
    // "[i] …" → "line N: …"
    Error e = results.error();
    std::size_t i = 0;
    if (e.field.starts_with("[") && std::sscanf(e.field.c_str(), "[%zu]", &i) == 1 &&
        i < line_numbers.size()) {
      e.message = fmt::format("line {}: {}", line_numbers[i],
                              e.message.substr(e.message.find("] ") + 2));
    }
    return PrintError(e, ExitCodeFor(e));
  }
  std::size_t queued = 0;
  std::optional<Error> failed;
  for (std::size_t i = 0; i < results->size(); ++i) {
    const auto& r = (*results)[i];
    if (!r) {
      if (store && !keys[i].first.empty()) {
        (void)store->ReleaseIdempotencyKey(keys[i].first, keys[i].second);
      }
      if (!failed) failed = r.error();
      continue;
    }
    if (store && !keys[i].first.empty()) (void)store->SetIdempotencyQueue(keys[i].first, r->queue);
    ++queued;
  }
  if (failed) {
    failed->message = fmt::format("{} of {} queued; {}", queued, results->size(), failed->message);
    return PrintError(*failed, ExitCodeFor(*failed));
  }
  std::cout << json{{"queued", queued}, {"replayed", replayed}}.dump() << "\n";
  return kExitOk;
}

// --- worker -----------------------------------------------------------------

struct WorkerOptions {
  int concurrency = 0;
  bool until_empty = false;
  int wait_time_seconds = 20;
};

Result<bool> QueuesEmpty(const QueuePair& q) {
  for (const auto& queue : {q.priority, q.regular}) {
    auto stats = queue->GetQueueAttributes();
    if (!stats) return std::unexpected(stats.error());
    if (stats->approximate_number_of_messages + stats->approximate_number_of_messages_not_visible +
            stats->approximate_number_of_messages_delayed >
        0) {
      return false;
    }
  }
  return true;
}

int RunWorker(Context& ctx, const WorkerOptions& o) {
  auto factory = MakeTransportFactory(ctx.settings);
  if (!factory) return PrintError(factory.error(), kExitConfig);
  if (auto ok = OpenQueues(ctx); !ok) return PrintError(ok.error(), kExitUnavailable);
  auto state = OpenState(ctx);
  if (!state) return PrintError(state.error(), kExitUnavailable);

  WorkerSettings ws = WorkerSettingsFrom(ctx.settings, o.concurrency);
  ws.wait_time_seconds = std::clamp(o.wait_time_seconds, 1, kMaxWaitTimeSeconds);
  Worker worker(ws, ctx.queues, *factory, *state, SystemClock(), Log(ctx.logger));

  worker.SetStatusObserver(*state);
  std::stop_source stop;
  SignalWatcher watcher(ctx.signals, stop);
  std::jthread drain_watch;
  if (o.until_empty) {
    drain_watch = std::jthread([&](std::stop_token own) {
      while (!own.stop_requested() && !stop.stop_requested()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        auto empty = QueuesEmpty(ctx.queues);
        if (empty && *empty) stop.request_stop();
      }
    });
  }
  auto ran = worker.Run(stop.get_token());
  if (drain_watch.joinable()) {
    drain_watch.request_stop();
    drain_watch.join();
  }
  if (!ran) return PrintError(ran.error(), kExitFailure);
  return kExitOk;
}

// --- queues / health / config ---------------------------------------------------

int RunQueues(Context& ctx, bool as_json) {
  if (auto ok = OpenQueues(ctx); !ok) return PrintError(ok.error(), kExitUnavailable);
  auto state = OpenStateOrWarn(ctx);
  json out = json::array();
  struct Row {
    std::shared_ptr<Queue> queue, dlq;
  };
  for (const Row& row : {Row{ctx.queues.priority, ctx.queues.priority_dlq},
                         Row{ctx.queues.regular, ctx.queues.regular_dlq}}) {
    auto stats = row.queue->GetQueueAttributes();
    auto dlq = row.dlq->GetQueueAttributes();
    if (!stats) return PrintError(stats.error(), kExitUnavailable);
    if (!dlq) return PrintError(dlq.error(), kExitUnavailable);
    json q = {{"queue", row.queue->name()},
              {"available", stats->approximate_number_of_messages},
              {"in_flight", stats->approximate_number_of_messages_not_visible},
              {"delayed", stats->approximate_number_of_messages_delayed},
              {"oldest_age_s", stats->approximate_age_of_oldest_message_seconds},
              {"dlq", row.dlq->name()},
              {"dlq_depth", dlq->approximate_number_of_messages +
                                dlq->approximate_number_of_messages_not_visible +
                                dlq->approximate_number_of_messages_delayed}};
    if (state) {
      auto total = state->CountSentSince({}, row.queue->name());
      auto hour = state->CountSentSince(SystemClock()->Now() - std::chrono::hours(1),
                                        row.queue->name());
      if (total) q["sent"] = *total;
      if (hour) q["sent_last_hour"] = *hour;
    }
    out.push_back(q);
  }
  if (as_json) {
    std::cout << out.dump(2) << "\n";
    return kExitOk;
  }
  std::cout << fmt::format("{:<26} {:>9} {:>9} {:>8} {:>10} {:>9} {:>9}\n", "QUEUE", "AVAILABLE",
                           "IN_FLIGHT", "DELAYED", "OLDEST_AGE", "DLQ", "SENT");
  for (const auto& q : out) {
    std::cout << fmt::format("{:<26} {:>9} {:>9} {:>8} {:>9}s {:>9} {:>9}\n",
                             q["queue"].get<std::string>(), q["available"].get<long long>(),
                             q["in_flight"].get<long long>(), q["delayed"].get<long long>(),
                             q["oldest_age_s"].get<long long>(), q["dlq_depth"].get<long long>(),
                             q.value("sent", 0LL));
  }
  return kExitOk;
}

int RunHealth(Context& ctx) {
  json out = {{"status", "ok"}};
  bool healthy = true;
  json queues = json::object();
  if (auto ok = OpenQueues(ctx); !ok) {
    healthy = false;
    queues["error"] = ok.error().ToString();
  } else {
    for (const auto& q : {ctx.queues.priority, ctx.queues.regular, ctx.queues.priority_dlq,
                          ctx.queues.regular_dlq}) {
      auto stats = q->GetQueueAttributes();
      if (stats) {
        queues[q->name()] = {{"ok", true}, {"available", stats->approximate_number_of_messages}};
      } else {
        healthy = false;
        queues[q->name()] = {{"ok", false}, {"error", stats.error().ToString()}};
      }
    }
  }
  out["queue_provider"] = QueueProviderName(ctx.settings.queue_provider);
  out["queues"] = queues;
  json transport = {{"provider", EmailProviderName(ctx.settings.email_provider)}};
  auto factory = MakeTransportFactory(ctx.settings);
  if (!factory) {
    healthy = false;
    transport["ok"] = false;
    transport["error"] = factory.error().ToString();
  } else {
    auto t = (*factory)();
    auto check = t->Check();
    transport["ok"] = check.has_value();
    if (!check) {
      healthy = false;
      transport["error"] = check.error().ToString();
    }
  }
  out["transport"] = transport;
  if (ctx.settings.queue_provider == QueueProvider::kSqs ||
      ctx.settings.email_provider == EmailProvider::kSes) {
    out["aws"] = ProbeAwsPermissions(ctx, &healthy);  // names each IAM action denied
  }
  out["status"] = healthy ? "ok" : "unhealthy";
  std::cout << out.dump(2) << "\n";
  return healthy ? kExitOk : kExitFailure;
}

int RunConfigCheck(const Settings& settings, const std::vector<ConfigProblem>& problems) {
  for (const auto& line : DescribeSettings(settings)) std::cout << line << "\n";
  for (const auto& p : problems) std::cerr << "postline: " << p.variable << ": " << p.message << "\n";
  return problems.empty() ? kExitOk : kExitConfig;
}

}  // namespace

int RunCli(int argc, char** argv, const sigset_t& signals) {
  CLI::App app{"postline — invoice e-mail delivery: two priority lanes, a durable queue, SMTP/SES"};
  app.require_subcommand(1);
  std::string env_file;
  app.add_option("--env-file", env_file, "Read variables from this .env file (default: ./.env if present)");

  SendOptions send;
  auto* send_cmd = app.add_subcommand("send", "Queue an e-mail (flags, or a JSON envelope FILE, - for stdin)");
  send_cmd->add_option("FILE", send.file, "JSON envelope (docs/envelope.md); - reads stdin");
  send_cmd->add_flag("--jsonl", send.jsonl, "FILE holds one JSON envelope per line (batched enqueue)");
  send_cmd->add_option("--from", send.from, "Sender \"Name <addr>\" (default POSTLINE_FROM)");
  send_cmd->add_option("--to", send.to, "Recipient (repeatable)");
  send_cmd->add_option("--cc", send.cc, "Cc recipient (repeatable)");
  send_cmd->add_option("--bcc", send.bcc, "Bcc recipient (repeatable)");
  send_cmd->add_option("--reply-to", send.reply_to, "Reply-To address (repeatable)");
  send_cmd->add_option("--subject", send.subject, "Subject");
  send_cmd->add_option("--text", send.text, "Plain-text body");
  send_cmd->add_option("--text-file", send.text_file, "Read the plain-text body from a file");
  send_cmd->add_option("--html", send.html, "HTML body");
  send_cmd->add_option("--html-file", send.html_file, "Read the HTML body from a file");
  send_cmd->add_option("--attach", send.attach, "Attach a file (repeatable)");
  send_cmd->add_option("--header", send.headers, "Extra header \"Name: value\" (repeatable)");
  send_cmd->add_option("--priority", send.priority, "1–3 priority lane, 4–10 regular (default 5)");
  send_cmd->add_option("--idempotency-key", send.idempotency_key, "Producer's idempotency key");
  send_cmd->add_option("--send-at", send.send_at, "RFC 3339 time not to send before");

  WorkerOptions worker;
  auto* worker_cmd = app.add_subcommand("worker", "Run the scheduler service: receive, deliver, settle");
  worker_cmd->add_option("--concurrency", worker.concurrency, "Sender threads (default POSTLINE_CONCURRENCY)");
  worker_cmd->add_flag("--until-empty", worker.until_empty,
                       "Exit once both queues hold no message (available, in flight or delayed)");
  worker_cmd->add_option("--wait-time", worker.wait_time_seconds, "Long-poll wait, 1–20 s (default 20)")
      ->check(CLI::Range(1, 20));

  bool queues_json = false;
  auto* queues_cmd = app.add_subcommand("queues", "Queue metrics: available, in flight, delayed, oldest age, DLQ depth");
  queues_cmd->add_flag("--json", queues_json, "Print JSON");

  auto* health_cmd = app.add_subcommand("health", "Check queue connectivity and the transport (JSON; exit 1 when unhealthy)");
  auto* config_cmd = app.add_subcommand("config", "Configuration");
  config_cmd->require_subcommand(1);
  auto* config_check_cmd = config_cmd->add_subcommand("check", "Print the resolved settings (secrets redacted); exit 2 when invalid");

  std::vector<Command> extra = {RegisterInvoiceCommand(app), RegisterDlqCommand(app),
                                RegisterQueuesCreateCommand(app), RegisterAwsPolicyCommand(app),
                                RegisterServeCommand(app), RegisterApiCommand(app)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  // Configuration: defaults < .env < process environment.
  auto dotenv = ReadDotEnvFile(env_file.empty() ? ".env" : env_file, !env_file.empty());
  if (!dotenv) return PrintError(dotenv.error(), kExitConfig);
  auto vars = *dotenv;
  for (auto& [k, v] : EnvironmentVariables()) vars[k] = v;
  LoadedSettings loaded = ResolveSettings(vars);
  if (config_check_cmd->parsed()) return RunConfigCheck(loaded.settings, loaded.problems);
  if (!loaded.problems.empty()) {
    for (const auto& p : loaded.problems) std::cerr << "postline: " << p.variable << ": " << p.message << "\n";
    return kExitConfig;
  }
  Context ctx;
  ctx.settings = loaded.settings;
  ctx.logger = NewStderrJsonLogger("postline", ctx.settings.log_level);
  ctx.signals = signals;
  // Long-running commands stop gracefully on SIGTERM/SIGINT (SignalWatcher);
  // every other command dies of them as usual.
  const bool long_running = worker_cmd->parsed() || app.got_subcommand("serve") ||
                            app.got_subcommand("api");
  if (ctx.settings.queue_provider == QueueProvider::kMemory && !app.got_subcommand("serve")) {
    std::cerr << "postline: QUEUE_PROVIDER: memory keeps messages inside one process and loses "
                 "them at exit; only `postline serve` (API and worker in one process) can use it. "
                 "Use sqlite (the default) or sqs\n";
    return kExitConfig;
  }
  if (!long_running) {
    std::thread([signals] {
      sigset_t set = signals;
      sigdelset(&set, SIGUSR2);
      int sig = 0;
      if (sigwait(&set, &sig) != 0) return;
      std::signal(sig, SIG_DFL);
      sigset_t one;
      sigemptyset(&one);
      sigaddset(&one, sig);
      pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
      raise(sig);
    }).detach();
  }
  for (const auto& c : extra) {
    if (c.app->parsed()) return c.run(ctx);
  }

  if (send_cmd->parsed()) return RunSend(ctx, send);
  if (worker_cmd->parsed()) return RunWorker(ctx, worker);
  if (queues_cmd->parsed()) return RunQueues(ctx, queues_json);
  if (health_cmd->parsed()) return RunHealth(ctx);
  return kExitUsage;
}

}  // namespace postline::app
