// postline_bench_driver — the postline side of scripts/bench, for the steps
// the CLI does one process per call: it calls the same library functions the
// CLI calls (LoadInvoiceFile → BuildInvoiceEmail → EnqueueEmail(s)) on the
// same SQLite queue file that `postline worker` then drains.
//
//   invoices  --data-dir D --invoice FILE --count N [--priority-every K]
//       Renders and queues N invoice e-mails (PDF rendered per e-mail, as
//       `postline invoice send` does); every K-th one at priority 1, the rest
//       at 5. Prints {"render_seconds", "enqueue_seconds", "eml_bytes"}.
//       With --render-once 1 the first e-mail's PDF is reused for all (for
//       delivery-only runs that need many queued invoice e-mails quickly).
//   backlog   --data-dir D --count N
//       Queues N small regular (priority 5) e-mails with EnqueueEmails.
//   priority  --data-dir D --count N --interval-ms MS --out FILE
//       Queues N priority-1 e-mails with subject "prio-<i>", one every MS,
//       and writes "<i> <enqueue time, ns since the epoch>" per line to FILE.
//   render    --invoice FILE --iterations N
//       Renders the invoice's PDF N times; prints {"ms_per_render", "pdf_bytes"}.
//   enqueue   --data-dir D --count N --batch B [--synchronous full|normal]
//       Queues N small e-mails, one EnqueueEmail call each (B = 1) or
//       EnqueueEmails calls of B e-mails; prints {"per_second", "seconds"}.
//       --synchronous: the queue's SqliteSynchronous (default full, as
//       postline's default POSTLINE_SQLITE_SYNCHRONOUS).
//   state     --store sqlite --data-dir D | --store postgres --url URL
//             --count N --batch B [--threads T]
//       Writes to the state store: B = 0, N status events (OnStatus, one
//       "sending" event per e-mail) from T threads (default 1); B ≥ 1, N
//       settled e-mails (a sent-log record and a "sent" event each) in
//       RecordSettled calls of B from T threads. Prints {"per_second" (e-mails),
//       "calls_per_second", "seconds"}.

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "postline/clock.h"
#include "postline/envelope.h"
#include "postline/invoice.h"
#include "postline/mime.h"
#include "postline/service.h"
#include "postline/queue.h"
#include "postline/state.h"

