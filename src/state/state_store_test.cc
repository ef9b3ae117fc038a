// The StateStore conformance suite: every test runs on every backend
// (sqlite on a state.db in a temporary folder, postgres on a database of a
// throwaway PostgreSQL server). Postgres cases are skipped, with the reason,
// when PostgreSQL is not installed. Tests that race several processes fork
// children that open their own store, as separate `postline` processes do.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "postline/postgres.h"
#include "postline/state.h"
#include "testing/postgres_server.h"

namespace postline {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;
using std::chrono::system_clock;

class ManualClock final : public Clock {
 public:
  system_clock::time_point Now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  std::chrono::steady_clock::time_point SteadyNow() const override {
    return std::chrono::steady_clock::time_point(Now().time_since_epoch());
  }
  void Advance(std::chrono::milliseconds d) {
    std::lock_guard lock(mu_);
    now_ += d;
  }

 private:
  mutable std::mutex mu_;
  system_clock::time_point now_ = system_clock::time_point(seconds(1'800'000'000));
};

// Runs `child(i)` for i in [0, n) in n forked processes that start at the
// same moment; returns what each returned, in order of i. A child that
// crashes or exits non-zero shows up as "child i failed". Children leave
// with _exit: they must not run the parent's destructors (its connections,
// its PostgreSQL server).
std::vector<std::string> RunInProcesses(int n, const std::function<std::string(int)>& child) {
  int go[2];
  if (::pipe(go) != 0) return {};
  std::vector<pid_t> pids;
  std::vector<int> outputs;
  for (int i = 0; i < n; ++i) {
    int out[2];
    if (::pipe(out) != 0) break;
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(go[1]);
      ::close(out[0]);
      char byte;
      (void)::read(go[0], &byte, 1);  // returns when the parent closes its end: go
      const std::string result = child(i);
      std::size_t written = 0;
      while (written < result.size()) {
        const ssize_t w = ::write(out[1], result.data() + written, result.size() - written);
        if (w <= 0) ::_exit(2);
        written += static_cast<std::size_t>(w);
      }
      ::_exit(0);
    }
    ::close(out[1]);
    pids.push_back(pid);
    outputs.push_back(out[0]);
  }
  ::close(go[0]);
  ::close(go[1]);  // every child starts now
  std::vector<std::string> results;
  for (std::size_t i = 0; i < pids.size(); ++i) {
    std::string text;
    char buf[4096];
    ssize_t got;
    while ((got = ::read(outputs[i], buf, sizeof buf)) > 0)
      text.append(buf, static_cast<std::size_t>(got));
    ::close(outputs[i]);
    int status = 0;
    ::waitpid(pids[i], &status, 0);
    results.push_back(
        WIFEXITED(status) && WEXITSTATUS(status) == 0 ? text : fmt::format("child {} failed", i));
  }
  return results;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

enum class Backend { kSqlite, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return info.param == Backend::kSqlite ? "sqlite" : "postgres";
}

class StateStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    clock_ = std::make_shared<ManualClock>();
    static std::atomic<int> counter{0};
    const int n = ++counter;
    if (GetParam() == Backend::kSqlite) {
      dir_ = fs::temp_directory_path() / fmt::format("postline-state-{}-{}", ::getpid(), n);
      fs::remove_all(dir_);
    } else {
      std::string why;
      server_ = testing_support::SharedPostgresServer(&why);
      if (server_ == nullptr) GTEST_SKIP() << "PostgreSQL unavailable: " << why;
      auto url = server_->CreateDatabase(fmt::format("state_{}", n));
      ASSERT_TRUE(url) << url.error();
      url_ = *url;
    }
    auto store = Open();
    ASSERT_TRUE(store) << store.error().ToString();
    store_ = *store;
  }
  void TearDown() override {
    store_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  bool postgres() const { return GetParam() == Backend::kPostgres; }

  // Another store on the same database, as another process opens it.
  Result<std::shared_ptr<StateStore>> Open(StatusErrorHook hook = {}) {
    return OpenStateStore(
        StateStoreOptions{url_, (dir_ / "state.db").string(), clock_, std::move(hook)});
  }

  // Runs `sql` on the database behind the store's back.
  void Sql(const std::string& sql) {
    if (postgres()) {
      auto conn = pg::Connection::Open(url_);
      ASSERT_TRUE(conn) << conn.error().ToString();
      auto done = (*conn)->ExecScript(sql);
      ASSERT_TRUE(done) << done.error().ToString();
    } else {
      sqlite3* raw = nullptr;
      ASSERT_EQ(sqlite3_open((dir_ / "state.db").string().c_str(), &raw), SQLITE_OK);
      char* err = nullptr;
      const int rc = sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, &err);
      const std::string message = err != nullptr ? err : "";
      sqlite3_free(err);
      sqlite3_close(raw);
      ASSERT_EQ(rc, SQLITE_OK) << message;
    }
  }
  std::string StatusTable() const { return postgres() ? "postline_email_status" : "email_status"; }

