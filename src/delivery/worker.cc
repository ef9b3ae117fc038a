#include "postline/delivery.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <nlohmann/json.hpp>
#include <thread>

#include "postline/mime.h"
#include "in_doubt_gate.h"
#include "rate_limiter.h"

namespace postline {
namespace {

using std::chrono::seconds;
using std::chrono::steady_clock;
using std::chrono::system_clock;

// Message attribute values must hold SQS's allowed characters; server replies
// can hold anything, so keep printable text and bound the length.
std::string AttributeText(std::string_view text, std::size_t max_bytes = 1024) {
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= max_bytes) break;
    if (c == '\r' || c == '\n' || c == '\t') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else if (c >= 0x80) {
      out += '?';
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out.empty() ? std::string("-") : out;
}

// A received message to give back at once (visibility 0).
struct Release {
  std::string receipt_handle;
  std::string message_id;
};

// Releases `messages` of `queue` in ChangeMessageVisibilityBatch requests of
// at most 10 entries (one ChangeMessageVisibility for a single message).
// Failures are logged; the message then reappears when its timeout ends.
void ReleaseMessages(Queue& queue, const std::vector<Release>& messages, const Log& log) {
  auto failed = [&](const Release& m, const Error& error) {
    log.Warn("release_failed",
             {{"message_id", m.message_id}, {"queue", queue.name()}, {"error", error.ToString()}});
  };
  for (std::size_t begin = 0; begin < messages.size(); begin += kMaxBatchEntries) {
    const std::size_t end = std::min(messages.size(), begin + kMaxBatchEntries);
    if (end - begin == 1) {
      if (auto r = queue.ChangeMessageVisibility(messages[begin].receipt_handle, 0); !r) {
        failed(messages[begin], r.error());
      }
      continue;
    }
    std::vector<Queue::VisibilityChange> changes;
    for (std::size_t i = begin; i < end; ++i) {
      changes.push_back({fmt::format("r{}", i - begin), messages[i].receipt_handle, 0});
    }
    auto results = queue.ChangeMessageVisibilityBatch(changes);
    for (std::size_t i = begin; i < end; ++i) {
      if (!results) {
        failed(messages[i], results.error());
        continue;
      }
      for (const auto& r : *results) {
        if (r.id == changes[i - begin].id && !r.result) failed(messages[i], r.result.error());
      }
    }
  }
}

}  // namespace

namespace worker_internal {

// Collects the deletes of settled messages and sends them per queue as
// DeleteMessageBatch requests: a queue's deletes go out when 10 are waiting
// or when the oldest has waited `window`. One thread of its own; Stop (and
// the destructor) sends everything still waiting before returning.
// Thread-safety: Add may be called from any thread.
class DeleteBatcher {
 public:
  DeleteBatcher(std::chrono::milliseconds window, std::shared_ptr<Clock> clock, Log log)
      : window_(window), clock_(std::move(clock)), log_(std::move(log)) {
    thread_ = std::jthread([this] { Loop(); });
  }
  ~DeleteBatcher() { Stop(); }
  DeleteBatcher(const DeleteBatcher&) = delete;
  DeleteBatcher& operator=(const DeleteBatcher&) = delete;

  void Add(Queue& queue, std::string receipt_handle, std::string envelope_id) {
    {
      std::lock_guard lock(mu_);
      pending_[&queue].push_back(
          {std::move(receipt_handle), std::move(envelope_id), clock_->SteadyNow()});
    }
    cv_.notify_one();
  }

  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

 private:
  struct Entry {
    std::string receipt_handle;
    std::string envelope_id;
    steady_clock::time_point added;
  };

  void Loop() {
    std::unique_lock lock(mu_);
    while (true) {
      const auto now = clock_->SteadyNow();
      std::vector<std::pair<Queue*, std::vector<Entry>>> ready;
      std::optional<steady_clock::time_point> next;
      for (auto& [queue, entries] : pending_) {
        if (entries.empty()) continue;
        const auto due = entries.front().added + window_;
        if (stopping_ || entries.size() >= kMaxBatchEntries || now >= due) {
          const auto take = std::min<std::size_t>(entries.size(), kMaxBatchEntries);
          ready.emplace_back(queue,
                             std::vector<Entry>(std::make_move_iterator(entries.begin()),
                                                std::make_move_iterator(entries.begin() + take)));
          entries.erase(entries.begin(), entries.begin() + take);
        } else {
          next = next ? std::min(*next, due) : due;
        }
      }
      if (!ready.empty()) {
        lock.unlock();
        for (const auto& [queue, entries] : ready) Send(*queue, entries);
        lock.lock();
        continue;
      }
      if (stopping_) return;
      if (next) {
        cv_.wait_for(lock, *next - now);
      } else {
        cv_.wait(lock);
      }
    }
  }