namespace {

using Seconds = std::chrono::duration<double>;
using SteadyClock = std::chrono::steady_clock;

[[noreturn]] void Die(const std::string& what) {
  fmt::print(stderr, "postline_bench_driver: {}\n", what);
  std::exit(1);
}

template <typename T>
T Check(postline::Result<T> r, std::string_view what) {
  if (!r) Die(fmt::format("{}: {}", what, r.error().ToString()));
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

struct Args {
  std::string mode;
  std::map<std::string, std::string> opts;
  std::string Get(const std::string& key, const std::string& fallback = "") const {
    auto it = opts.find(key);
    if (it != opts.end()) return it->second;
    if (fallback.empty()) Die(fmt::format("{} needs --{}", mode, key));
    return fallback;
  }
  long Int(const std::string& key, const std::string& fallback = "") const {
    return std::stol(Get(key, fallback));
  }
};

Args ParseArgs(int argc, char** argv) {
  if (argc < 2) Die("usage: postline_bench_driver MODE --key value ...");
  Args a{argv[1], {}};
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string key = argv[i];
    if (!key.starts_with("--")) Die(fmt::format("unexpected argument {}", key));
    a.opts[key.substr(2)] = argv[i + 1];
  }
  return a;
}

postline::QueuePair OpenQueues(const std::string& data_dir,
                               const std::string& synchronous = "full") {
  if (synchronous != "full" && synchronous != "normal") {
    Die(fmt::format("--synchronous is {}; allowed are full and normal", synchronous));
  }
  auto service = Check(postline::OpenSqliteQueueService(
                           data_dir + "/queue.db", postline::SystemClock(),
                           synchronous == "normal" ? postline::SqliteSynchronous::kNormal
                                                   : postline::SqliteSynchronous::kFull),
                       "open queue");
  return Check(postline::EnsureGuideQueues(*service, postline::GuideQueueAttributes(), 10),
               "create queues");
}

postline::Email SmallEmail(int priority, std::string subject) {
  postline::Email e;
  e.from = {"Grundschule Große Straße", "kasse@school.example.com"};
  e.to = {{"Zoë Müller", "zoe.mueller@example.com"}};
  e.subject = std::move(subject);
  e.text =
      "Hallo Zoë,\n\nbitte bestätigen Sie Ihre E-Mail-Adresse: "
      "http://localhost:3000/verify?token=4f2a9c0e7b1d4e8f9a3c5b7d1e2f3a4b\n\n"
      "Förderverein Grundschule Große Straße e. V.\n";
  e.priority = priority;
  return e;
}

postline::invoice::InvoiceRenderSettings RenderSettings(const Args& a) {
  postline::invoice::InvoiceRenderSettings s;
  s.frontend_url = "http://localhost:3000";
  s.default_template_dir = a.Get("templates", POSTLINE_TEMPLATES_DIR);
  return s;
}

int Invoices(const Args& a) {
  auto queues = OpenQueues(a.Get("data-dir"));
  const long count = a.Int("count");
  const long every = a.Int("priority-every", "10");
  const bool render_once = a.Int("render-once", "0") != 0;
  auto invoice = Check(postline::invoice::LoadInvoiceFile(a.Get("invoice")), "invoice");
  const auto settings = RenderSettings(a);
  const postline::Address from{"Grundschule Große Straße", "kasse@school.example.com"};
  const auto clock = postline::SystemClock();
  const std::string number = invoice.number;
  Seconds render{0}, enqueue{0};
  std::size_t eml_bytes = 0;
  for (long i = 0; i < count; ++i) {
    invoice.number = fmt::format("{}-{}", number, i);
    auto t0 = SteadyClock::now();
    static std::optional<postline::Email> first;
    postline::Email email =
        render_once && first
            ? *first
            : Check(postline::invoice::BuildInvoiceEmail(invoice, settings, from, {}, false),
                    "build invoice e-mail");
    if (render_once && !first) first = email;
    if (every > 0 && i % every == 0) email.priority = 1;
    if (i == 0) {
      email.id = postline::NewEnvelopeId();
      auto eml =
          Check(postline::ComposeMessage(email, postline::ComposeOptions{clock->Now()}), "compose");
      eml_bytes = eml.size();
      email.id.clear();
    }
    auto t1 = SteadyClock::now();
    Check(postline::EnqueueEmail(queues, std::move(email), *clock), "enqueue");
    auto t2 = SteadyClock::now();
    render += t1 - t0;
    enqueue += t2 - t1;
  }
  fmt::print("{{\"render_seconds\": {:.4f}, \"enqueue_seconds\": {:.4f}, \"eml_bytes\": {}}}\n",
             render.count(), enqueue.count(), eml_bytes);
  return 0;
}

int Backlog(const Args& a) {
  auto queues = OpenQueues(a.Get("data-dir"));
  const long count = a.Int("count");
  const auto clock = postline::SystemClock();
  auto t0 = SteadyClock::now();
  for (long done = 0; done < count;) {
    std::vector<postline::Email> batch;
    for (; done < count && batch.size() < 1000; ++done) {
      batch.push_back(SmallEmail(5, "regular"));
    }
    auto results = Check(postline::EnqueueEmails(queues, std::move(batch), *clock), "enqueue");
    for (auto& r : results) Check(std::move(r), "enqueue entry");
  }
  fmt::print("{{\"seconds\": {:.4f}}}\n", Seconds(SteadyClock::now() - t0).count());
  return 0;
}

int Priority(const Args& a) {
  auto queues = OpenQueues(a.Get("data-dir"));
  const long count = a.Int("count");
  const auto interval = std::chrono::milliseconds(a.Int("interval-ms"));
  const auto clock = postline::SystemClock();
  std::ofstream out(a.Get("out"));
  auto next = SteadyClock::now();
  for (long i = 0; i < count; ++i) {
    std::this_thread::sleep_until(next);
    next += interval;
    const auto wall = std::chrono::system_clock::now().time_since_epoch();
    Check(postline::EnqueueEmail(queues, SmallEmail(1, fmt::format("prio-{}", i)), *clock),
          "enqueue");
    out << i << " " << std::chrono::duration_cast<std::chrono::nanoseconds>(wall).count() << "\n";
  }
  return 0;
}

int Render(const Args& a) {
  auto invoice = Check(postline::invoice::LoadInvoiceFile(a.Get("invoice")), "invoice");
  const auto settings = RenderSettings(a);
  const long iterations = a.Int("iterations");
  std::size_t bytes =
      Check(postline::invoice::RenderInvoicePdf(invoice, settings), "render").size();
  auto t0 = SteadyClock::now();
  for (long i = 0; i < iterations; ++i) {
    bytes = Check(postline::invoice::RenderInvoicePdf(invoice, settings), "render").size();
  }
  const double ms = Seconds(SteadyClock::now() - t0).count() * 1000.0 / double(iterations);
  fmt::print("{{\"ms_per_render\": {:.3f}, \"pdf_bytes\": {}}}\n", ms, bytes);
  return 0;
}

int Enqueue(const Args& a) {
  auto queues = OpenQueues(a.Get("data-dir"), a.Get("synchronous", "full"));
  const long count = a.Int("count");
  const long batch_size = a.Int("batch");
  const auto clock = postline::SystemClock();
  auto t0 = SteadyClock::now();
  if (batch_size <= 1) {
    for (long i = 0; i < count; ++i) {
      Check(postline::EnqueueEmail(queues, SmallEmail(5, "Bitte bestätigen"), *clock), "enqueue");
    }
  } else {
    for (long done = 0; done < count;) {
      std::vector<postline::Email> batch;
      for (; done < count && static_cast<long>(batch.size()) < batch_size; ++done) {
        batch.push_back(SmallEmail(5, "Bitte bestätigen"));
      }
      auto results = Check(postline::EnqueueEmails(queues, std::move(batch), *clock), "enqueue");
      for (auto& r : results) Check(std::move(r), "enqueue entry");
    }
  }
  const double s = Seconds(SteadyClock::now() - t0).count();
  fmt::print("{{\"per_second\": {:.1f}, \"seconds\": {:.4f}}}\n", double(count) / s, s);
  return 0;
}

int State(const Args& a) {
  const std::string store_kind = a.Get("store");
  postline::StateStoreOptions options;
  if (store_kind == "postgres") {
    options.database_url = a.Get("url");
  } else if (store_kind == "sqlite") {
    options.sqlite_path = a.Get("data-dir") + "/state.db";
  } else {
    Die(fmt::format("--store is {}; allowed are sqlite and postgres", store_kind));
  }
  const long count = a.Int("count");
  const long batch = a.Int("batch");
  const long threads = a.Int("threads", "1");
  if (threads < 1 || threads > 64) Die("--threads must be 1–64");
  options.pool_size = static_cast<int>(threads);
  std::atomic<long> failures{0};
  options.on_error = [&](const postline::StatusEvent&, const postline::Error&) { ++failures; };
  auto store = Check(postline::OpenStateStore(options), "open state store");
  const auto clock = postline::SystemClock();
  std::atomic<long> calls{0};
  auto work = [&](long thread) {
    const long begin = count * thread / threads;
    const long end = count * (thread + 1) / threads;
    postline::StatusEvent ev;
    ev.queue = "invoice-generation-queue";
    ev.attempts = 1;
    if (batch <= 0) {
      ev.state = postline::StatusEvent::State::kSending;
      for (long i = begin; i < end; ++i) {
        ev.envelope_id = fmt::format("01BENCH{:019}", i);
        store->OnStatus(ev);
        ++calls;
      }
      return;
    }
    ev.state = postline::StatusEvent::State::kSent;
    ev.reply_code = 250;
    for (long i = begin; i < end;) {
      std::vector<postline::SettledMessage> settled;
      for (; i < end && static_cast<long>(settled.size()) < batch; ++i) {
        postline::SentRecord r;
        r.envelope_id = fmt::format("01BENCH{:019}", i);
        r.message_id = r.envelope_id + "@school.example.com";
        r.queue = ev.queue;
        r.transport = "smtp";
        r.reply = "250 2.0.0 Ok: queued as 4XyZ1";
        r.attempts = 1;
        r.sent_at = clock->Now();
        ev.envelope_id = r.envelope_id;
        ev.detail = r.reply;
        settled.push_back({std::move(r), ev});
      }
      Check(store->RecordSettled(settled), "record settled");
      ++calls;
    }
  };
  auto t0 = SteadyClock::now();
  std::vector<std::thread> pool;
  for (long t = 0; t < threads; ++t) pool.emplace_back(work, t);
  for (auto& t : pool) t.join();
  const double s = Seconds(SteadyClock::now() - t0).count();
  if (failures > 0) Die(fmt::format("{} status writes failed", failures.load()));
  fmt::print("{{\"per_second\": {:.1f}, \"calls_per_second\": {:.1f}, \"seconds\": {:.4f}}}\n",
             double(count) / s, double(calls) / s, s);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args a = ParseArgs(argc, argv);
  if (a.mode == "invoices") return Invoices(a);
  if (a.mode == "backlog") return Backlog(a);
  if (a.mode == "priority") return Priority(a);
  if (a.mode == "render") return Render(a);
  if (a.mode == "enqueue") return Enqueue(a);
  if (a.mode == "state") return State(a);
  Die(fmt::format("unknown mode {}", a.mode));
}