  StatusEvent Event(StatusEvent::State state, std::string id, int attempts = 0,
                    std::string detail = "") {
    StatusEvent ev;
    ev.state = state;
    ev.envelope_id = std::move(id);
    ev.queue = "invoice-generation-queue";
    ev.attempts = attempts;
    ev.detail = std::move(detail);
    return ev;
  }

  SentRecord Sent(std::string id, std::string reply = "250 2.0.0 Ok: queued as X") {
    SentRecord r;
    r.envelope_id = std::move(id);
    r.idempotency_key = "key-" + r.envelope_id;
    r.message_id = r.envelope_id + "@postline.example";
    r.queue = "invoice-generation-queue";
    r.transport = "smtp";
    r.provider_message_id = "X";
    r.reply = std::move(reply);
    r.rejected_recipients = {"bad@example.com: 550 5.1.1 no such user"};
    r.attempts = 2;
    r.sent_at = clock_->Now();
    return r;
  }

  fs::path dir_;
  std::string url_;
  testing_support::PostgresServer* server_ = nullptr;
  std::shared_ptr<ManualClock> clock_;
  std::shared_ptr<StateStore> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, StateStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

// --- status -------------------------------------------------------------------------

TEST_P(StateStoreTest, UnknownIdIsEmpty) {
  auto got = store_->GetStatus("01NOPE");
  ASSERT_TRUE(got);
  EXPECT_FALSE(got->has_value());
}

TEST_P(StateStoreTest, FollowsTheLifecycleAndKeepsTimestamps) {
  Email email;
  email.to = {{"", "a@example.com"}};
  email.cc = {{"Bee", "b@example.com"}};
  email.subject = "Invoice 42";
  email.idempotency_key = "inv-42";
  auto queued = Event(StatusEvent::State::kQueued, "01A");
  queued.email = &email;
  store_->OnStatus(queued);
  const auto created = clock_->Now();

  clock_->Advance(std::chrono::milliseconds(1500));
  store_->OnStatus(Event(StatusEvent::State::kSending, "01A", 1));
  clock_->Advance(std::chrono::milliseconds(500));
  auto retry = Event(StatusEvent::State::kRetrying, "01A", 1, "451 try later");
  retry.reply_code = 451;
  store_->OnStatus(retry);

  auto got = store_->GetStatus("01A");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->state, "retrying");
  EXPECT_EQ((*got)->attempts, 1);
  EXPECT_EQ((*got)->reply_code, 451);
  EXPECT_EQ((*got)->last_error, "451 try later");
  EXPECT_EQ((*got)->recipients, (std::vector<std::string>{"a@example.com", "b@example.com"}));
  EXPECT_EQ((*got)->subject, "Invoice 42");
  EXPECT_EQ((*got)->idempotency_key, "inv-42");
  EXPECT_EQ(ToUnixMillis((*got)->created_at), ToUnixMillis(created));
  EXPECT_EQ(ToUnixMillis((*got)->updated_at), ToUnixMillis(created) + 2000);
  EXPECT_FALSE((*got)->sent_at.has_value());

  clock_->Advance(std::chrono::milliseconds(1000));
  auto sent = Event(StatusEvent::State::kSent, "01A", 2, "250 2.0.0 Ok: queued as ABC");
  sent.reply_code = 250;
  sent.provider_message_id = "ABC";
  store_->OnStatus(sent);
  got = store_->GetStatus("01A");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->state, "sent");
  EXPECT_EQ((*got)->attempts, 2);
  EXPECT_EQ((*got)->provider_message_id, "ABC");
  EXPECT_EQ((*got)->reply, "250 2.0.0 Ok: queued as ABC");
  EXPECT_EQ((*got)->last_error, "451 try later");  // the last error stays visible
  ASSERT_TRUE((*got)->sent_at.has_value());
  EXPECT_EQ(ToUnixMillis(*(*got)->sent_at), ToUnixMillis(created) + 3000);
  // Recipients survive events that carry no e-mail.
  EXPECT_EQ((*got)->recipients.size(), 2u);
}

TEST_P(StateStoreTest, SentIsFinal) {
  store_->OnStatus(Event(StatusEvent::State::kSent, "01B", 1, "250 ok"));
  store_->OnStatus(Event(StatusEvent::State::kRetrying, "01B", 1, "late"));
  auto got = store_->GetStatus("01B");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->state, "sent");
}