  void Send(Queue& queue, const std::vector<Entry>& entries) {
    std::vector<std::pair<std::string, std::string>> batch;
    for (std::size_t i = 0; i < entries.size(); ++i) {
      batch.emplace_back(fmt::format("d{}", i), entries[i].receipt_handle);
    }
    // A failed delete leaves the message to reappear after its visibility
    // timeout; the sent log makes that receiver delete it without sending.
    auto failed = [&](const Entry& e, const Error& error) {
      log_.Warn(
          "delete_failed",
          {{"envelope_id", e.envelope_id}, {"queue", queue.name()}, {"error", error.ToString()}});
    };
    auto results = queue.DeleteMessageBatch(batch);
    for (std::size_t i = 0; i < entries.size(); ++i) {
      if (!results) {
        failed(entries[i], results.error());
        continue;
      }
      for (const auto& r : *results) {
        if (r.id == batch[i].first && !r.result) failed(entries[i], r.result.error());
      }
    }
  }

  const std::chrono::milliseconds window_;
  std::shared_ptr<Clock> clock_;
  Log log_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<Queue*, std::vector<Entry>> pending_;
  bool stopping_ = false;
  std::jthread thread_;  // last: started after the members it uses
};

}  // namespace worker_internal

int BackoffSeconds(int attempt, int min_seconds, int max_seconds, std::mt19937_64& rng) {
  min_seconds = std::max(min_seconds, 0);
  max_seconds = std::max(max_seconds, min_seconds);
  long long cap = min_seconds;
  for (int i = 1; i < attempt && cap < max_seconds; ++i) cap = std::max(cap * 2, 1LL);
  cap = std::min<long long>(cap, max_seconds);
  std::uniform_int_distribution<long long> dist(min_seconds, cap);
  return static_cast<int>(dist(rng));
}

int VisibilityExtensionSeconds(steady_clock::time_point now, steady_clock::time_point received,
                               steady_clock::time_point visible_again,
                               int visibility_timeout_seconds) {
  const auto half = seconds(std::max(1, visibility_timeout_seconds / 2));
  if (visible_again - now > half) return 0;
  // Whole seconds still allowed under the 12-hour ceiling (one second of
  // margin for the time the request takes).
  const auto used = std::chrono::duration_cast<seconds>(now - received).count() + 1;
  const long long allowed = kMaxVisibilityTimeoutSeconds - used;
  if (allowed < 1) return -1;
  return static_cast<int>(std::min<long long>(visibility_timeout_seconds, allowed));
}

Worker::Worker(WorkerSettings settings, QueuePair queues, TransportFactory transport_factory,
               std::shared_ptr<StateStore> state, std::shared_ptr<Clock> clock, Log log)
    : settings_(settings),
      queues_(std::move(queues)),
      transport_factory_(std::move(transport_factory)),
      state_(std::move(state)),
      clock_(std::move(clock)),
      log_(std::move(log)),
      rng_(std::random_device{}()) {
  worker_internal::RateLimiterSettings rl;
  rl.rate_per_second = settings_.rate_limit_per_second;
  rl.priority_reserve_percent = settings_.priority_reserve_percent;
  limiter_ = std::make_unique<worker_internal::RateLimiter>(rl, clock_, log_);
  in_doubt_ = std::make_unique<worker_internal::InDoubtGate>(settings_.max_in_doubt);
}

Worker::~Worker() = default;

double Worker::current_rate() const { return limiter_->current_rate(); }

std::uint64_t Worker::Track(Queue& queue, const ReceivedMessage& message,
                            steady_clock::time_point received) {
  std::lock_guard lock(inflight_mu_);
  const std::uint64_t token = next_inflight_id_++;
  inflight_[token] = InFlight{&queue, message.receipt_handle, message.message_id,
                              received + seconds(settings_.visibility_timeout_seconds), received};
  return token;
}

void Worker::Untrack(std::uint64_t token) {
  std::lock_guard lock(inflight_mu_);
  inflight_.erase(token);
}

bool Worker::ApplyExtension(InFlight& f, const Result<void>& result, steady_clock::time_point now,
                            int extend) {
  if (!result) {
    log_.Warn("heartbeat_failed", {{"envelope_id", f.envelope_id},
                                   {"queue", f.queue->name()},
                                   {"error", result.error().ToString()}});
    if (result.error().code == "ReceiptHandleIsInvalid" ||
        result.error().code == "MessageNotInflight") {
      f.lost = true;
      return false;
    }
    return now < f.visible_again;
  }
  f.visible_again = now + seconds(extend);
  log_.Debug("heartbeat", {{"envelope_id", f.envelope_id}, {"visibility_timeout_s", extend}});
  return true;
}

int Worker::DueExtension(InFlight& f, steady_clock::time_point now) {
  const int extend = VisibilityExtensionSeconds(now, f.received, f.visible_again,
                                                settings_.visibility_timeout_seconds);
  if (extend < 0 && !f.cap_logged) {
    f.cap_logged = true;
    log_.Warn("visibility_ceiling_reached", {{"envelope_id", f.envelope_id},
                                             {"queue", f.queue->name()},
                                             {"max_s", kMaxVisibilityTimeoutSeconds}});
  }
  return extend;
}

bool Worker::EnsureVisibility(std::uint64_t token) {
  // Holding inflight_mu_ across the call keeps the heartbeat from racing a
  // settle (a late extension must never overwrite a backoff or follow a
  // delete).
  std::lock_guard lock(inflight_mu_);
  auto it = inflight_.find(token);
  if (it == inflight_.end()) return true;
  InFlight& f = it->second;
  if (f.lost) return false;
  const auto now = clock_->SteadyNow();
  const int extend = DueExtension(f, now);
  if (extend == 0) return true;
  if (extend < 0) return now < f.visible_again;
  return ApplyExtension(f, f.queue->ChangeMessageVisibility(f.receipt_handle, extend), now, extend);
}

void Worker::Heartbeat() {
  // Held throughout, as in EnsureVisibility: no extension may follow a settle.
  std::lock_guard lock(inflight_mu_);
  const auto now = clock_->SteadyNow();
  struct Due {
    InFlight* f;
    int extend;
  };
  std::map<Queue*, std::vector<Due>> due;
  for (auto& [token, f] : inflight_) {
    if (f.lost) continue;
    const int extend = DueExtension(f, now);
    if (extend <= 0) continue;
    due[f.queue].push_back({&f, extend});
  }
  // Messages received together fall due together: one request per 10.
  for (auto& [queue, list] : due) {
    for (std::size_t begin = 0; begin < list.size(); begin += kMaxBatchEntries) {
      const std::size_t end = std::min(list.size(), begin + kMaxBatchEntries);
      if (end - begin == 1) {
        InFlight& f = *list[begin].f;
        (void)ApplyExtension(f,
                             queue->ChangeMessageVisibility(f.receipt_handle, list[begin].extend),
                             now, list[begin].extend);
        continue;
      }
      std::vector<Queue::VisibilityChange> changes;
      for (std::size_t i = begin; i < end; ++i) {
        changes.push_back(
            {fmt::format("h{}", i - begin), list[i].f->receipt_handle, list[i].extend});
      }
      auto results = queue->ChangeMessageVisibilityBatch(changes);
      for (std::size_t i = begin; i < end; ++i) {
        Result<void> one = MakeError(ErrorKind::kTransient, "ServiceUnavailable",
                                     "ChangeMessageVisibilityBatch did not report this entry");
        if (!results) {
          one = std::unexpected(results.error());
        } else {
          for (const auto& r : *results) {
            if (r.id == changes[i - begin].id) one = r.result;
          }
        }
        (void)ApplyExtension(*list[i].f, one, now, list[i].extend);
      }
    }
  }
}

void Worker::Notify(StatusEvent::State state, std::string_view envelope_id, const Queue& queue,
                    int attempts, int reply_code, std::string_view detail,
                    std::string_view provider_message_id, const Email* email) {
  if (!observer_ || envelope_id.empty()) return;
  StatusEvent ev;
  ev.state = state;
  ev.envelope_id = std::string(envelope_id);
  ev.queue = queue.name();
  ev.attempts = attempts;
  ev.reply_code = reply_code;
  ev.detail = std::string(detail);
  ev.provider_message_id = std::string(provider_message_id);
  ev.email = email;
  observer_->OnStatus(ev);
}

void Worker::Settle(Queue& queue, const ReceivedMessage& message, std::string_view envelope_id) {
  if (deleter_) {
    deleter_->Add(queue, message.receipt_handle, std::string(envelope_id));
    return;
  }
  if (auto del = queue.DeleteMessage(message.receipt_handle); !del) {
    // The visibility timeout lapsed and another receive took the message; the
    // sent log makes that receiver delete it without sending.
    log_.Warn(
        "delete_failed",
        {{"envelope_id", envelope_id}, {"queue", queue.name()}, {"error", del.error().ToString()}});
  }
}

void Worker::DeadLetter(Queue& queue, Queue& dlq, const ReceivedMessage& message,
                        std::string_view envelope_id, std::string_view reason, int reply_code,
                        std::string_view reply) {
  SendMessageRequest dead;
  dead.body = message.body;
  dead.delay_seconds = 0;
  dead.attributes[std::string(kAttrReason)] = {"String", std::string(reason)};
  dead.attributes[std::string(kAttrReplyCode)] = {"Number", std::to_string(reply_code)};
  dead.attributes[std::string(kAttrReply)] = {"String", AttributeText(reply)};
  dead.attributes[std::string(kAttrSourceQueue)] = {"String", queue.name()};
  dead.attributes[std::string(kAttrEnvelopeId)] = {
      "String", AttributeText(envelope_id.empty() ? std::string_view("-") : envelope_id, 128)};
  dead.attributes[std::string(kAttrAttempts)] = {"Number",
                                                 std::to_string(message.approximate_receive_count)};
  auto sent = dlq.SendMessage(dead);
  if (!sent) {
    // Keep the message where it is; it comes back after the backoff.
    int delay = 0;
    {
      std::lock_guard lock(rng_mu_);
      delay = BackoffSeconds(message.approximate_receive_count, settings_.retry_min_seconds,
                             settings_.retry_max_seconds, rng_);
    }
    (void)queue.ChangeMessageVisibility(message.receipt_handle, delay);
    log_.Error("dead_letter_failed", {{"envelope_id", envelope_id},
                                      {"queue", queue.name()},
                                      {"dlq", dlq.name()},
                                      {"error", sent.error().ToString()},
                                      {"retry_in_s", delay}});
    return;
  }
  Settle(queue, message, envelope_id);
  ++stats_.dead;
  Notify(StatusEvent::State::kDead, envelope_id, queue, message.approximate_receive_count,
         reply_code, fmt::format("{}: {}", reason, reply));
  log_.Warn("dead", {{"envelope_id", envelope_id},
                     {"queue", queue.name()},
                     {"dlq", dlq.name()},
                     {"reason", reason},
                     {"reply_code", reply_code},
                     {"reply", reply},
                     {"attempts", message.approximate_receive_count}});
}

void Worker::Handle(Transport& transport, Queue& queue, Queue& dlq,
                    const ReceivedMessage& message) {
  const std::uint64_t token = Track(queue, message, clock_->SteadyNow());
  HandleTracked(transport, queue, dlq, message, token);
}

void Worker::HandleTracked(Transport& transport, Queue& queue, Queue& dlq,
                           const ReceivedMessage& message, std::uint64_t token) {
  // Covered by the heartbeat until this returns; settling happens after the
  // entry is gone, so no extension can follow a delete or a backoff.
  struct Untracker {
    Worker* worker;
    std::uint64_t token;
    bool done = false;
    void Now() {
      if (!done) worker->Untrack(token);
      done = true;
    }
    ~Untracker() { Now(); }
  } untrack{this, token};
  // A queued envelope is self-contained: "" refuses attachment paths.
  auto parsed = ParseEmailJson(message.body, "", settings_.limits);
  if (!parsed || parsed->id.empty()) {
    std::string why = parsed ? "id: the envelope id is missing" : parsed.error().ToString();
    untrack.Now();
    DeadLetter(queue, dlq, message, "", "unparseable", 0, why);
    return;
  }
  const Email& email = *parsed;
  const std::string& id = email.id;
  {
    // Heartbeat log lines name the envelope from here on.
    std::lock_guard lock(inflight_mu_);
    if (auto it = inflight_.find(token); it != inflight_.end()) it->second.envelope_id = id;
  }

  // A redelivered message that was already sent: delete, don't send again.
  auto seen = state_->FindSent(id);
  if (!seen) {
    log_.Warn("sent_log_unavailable", {{"envelope_id", id}, {"error", seen.error().ToString()}});
    untrack.Now();
    (void)queue.ChangeMessageVisibility(message.receipt_handle, settings_.retry_min_seconds);
    return;
  }
  bool unrecorded = false;
  {
    std::lock_guard lock(unrecorded_mu_);
    unrecorded = unrecorded_.contains(id);
  }
  if (unrecorded && !seen->has_value()) {
    // Sent by this process while the sent log could not be written (disk
    // full): don't send again; record it now if the disk is back.
    ++stats_.duplicates;
    log_.Info("duplicate", {{"envelope_id", id}, {"queue", queue.name()}, {"sent_log", false}});
    untrack.Now();
    SentRecord late;
    late.envelope_id = id;
    late.idempotency_key = email.idempotency_key;
    late.queue = queue.name();
    late.transport = std::string(transport.name());
    late.sent_at = clock_->Now();
    if (state_->RecordSent(late)) {
      std::lock_guard lock(unrecorded_mu_);
      unrecorded_.erase(id);
    }
    Settle(queue, message, id);
    return;
  }
  if (seen->has_value()) {
    ++stats_.duplicates;
    log_.Info("duplicate",
              {{"envelope_id", id}, {"queue", queue.name()}, {"message_id", (*seen)->message_id}});
    untrack.Now();
    Settle(queue, message, id);
    return;
  }

  const system_clock::time_point now = clock_->Now();
  // Scheduled for later: re-queue with the remaining delay (≤ 900 s per hop).
  if (email.send_at && *email.send_at > now + seconds(1)) {
    auto remaining = std::chrono::duration_cast<seconds>(*email.send_at - now).count();
    SendMessageRequest later;
    later.body = message.body;
    later.attributes = message.attributes;
    later.delay_seconds = static_cast<int>(std::min<long long>(remaining, kMaxDelaySeconds));
    untrack.Now();
    if (auto resent = queue.SendMessage(later); !resent) {
      log_.Warn("defer_failed", {{"envelope_id", id}, {"error", resent.error().ToString()}});
      (void)queue.ChangeMessageVisibility(message.receipt_handle, settings_.retry_min_seconds);
      return;
    }
    Settle(queue, message, id);
    log_.Info("deferred",
              {{"envelope_id", id}, {"queue", queue.name()}, {"remaining_s", remaining}});
    return;
  }

  auto data = ComposeMessage(email, ComposeOptions{now});
  if (!data) {
    untrack.Now();
    DeadLetter(queue, dlq, message, id, "permanent", 0, data.error().ToString());
    return;
  }
  OutgoingMessage out;
  out.envelope_id = id;
  out.data = std::move(*data);
  auto from = email.from.AsciiEmail();
  if (!from) {
    untrack.Now();
    DeadLetter(queue, dlq, message, id, "permanent", 0, from.error().ToString());
    return;
  }
  out.mail_from = *from;
  for (const auto* list : {&email.to, &email.cc, &email.bcc}) {
    for (const auto& a : *list) {
      auto rcpt = a.AsciiEmail();
      if (!rcpt) {
        untrack.Now();
        DeadLetter(queue, dlq, message, id, "permanent", 0, rcpt.error().ToString());
        return;
      }
      if (std::find(out.rcpt_to.begin(), out.rcpt_to.end(), *rcpt) == out.rcpt_to.end()) {
        out.rcpt_to.push_back(*rcpt);
      }
    }
  }

  // Wait for the rate limiter (and for the circuit breaker while the server
  // is unreachable); the heartbeat keeps the message hidden meanwhile.
  const auto lane = &queue == queues_.priority.get() ? worker_internal::Lane::kPriority
                                                     : worker_internal::Lane::kRegular;
  if (!limiter_->Acquire(lane, run_stop_)) {
    untrack.Now();
    if (auto r = queue.ChangeMessageVisibility(message.receipt_handle, 0); !r) {
      log_.Warn("release_failed", {{"envelope_id", id}, {"error", r.error().ToString()}});
    }
    log_.Info("released", {{"envelope_id", id}, {"queue", queue.name()}});
    return;
  }
  // The message may have waited (buffered, rate limited): make sure it is
  // still ours and hidden for a while before the send starts.
  if (!EnsureVisibility(token)) {
    untrack.Now();
    log_.Warn("visibility_lost", {{"envelope_id", id}, {"queue", queue.name()}});
    limiter_->Unused();
    return;
  }
  Notify(StatusEvent::State::kSending, id, queue, message.approximate_receive_count, 0, "", "",
         &email);
  const auto started = clock_->SteadyNow();
  // From the transport's point of no return until the sent log has the
  // record, this send is in doubt: a crash now can send it twice. At most
  // settings_.max_in_doubt sends of this worker are there at once.
  worker_internal::InDoubtPlace in_doubt(in_doubt_.get(), lane);
  out.before_commit = [&in_doubt] { in_doubt.Take(); };
  SendResult result = transport.Send(out);
  const auto took_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_->SteadyNow() - started).count();
  untrack.Now();
  limiter_->OnResult(result);
  if (result.outcome != SendOutcome::kSent) in_doubt.Release();