TEST_P(StateStoreTest, DeadCanBeQueuedAgainAfterARedrive) {
  store_->OnStatus(Event(StatusEvent::State::kDead, "01C", 3, "permanent: 550 no such user"));
  store_->OnStatus(Event(StatusEvent::State::kQueued, "01C"));
  auto got = store_->GetStatus("01C");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->state, "queued");
  EXPECT_EQ((*got)->attempts, 3);  // never lowered
  EXPECT_EQ((*got)->last_error, "permanent: 550 no such user");
}

TEST_P(StateStoreTest, ListsByStateNewestFirst) {
  store_->OnStatus(Event(StatusEvent::State::kDead, "01D1", 1, "x"));
  clock_->Advance(seconds(1));
  store_->OnStatus(Event(StatusEvent::State::kDead, "01D2", 1, "y"));
  store_->OnStatus(Event(StatusEvent::State::kQueued, "01D3"));
  auto dead = store_->ListStatus("dead", 10);
  ASSERT_TRUE(dead);
  ASSERT_EQ(dead->size(), 2u);
  EXPECT_EQ((*dead)[0].id, "01D2");
  EXPECT_EQ((*dead)[1].id, "01D1");
  auto one = store_->ListStatus("dead", 1);
  ASSERT_TRUE(one);
  EXPECT_EQ(one->size(), 1u);
  auto bad = store_->ListStatus("dead", 0);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, "invalid_limit");
}

TEST_P(StateStoreTest, AFailedWriteIsReportedThroughTheHook) {
  std::vector<std::string> errors;
  auto store = Open([&](const StatusEvent& ev, const Error& e) {
    errors.push_back(ev.envelope_id + " " + e.code);
  });
  ASSERT_TRUE(store);
  // Someone drops the table underneath the store.
  Sql("DROP TABLE " + StatusTable());
  (*store)->OnStatus(Event(StatusEvent::State::kQueued, "01G"));
  ASSERT_EQ(errors.size(), 1u);
  // postgres: database_error (kInternal: a missing table does not come back
  // by itself).
  EXPECT_EQ(errors.front(), postgres() ? "01G database_error" : "01G ServiceUnavailable");
}

// --- sent log ---------------------------------------------------------------------------

TEST_P(StateStoreTest, TheSentLogKeepsTheFirstRecordOfAnEnvelope) {
  ASSERT_TRUE(store_->RecordSent(Sent("01S", "250 first")));
  clock_->Advance(seconds(5));
  ASSERT_TRUE(store_->RecordSent(Sent("01S", "250 second")));
  auto got = store_->FindSent("01S");
  ASSERT_TRUE(got && got->has_value()) << (got ? "" : got.error().ToString());
  const SentRecord& r = **got;
  EXPECT_EQ(r.reply, "250 first");
  EXPECT_EQ(r.idempotency_key, "key-01S");
  EXPECT_EQ(r.message_id, "01S@postline.example");
  EXPECT_EQ(r.queue, "invoice-generation-queue");
  EXPECT_EQ(r.transport, "smtp");
  EXPECT_EQ(r.provider_message_id, "X");
  EXPECT_EQ(r.rejected_recipients,
            (std::vector<std::string>{"bad@example.com: 550 5.1.1 no such user"}));
  EXPECT_EQ(r.attempts, 2);
  EXPECT_EQ(ToUnixMillis(r.sent_at), ToUnixMillis(clock_->Now()) - 5000);
  auto missing = store_->FindSent("01NOPE");
  ASSERT_TRUE(missing);
  EXPECT_FALSE(missing->has_value());
}

TEST_P(StateStoreTest, CountsSentRecordsSinceATimeByQueue) {
  const auto start = clock_->Now();
  ASSERT_TRUE(store_->RecordSent(Sent("01C1")));
  clock_->Advance(seconds(10));
  auto priority = Sent("01C2");
  priority.queue = "priority-emails-queue";
  priority.sent_at = clock_->Now();
  ASSERT_TRUE(store_->RecordSent(priority));
  auto third = Sent("01C3");
  third.sent_at = clock_->Now();
  ASSERT_TRUE(store_->RecordSent(third));
  EXPECT_EQ(*store_->CountSentSince(start), 3);
  EXPECT_EQ(*store_->CountSentSince(start + seconds(1)), 2);
  EXPECT_EQ(*store_->CountSentSince(start, "priority-emails-queue"), 1);
  EXPECT_EQ(*store_->CountSentSince(start + seconds(1), "invoice-generation-queue"), 1);
  EXPECT_EQ(*store_->CountSentSince(start + seconds(11)), 0);
}