  std::string message_id = MessageIdFor(email);  // "<id@domain>"
  if (message_id.size() > 2 && message_id.front() == '<' && message_id.back() == '>') {
    message_id = message_id.substr(1, message_id.size() - 2);
  }
  switch (result.outcome) {
    case SendOutcome::kSent: {
      SentRecord record;
      record.envelope_id = id;
      record.idempotency_key = email.idempotency_key;
      record.message_id = message_id;
      record.queue = queue.name();
      record.transport = std::string(transport.name());
      record.provider_message_id = result.provider_message_id;
      record.reply = result.reply;
      for (const auto& r : result.rejected) {
        record.rejected_recipients.push_back(
            fmt::format("{}: {} {}", r.recipient, r.reply_code, r.reply));
      }
      record.attempts = message.approximate_receive_count;
      record.sent_at = clock_->Now();
      // Record before deleting: if the delete is lost, the redelivery is
      // recognised. A crash between the point of no return and this write is
      // the one window in which a duplicate can be sent (with the same
      // Message-ID); the in-doubt place bounds how many sends are in it.
      if (auto rec = state_->RecordSent(record); !rec) {
        log_.Error("sent_log_write_failed",
                   {{"envelope_id", id}, {"error", rec.error().ToString()}});
        // Remembered in memory, so a redelivery to this process is not sent
        // again (another process would send it: the duplicate window).
        std::lock_guard lock(unrecorded_mu_);
        unrecorded_.insert(id);
      }
      in_doubt.Release();
      Settle(queue, message, id);
      ++stats_.sent;
      std::string detail = result.reply;
      if (!record.rejected_recipients.empty()) {
        detail += "; rejected:";
        for (const auto& r : record.rejected_recipients) detail += " " + r + ";";
        detail.pop_back();
      }
      Notify(StatusEvent::State::kSent, id, queue, message.approximate_receive_count,
             result.reply_code, detail, result.provider_message_id);
      nlohmann::json fields = {{"envelope_id", id},
                               {"queue", queue.name()},
                               {"transport", transport.name()},
                               {"message_id", message_id},
                               {"reply", result.reply},
                               {"attempts", message.approximate_receive_count},
                               {"duration_ms", took_ms}};
      if (!result.rejected.empty()) fields["rejected"] = record.rejected_recipients;
      log_.Info("sent", fields);
      for (const auto& r : result.rejected) {
        log_.Warn("recipient_rejected", {{"envelope_id", id},
                                         {"recipient", r.recipient},
                                         {"reply_code", r.reply_code},
                                         {"reply", r.reply}});
      }
      return;
    }
    case SendOutcome::kTransient: {
      // Age counts from when the e-mail became due: its send_at when that is
      // later than the queue's SentTimestamp (a past send_at must not
      // shorten the retry lifetime).
      const system_clock::time_point origin =
          email.send_at ? std::max(*email.send_at, message.sent_timestamp) : message.sent_timestamp;
      const auto age = std::chrono::duration_cast<seconds>(now - origin).count();
      if (age >= settings_.max_age_seconds) {
        DeadLetter(queue, dlq, message, id, "expired", result.reply_code,
                   fmt::format("gave up after {} s: {}", age, result.reply));
        return;
      }
      int delay = 0;
      {
        std::lock_guard lock(rng_mu_);
        delay = BackoffSeconds(message.approximate_receive_count, settings_.retry_min_seconds,
                               settings_.retry_max_seconds, rng_);
      }
      if (auto change = queue.ChangeMessageVisibility(message.receipt_handle, delay); !change) {
        log_.Warn("retry_schedule_failed",
                  {{"envelope_id", id}, {"error", change.error().ToString()}});
      }
      ++stats_.retried;
      Notify(StatusEvent::State::kRetrying, id, queue, message.approximate_receive_count,
             result.reply_code, result.reply);
      log_.Warn("retry", {{"envelope_id", id},
                          {"queue", queue.name()},
                          {"reply_code", result.reply_code},
                          {"reply", result.reply},
                          {"attempts", message.approximate_receive_count},
                          {"age_s", age},
                          {"retry_in_s", delay}});
      return;
    }
    case SendOutcome::kPermanent:
      for (const auto& r : result.rejected) {
        log_.Warn("recipient_rejected", {{"envelope_id", id},
                                         {"recipient", r.recipient},
                                         {"reply_code", r.reply_code},
                                         {"reply", r.reply}});
      }
      DeadLetter(queue, dlq, message, id, "permanent", result.reply_code, result.reply);
      return;
  }
}