TEST_P(StateStoreTest, AReplyThatIsNotUtf8IsStillRecorded) {
  // An SMTP server may answer in Latin-1; the sent-log record must not be
  // lost over it (postgres stores U+FFFD for the bytes it cannot hold).
  ASSERT_TRUE(store_->RecordSent(Sent("01U",
                                      "250 Nachricht \xFC"
                                      "bermittelt")));
  auto got = store_->FindSent("01U");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_TRUE((*got)->reply.starts_with("250 Nachricht ")) << (*got)->reply;
  EXPECT_TRUE((*got)->reply.ends_with("bermittelt")) << (*got)->reply;
  store_->OnStatus(Event(StatusEvent::State::kRetrying, "01U", 1, "451 \xE9\x00chec"));
  auto status = store_->GetStatus("01U");
  ASSERT_TRUE(status && status->has_value());
  EXPECT_EQ((*status)->state, "retrying");
}

// --- idempotency keys ---------------------------------------------------------------------

TEST_P(StateStoreTest, IdempotencyKeyIsClaimedOnce) {
  auto first = store_->ClaimIdempotencyKey("order-7", "01E1");
  ASSERT_TRUE(first);
  EXPECT_FALSE(first->existed);
  EXPECT_EQ(first->envelope_id, "01E1");
  ASSERT_TRUE(store_->SetIdempotencyQueue("order-7", "priority-emails-queue"));
  auto second = store_->ClaimIdempotencyKey("order-7", "01E2");
  ASSERT_TRUE(second);
  EXPECT_TRUE(second->existed);
  EXPECT_EQ(second->envelope_id, "01E1");
  EXPECT_EQ(second->queue, "priority-emails-queue");
  // Releasing with the wrong id keeps the claim; with the right one frees it.
  ASSERT_TRUE(store_->ReleaseIdempotencyKey("order-7", "01E2"));
  EXPECT_TRUE(store_->ClaimIdempotencyKey("order-7", "01E3")->existed);
  ASSERT_TRUE(store_->ReleaseIdempotencyKey("order-7", "01E1"));
  auto third = store_->ClaimIdempotencyKey("order-7", "01E3");
  ASSERT_TRUE(third);
  EXPECT_FALSE(third->existed);
  EXPECT_EQ(third->envelope_id, "01E3");
  // The same id claiming again is a replay too.
  EXPECT_TRUE(store_->ClaimIdempotencyKey("order-7", "01E3")->existed);

  auto empty = store_->ClaimIdempotencyKey("", "01E4");
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().code, "invalid_idempotency_key");
  EXPECT_FALSE(store_->ClaimIdempotencyKey(std::string(129, 'k'), "01E4"));
  EXPECT_TRUE(store_->ClaimIdempotencyKey(std::string(128, 'k'), "01E4"));
}

TEST_P(StateStoreTest, ConcurrentClaimsOfOneKeyAgreeOnOneId) {
  // Two stores (as two processes would have) race from two threads.
  auto other = Open();
  ASSERT_TRUE(other);
  std::mutex mu;
  std::map<std::string, std::set<std::string>> ids_by_key;
  std::atomic<int> new_claims{0};
  auto race = [&](StateStore& store, std::string prefix) {
    for (int i = 0; i < 50; ++i) {
      std::string key = fmt::format("k{}", i);
      auto claim = store.ClaimIdempotencyKey(key, prefix + std::to_string(i));
      ASSERT_TRUE(claim) << claim.error().ToString();
      if (!claim->existed) ++new_claims;
      std::lock_guard lock(mu);
      ids_by_key[key].insert(claim->envelope_id);
    }
  };
  std::thread a([&] { race(*store_, "A"); });
  std::thread b([&] { race(**other, "B"); });
  a.join();
  b.join();
  EXPECT_EQ(new_claims.load(), 50);
  for (const auto& [key, ids] : ids_by_key) EXPECT_EQ(ids.size(), 1u) << key;
}

TEST_P(StateStoreTest, ConcurrentClaimsFromSeveralProcessesAgreeOnOneWinner) {
  constexpr int kProcesses = 4;
  constexpr int kKeys = 40;
  const auto outputs = RunInProcesses(kProcesses, [&](int p) {
    auto store = Open();
    if (!store) return "open failed: " + store.error().ToString() + "\n";
    std::string out;
    for (int k = 0; k < kKeys; ++k) {
      auto claim =
          (*store)->ClaimIdempotencyKey(fmt::format("k{}", k), fmt::format("P{}-{}", p, k));
      if (!claim) return out + "claim failed: " + claim.error().ToString() + "\n";
      out += fmt::format("k{} {} {}\n", k, claim->envelope_id, claim->existed ? 1 : 0);
    }
    return out;
  });
  ASSERT_EQ(outputs.size(), static_cast<std::size_t>(kProcesses));
  std::map<std::string, std::set<std::string>> ids;         // key → ids seen
  std::map<std::string, std::vector<std::string>> winners;  // key → who got existed=false
  for (int p = 0; p < kProcesses; ++p) {
    const auto lines = Lines(outputs[p]);
    ASSERT_EQ(lines.size(), static_cast<std::size_t>(kKeys)) << outputs[p];
    for (const auto& line : lines) {
      std::istringstream in(line);
      std::string key, id;
      int existed = -1;
      in >> key >> id >> existed;
      ids[key].insert(id);
      if (existed == 0) winners[key].push_back(fmt::format("P{}", p));
    }
  }
  ASSERT_EQ(ids.size(), static_cast<std::size_t>(kKeys));
  for (const auto& [key, seen] : ids) {
    ASSERT_EQ(seen.size(), 1u) << key << ": processes disagree";
    ASSERT_EQ(winners[key].size(), 1u) << key << ": not exactly one new claim";
    // The id everyone sees is the winner's.
    EXPECT_TRUE(seen.begin()->starts_with(winners[key].front() + "-")) << key;
  }
}

TEST_P(StateStoreTest, ConcurrentRecordsOfOneEnvelopeFromSeveralProcessesKeepOne) {
  constexpr int kProcesses = 4;
  const auto outputs = RunInProcesses(kProcesses, [&](int p) {
    auto store = Open();
    if (!store) return "open failed: " + store.error().ToString();
    for (int e = 0; e < 20; ++e) {
      if (auto done =
              (*store)->RecordSent(Sent(fmt::format("01R{}", e), fmt::format("250 P{}", p)));
          !done) {
        return "record failed: " + done.error().ToString();
      }
    }
    // What this process sees afterwards: the first record, whoever wrote it.
    std::string out;
    for (int e = 0; e < 20; ++e) {
      auto found = (*store)->FindSent(fmt::format("01R{}", e));
      if (!found || !found->has_value()) return std::string("find failed");
      out += (*found)->reply + "\n";
    }
    return out;
  });
  auto count = store_->CountSentSince(system_clock::time_point{});
  ASSERT_TRUE(count);
  EXPECT_EQ(*count, 20);  // one row per envelope
  std::vector<std::string> final_replies;
  for (int e = 0; e < 20; ++e)
    final_replies.push_back((*store_->FindSent(fmt::format("01R{}", e)))->reply);
  for (int p = 0; p < kProcesses; ++p) {
    EXPECT_EQ(Lines(outputs[p]), final_replies) << "process " << p << ": " << outputs[p];
  }
  // A later record changes nothing.
  ASSERT_TRUE(store_->RecordSent(Sent("01R0", "250 late")));
  EXPECT_EQ((*store_->FindSent("01R0"))->reply, final_replies[0]);
}

// --- retention ---------------------------------------------------------------------------

TEST_P(StateStoreTest, PruneRemovesOldRecordsAndKeys) {
  store_->OnStatus(Event(StatusEvent::State::kSent, "01F1", 1, "250"));
  ASSERT_TRUE(store_->ClaimIdempotencyKey("old", "01F1"));
  ASSERT_TRUE(store_->RecordSent(Sent("01F1")));
  clock_->Advance(std::chrono::hours(24 * 15));
  store_->OnStatus(Event(StatusEvent::State::kQueued, "01F2"));
  ASSERT_TRUE(store_->RecordSent(Sent("01F2")));
  auto removed = store_->Prune(Retention{});
  ASSERT_TRUE(removed);
  EXPECT_FALSE(removed->skipped);
  EXPECT_EQ(removed->status_records, 1);
  EXPECT_EQ(removed->sent_records, 0);  // 15 days < 30 days of sent log
  EXPECT_FALSE(store_->GetStatus("01F1")->has_value());
  EXPECT_TRUE(store_->GetStatus("01F2")->has_value());
  EXPECT_FALSE(store_->ClaimIdempotencyKey("old", "01F3")->existed);

  clock_->Advance(std::chrono::hours(24 * 16));
  removed = store_->Prune(Retention{});
  ASSERT_TRUE(removed);
  EXPECT_EQ(removed->sent_records, 1);
  EXPECT_FALSE(store_->FindSent("01F1")->has_value());
  EXPECT_TRUE(store_->FindSent("01F2")->has_value());
}