Result<void> Worker::Run(std::stop_token stop) {
  if (!queues_.priority || !queues_.regular || !queues_.priority_dlq || !queues_.regular_dlq) {
    return MakeError(ErrorKind::kInternal, "worker_misconfigured", "worker needs all four queues");
  }
  struct Work {
    Queue* queue;
    Queue* dlq;
    ReceivedMessage message;
    std::uint64_t token;
    steady_clock::time_point received;
  };
  std::mutex mu;
  std::condition_variable_any cv;
  std::deque<Work> priority_buffer;
  std::deque<Work> regular_buffer;
  std::stop_source internal;
  std::stop_callback forward(stop, [&] {
    internal.request_stop();
    std::lock_guard lock(mu);
    cv.notify_all();
  });
  std::stop_token halt = internal.get_token();
  run_stop_ = halt;
  const int n = settings_.concurrency;
  // A lane receives 10 more whenever its buffer holds at most one message per
  // sender, so its buffer stays within 10 + concurrency.
  const std::size_t refill_at = static_cast<std::size_t>(n);
  const std::size_t capacity = kMaxBatchEntries + refill_at;
  // Stuck senders (a hung send, a blocked log) must not keep buffered
  // messages hidden from other workers: see WorkerSettings.
  const auto stall_after =
      seconds(std::max(settings_.visibility_timeout_seconds, settings_.stall_release_seconds));
  steady_clock::time_point last_pick = clock_->SteadyNow();
  bool stalled = false;  // buffers released for lack of progress; no receiving
  const auto delete_window = std::chrono::milliseconds(std::min<long long>(
      settings_.delete_batch_window_ms, settings_.visibility_timeout_seconds * 100LL));
  if (delete_window.count() > 0) {
    deleter_ = std::make_unique<worker_internal::DeleteBatcher>(delete_window, clock_, log_);
  }

  // Gives buffered work back to its queues (visibility 0), batched per queue.
  auto release_work = [&](std::vector<Work>& work) {
    std::map<Queue*, std::vector<Release>> by_queue;
    for (auto& w : work) {
      Untrack(w.token);
      by_queue[w.queue].push_back({w.message.receipt_handle, w.message.message_id});
    }
    for (const auto& [queue, messages] : by_queue) ReleaseMessages(*queue, messages, log_);
  };

  auto receiver = [&](Queue& queue, Queue& dlq, bool priority_lane) {
    std::deque<Work>& own = priority_lane ? priority_buffer : regular_buffer;
    while (!halt.stop_requested()) {
      int want = 0;
      {
        std::unique_lock lock(mu);
        // The regular lane also waits while priority work is queued up in
        // the worker: its messages would only wait behind it.
        cv.wait(lock, halt, [&] {
          return !stalled && own.size() <= refill_at &&
                 (priority_lane || priority_buffer.size() <= refill_at);
        });
        if (halt.stop_requested()) break;
        want = static_cast<int>(std::min<std::size_t>(kMaxBatchEntries, capacity - own.size()));
      }
      ReceiveMessageRequest req;
      req.max_number_of_messages = std::clamp(want, 1, kMaxBatchEntries);
      req.visibility_timeout_seconds = settings_.visibility_timeout_seconds;
      req.wait_time_seconds = settings_.wait_time_seconds;
      req.stop = halt;
      // Taken before the call: the visibility timeout runs from the receive.
      const auto received = clock_->SteadyNow();
      auto got = queue.ReceiveMessage(req);
      if (!got) {
        log_.Warn("receive_failed", {{"queue", queue.name()}, {"error", got.error().ToString()}});
        std::unique_lock lock(mu);
        cv.wait_for(lock, halt, seconds(1), [] { return false; });
        continue;
      }
      std::vector<Work> batch;
      std::vector<Release> late;
      for (auto& m : *got) {
        if (halt.stop_requested()) {
          late.push_back({m.receipt_handle, m.message_id});  // received after the signal
          continue;
        }
        // Buffered messages are covered by the heartbeat from here on.
        const std::uint64_t token = Track(queue, m, received);
        batch.push_back({&queue, &dlq, std::move(m), token, received});
      }
      if (!late.empty()) ReleaseMessages(queue, late, log_);
      std::lock_guard lock(mu);
      for (auto& w : batch) own.push_back(std::move(w));
      cv.notify_all();
    }
  };

  auto sender = [&] {
    std::unique_ptr<Transport> transport = transport_factory_();
    while (true) {
      Work work;
      {
        std::unique_lock lock(mu);
        if (stalled) {
          stalled = false;  // this sender is back for work: receive again
          cv.notify_all();
        }
        cv.wait(lock, halt, [&] { return !priority_buffer.empty() || !regular_buffer.empty(); });
        if (halt.stop_requested()) break;
        // Priority first, always: regular mail waits while any is buffered.
        auto& from = !priority_buffer.empty() ? priority_buffer : regular_buffer;
        work = std::move(from.front());
        from.pop_front();
        last_pick = clock_->SteadyNow();
        cv.notify_all();  // a receiver may refill its buffer now
      }
      HandleTracked(*transport, *work.queue, *work.dlq, work.message, work.token);
    }
  };

  Retention retention;
  retention.sent_log = seconds(settings_.sent_log_retention_seconds);
  auto prune = [&] {
    if (auto pruned = state_->Prune(retention); !pruned) {
      log_.Warn("state_prune_failed", {{"error", pruned.error().ToString()}});
    } else if (pruned->sent_records > 0 || pruned->status_records > 0) {
      log_.Info("state_pruned", {{"sent_records", pruned->sent_records},
                                 {"status_records", pruned->status_records},
                                 {"sent_log_retention_s", retention.sent_log.count()},
                                 {"status_retention_s", retention.status.count()}});
    }
  };

  auto heartbeat = [&] {
    auto next_prune = clock_->SteadyNow();
    while (!halt.stop_requested()) {
      if (clock_->SteadyNow() >= next_prune) {
        prune();
        next_prune = clock_->SteadyNow() + std::chrono::hours(1);
      }
      {
        // Ticks twice a second: a visibility timeout of 1–2 s is still
        // extended before it lapses.
        std::unique_lock lock(mu);
        cv.wait_for(lock, halt, std::chrono::milliseconds(500), [] { return false; });
      }
      std::vector<Work> stale;
      {
        std::lock_guard lock(mu);
        const auto now = clock_->SteadyNow();
        auto waited = [&](const std::deque<Work>& buffer) {
          return !buffer.empty() && now - buffer.front().received >= stall_after;
        };
        if (now - last_pick >= stall_after && (waited(priority_buffer) || waited(regular_buffer))) {
          for (auto* buffer : {&priority_buffer, &regular_buffer}) {
            for (auto& w : *buffer) stale.push_back(std::move(w));
            buffer->clear();
          }
          stalled = true;
        }
      }
      if (!stale.empty()) {
        release_work(stale);
        log_.Warn("senders_stalled",
                  {{"released", stale.size()}, {"no_progress_s", stall_after.count()}});
      }
      Heartbeat();
    }
  };

  log_.Info("worker_started", {{"concurrency", n},
                               {"priority_queue", queues_.priority->name()},
                               {"regular_queue", queues_.regular->name()},
                               {"visibility_timeout_s", settings_.visibility_timeout_seconds},
                               {"rate_per_s", limiter_->current_rate()},
                               {"priority_reserve_percent", settings_.priority_reserve_percent}});
  {
    std::vector<std::jthread> threads;
    threads.emplace_back(receiver, std::ref(*queues_.priority), std::ref(*queues_.priority_dlq),
                         true);
    threads.emplace_back(receiver, std::ref(*queues_.regular), std::ref(*queues_.regular_dlq),
                         false);
    threads.emplace_back(heartbeat);
    for (int i = 0; i < n; ++i) threads.emplace_back(sender);
  }  // joins: receivers return from their long poll, senders finish their send
  // The deletes of the last sends go out now.
  deleter_.reset();
  // Received but never started: release them now, so they don't wait out a
  // whole visibility timeout.
  std::vector<Work> unstarted;
  for (auto* buffer : {&priority_buffer, &regular_buffer}) {
    for (auto& w : *buffer) unstarted.push_back(std::move(w));
    buffer->clear();
  }
  release_work(unstarted);
  const std::size_t released = unstarted.size();
  run_stop_ = {};
  log_.Info("worker_stopped", {{"sent", stats_.sent.load()},
                               {"retried", stats_.retried.load()},
                               {"dead", stats_.dead.load()},
                               {"duplicates", stats_.duplicates.load()},
                               {"released", released},
                               {"rate_per_s", limiter_->current_rate()}});
  return {};
}

}  // namespace postline