TEST_P(StateStoreTest, SeveralProcessesPruneOneAtATime) {
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(store_->RecordSent(Sent(fmt::format("01P{}", i))));
    store_->OnStatus(Event(StatusEvent::State::kSent, fmt::format("01P{}", i), 1, "250"));
  }
  clock_->Advance(std::chrono::hours(24 * 31));
  const auto outputs = RunInProcesses(4, [&](int) {
    auto store = Open();
    if (!store) return "open failed: " + store.error().ToString();
    auto pruned = (*store)->Prune(Retention{});
    if (!pruned) return "prune failed: " + pruned.error().ToString();
    return fmt::format("{} {} {}", pruned->sent_records, pruned->status_records,
                       pruned->skipped ? 1 : 0);
  });
  std::int64_t sent = 0, status = 0;
  int pruners = 0;
  for (const auto& out : outputs) {
    std::istringstream in(out);
    std::int64_t s = -1, st = -1;
    int skipped = -1;
    in >> s >> st >> skipped;
    ASSERT_GE(skipped, 0) << out;
    if (skipped == 1) {
      EXPECT_EQ(s + st, 0) << "a skipped prune removed something";
    } else {
      ++pruners;
    }
    sent += s;
    status += st;
  }
  // Nothing is removed twice or left behind, whoever did the work.
  EXPECT_GE(pruners, 1);
  EXPECT_EQ(sent, 200);
  EXPECT_EQ(status, 200);
  EXPECT_EQ(*store_->CountSentSince(system_clock::time_point{}), 0);
}

// --- batches, health, sharing ------------------------------------------------------------

TEST_P(StateStoreTest, RecordSettledWritesSentRecordsAndStatusTogether) {
  store_->OnStatus(Event(StatusEvent::State::kSending, "01B1", 1));
  store_->OnStatus(Event(StatusEvent::State::kSent, "01B3", 1, "250 earlier"));
  std::vector<SettledMessage> batch;
  auto sent = Event(StatusEvent::State::kSent, "01B1", 1, "250 2.0.0 Ok: queued as Q1");
  sent.reply_code = 250;
  batch.push_back({Sent("01B1"), sent});
  auto retry = Event(StatusEvent::State::kRetrying, "01B2", 3, "451 4.7.1 greylisted");
  retry.reply_code = 451;
  batch.push_back({std::nullopt, retry});
  // A redelivered duplicate of a sent e-mail: "sent" stays final.
  batch.push_back({std::nullopt, Event(StatusEvent::State::kRetrying, "01B3", 2, "late")});
  batch.push_back({std::nullopt, Event(StatusEvent::State::kDead, "", 1, "no id: skipped")});
  // The same envelope twice in one batch: the first sent record wins.
  batch.push_back(
      {Sent("01B4", "250 first"), Event(StatusEvent::State::kSent, "01B4", 1, "250 first")});
  batch.push_back(
      {Sent("01B4", "250 again"), Event(StatusEvent::State::kSent, "01B4", 2, "250 again")});
  auto done = store_->RecordSettled(batch);
  ASSERT_TRUE(done) << done.error().ToString();

  EXPECT_EQ((*store_->FindSent("01B1"))->reply, "250 2.0.0 Ok: queued as X");
  EXPECT_EQ((*store_->GetStatus("01B1"))->state, "sent");
  EXPECT_EQ((*store_->GetStatus("01B1"))->reply_code, 250);
  EXPECT_FALSE(store_->FindSent("01B2")->has_value());
  EXPECT_EQ((*store_->GetStatus("01B2"))->state, "retrying");
  EXPECT_EQ((*store_->GetStatus("01B2"))->attempts, 3);
  EXPECT_EQ((*store_->GetStatus("01B3"))->state, "sent");
  EXPECT_EQ((*store_->GetStatus("01B3"))->attempts, 2);  // attempts still move up
  EXPECT_EQ((*store_->FindSent("01B4"))->reply, "250 first");
  EXPECT_EQ((*store_->GetStatus("01B4"))->attempts, 2);
  EXPECT_EQ(*store_->CountSentSince(system_clock::time_point{}), 2);
  EXPECT_TRUE(store_->RecordSettled({}));
}

TEST_P(StateStoreTest, RecordSettledIsAllOrNothing) {
  Sql("DROP TABLE " + StatusTable());
  std::vector<SettledMessage> batch = {
      {Sent("01N1"), std::nullopt},
      {Sent("01N2"), Event(StatusEvent::State::kSent, "01N2", 1, "250")},
  };
  auto done = store_->RecordSettled(batch);
  ASSERT_FALSE(done);
  // The status upsert failed, so neither sent-log record was kept.
  EXPECT_FALSE(store_->FindSent("01N1")->has_value());
  EXPECT_FALSE(store_->FindSent("01N2")->has_value());
  // The store goes on working for what does not need the table.
  ASSERT_TRUE(store_->RecordSent(Sent("01N3")));
  EXPECT_TRUE(store_->FindSent("01N3")->has_value());
}

TEST_P(StateStoreTest, CheckNamesTheStoreAndSaysWhetherItAnswers) {
  auto check = store_->Check();
  EXPECT_TRUE(check.reachable) << (check.error ? check.error->ToString() : "");
  EXPECT_FALSE(check.error.has_value());
  if (postgres()) {
    EXPECT_EQ(check.store, fmt::format("postgres 127.0.0.1:{}/{}", server_->port(),
                                       url_.substr(url_.rfind('/') + 1)));
    EXPECT_EQ(check.store.find(server_->password()), std::string::npos);
    // No connections allowed and the pooled ones ended: unreachable.
    const std::string db = url_.substr(url_.rfind('/') + 1);
    auto admin = pg::Connection::Open(server_->Url("postgres"));
    ASSERT_TRUE(admin);
    ASSERT_TRUE((*admin)->ExecScript(fmt::format(
        "ALTER DATABASE {0} ALLOW_CONNECTIONS false; SELECT pg_terminate_backend(pid, 5000) "
        "FROM pg_stat_activity WHERE datname = '{0}'",
        db)));
    check = store_->Check();
    EXPECT_FALSE(check.reachable);
    ASSERT_TRUE(check.error.has_value());
    EXPECT_EQ(check.error->code, "database_unavailable");
    EXPECT_EQ(check.error->message.find(server_->password()), std::string::npos);
    ASSERT_TRUE((*admin)->ExecScript(fmt::format("ALTER DATABASE {} ALLOW_CONNECTIONS true", db)));
    EXPECT_TRUE(store_->Check().reachable);  // and back once the database is
  } else {
    EXPECT_EQ(check.store, "sqlite " + fs::absolute(dir_ / "state.db").string());
    Sql("DROP TABLE sent");
    check = store_->Check();
    EXPECT_FALSE(check.reachable);
    ASSERT_TRUE(check.error.has_value());
    EXPECT_EQ(check.error->kind, ErrorKind::kTransient);
  }
}

TEST_P(StateStoreTest, AnotherProcessSeesWhatOneRecorded) {
  // The API (claims keys, reports "queued") and a worker (records sent) are
  // separate processes; whatever one records the other must see.
  auto worker = Open();
  ASSERT_TRUE(worker);
  ASSERT_TRUE(store_->ClaimIdempotencyKey("inv-1", "01X"));
  store_->OnStatus(Event(StatusEvent::State::kQueued, "01X"));
  EXPECT_TRUE((*worker)->ClaimIdempotencyKey("inv-1", "01Y")->existed);
  EXPECT_FALSE((*worker)->FindSent("01X")->has_value());
  ASSERT_TRUE((*worker)->RecordSettled(std::vector<SettledMessage>{
      {Sent("01X"), Event(StatusEvent::State::kSent, "01X", 1, "250 ok")}}));
  EXPECT_EQ((*store_->GetStatus("01X"))->state, "sent");
  EXPECT_TRUE(store_->FindSent("01X")->has_value());
}

// --- PostgreSQL only ----------------------------------------------------------------------

class PostgresStateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    server_ = testing_support::SharedPostgresServer(&why);
    if (server_ == nullptr) GTEST_SKIP() << "PostgreSQL unavailable: " << why;
    static std::atomic<int> counter{0};
    auto url = server_->CreateDatabase(fmt::format("pgstate_{}", ++counter));
    ASSERT_TRUE(url) << url.error();
    url_ = *url;
    clock_ = std::make_shared<ManualClock>();
    auto store = OpenPostgresStateStore(url_, clock_, {}, 2);
    ASSERT_TRUE(store) << store.error().ToString();
    store_ = *store;
    auto admin = pg::Connection::Open(url_);
    ASSERT_TRUE(admin);
    admin_ = std::move(*admin);
  }

  testing_support::PostgresServer* server_ = nullptr;
  std::string url_;
  std::shared_ptr<ManualClock> clock_;
  std::shared_ptr<StateStore> store_;
  std::unique_ptr<pg::Connection> admin_;
};

TEST_F(PostgresStateStoreTest, AnOlderProgramRefusesANewerSchema) {
  ASSERT_TRUE(
      admin_->ExecScript("UPDATE postline_schema SET version = 7 WHERE component = 'state'"));
  auto store = OpenPostgresStateStore(url_, clock_);
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, "schema_too_new");
  EXPECT_EQ(store.error().kind, ErrorKind::kPermanent);
  EXPECT_NE(store.error().message.find("schema version 7 of state"), std::string::npos)
      << store.error().message;
  EXPECT_NE(store.error().message.find("is newer than this program's 1; upgrade postline"),
            std::string::npos)
      << store.error().message;
}

TEST_F(PostgresStateStoreTest, StartersRacingOnAFreshDatabaseMigrateOnce) {
  auto fresh = server_->CreateDatabase("pgstate_fresh");
  ASSERT_TRUE(fresh);
  const auto outputs = RunInProcesses(4, [&](int) {
    auto store = OpenPostgresStateStore(*fresh, clock_);
    return store ? std::string("ok") : store.error().ToString();
  });
  for (const auto& out : outputs) EXPECT_EQ(out, "ok");
  auto conn = pg::Connection::Open(*fresh);
  ASSERT_TRUE(conn);
  auto rows = (*conn)->Exec("SELECT version FROM postline_schema WHERE component = 'state'");
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1);
  EXPECT_EQ(rows->Int(0, 0), 1);
}

TEST_F(PostgresStateStoreTest, ConnectionsKilledMidUseAreReplacedOnTheNextCall) {
  store_->OnStatus(StatusEvent{StatusEvent::State::kQueued, "01K", "q"});
  ASSERT_TRUE(store_->GetStatus("01K"));
  // The server ends every connection of the store (a failover, an
  // administrator, pg_terminate_backend).
  for (int round = 0; round < 2; ++round) {
    auto killed = admin_->Exec(
        "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()");
    ASSERT_TRUE(killed) << killed.error().ToString();
    EXPECT_GE(killed->Int(0, 0), 1);
    auto got = store_->GetStatus("01K");
    ASSERT_TRUE(got) << got.error().ToString();
    EXPECT_TRUE(got->has_value());
    auto claim = store_->ClaimIdempotencyKey(fmt::format("after-kill-{}", round), "01K");
    ASSERT_TRUE(claim) << claim.error().ToString();
    EXPECT_FALSE(claim->existed);
    ASSERT_TRUE(store_->RecordSettled(std::vector<SettledMessage>{
        {std::nullopt, StatusEvent{StatusEvent::State::kSending, "01K", "q", 1}}}));
  }
  EXPECT_EQ((*store_->GetStatus("01K"))->state, "sending");
}

TEST_F(PostgresStateStoreTest, PruneSkipsWhileAnotherProcessPrunes) {
  store_->OnStatus(StatusEvent{StatusEvent::State::kQueued, "01Q", "q"});
  clock_->Advance(std::chrono::hours(24 * 15));
  // Another pruner holds the lock (in its transaction).
  ASSERT_TRUE(admin_->ExecScript("BEGIN"));
  ASSERT_TRUE(admin_->Exec("SELECT pg_advisory_xact_lock($1::bigint)",
                           pg::Params().Int(pg::AdvisoryLockKey("postline.state.prune"))));
  auto skipped = store_->Prune(Retention{});
  ASSERT_TRUE(skipped) << skipped.error().ToString();
  EXPECT_TRUE(skipped->skipped);
  EXPECT_EQ(skipped->status_records, 0);
  EXPECT_TRUE(store_->GetStatus("01Q")->has_value());
  ASSERT_TRUE(admin_->ExecScript("COMMIT"));
  auto pruned = store_->Prune(Retention{});
  ASSERT_TRUE(pruned);
  EXPECT_FALSE(pruned->skipped);
  EXPECT_EQ(pruned->status_records, 1);
}

TEST_F(PostgresStateStoreTest, TimesAreTheInjectedClocksToTheMillisecond) {
  clock_->Advance(std::chrono::milliseconds(123));
  store_->OnStatus(StatusEvent{StatusEvent::State::kSent, "01T", "q", 1});
  auto rows = admin_->Exec(
      "SELECT (extract(epoch FROM updated_at) * 1000)::bigint, "
      "to_char(sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') "
      "FROM postline_email_status WHERE envelope_id = '01T'");
  ASSERT_TRUE(rows) << rows.error().ToString();
  EXPECT_EQ(rows->Int(0, 0), ToUnixMillis(clock_->Now()));
  EXPECT_EQ(rows->Text(0, 1), "2027-01-15 08:00:00.123");  // 1'800'000'000 s + 123 ms
}

TEST_F(PostgresStateStoreTest, AnUnreachableDatabaseIsUnavailableWithoutThePassword) {
  auto store = OpenStateStore(StateStoreOptions{
      "postgresql://postline:hunter2@127.0.0.1:1/postline?connect_timeout=5", "unused", clock_});
  ASSERT_FALSE(store);
  EXPECT_EQ(store.error().code, "database_unavailable");
  EXPECT_EQ(store.error().field, "POSTLINE_DATABASE_URL");
  EXPECT_NE(store.error().message.find("127.0.0.1:1/postline"), std::string::npos);
  EXPECT_EQ(store.error().message.find("hunter2"), std::string::npos);
}

}  // namespace
}  // namespace postline
