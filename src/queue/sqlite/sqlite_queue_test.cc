// Tests that only the sqlite backend can pass: durability across reopening and
// kill -9, sharing one database file between service instances (as separate
// processes do), the cross-process long-poll wake-up, and busy-database
// errors.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "postline/queue.h"
#include "testing/queue_test_support.h"

namespace postline {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using testing_support::FakeClock;
using testing_support::TempDir;

class SqliteQueueTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_FALSE(dir_.path().empty()); }

  std::string DbPath() const { return (dir_.path() / "data" / "queues.db").string(); }

  std::shared_ptr<QueueService> Open(std::shared_ptr<Clock> clock = SystemClock()) {
    auto service = OpenSqliteQueueService(DbPath(), std::move(clock));
    EXPECT_TRUE(service) << service.error().ToString();
    return service ? *service : nullptr;
  }

  // Receives everything visible (long visibility, so nothing comes back).
  static std::vector<ReceivedMessage> Drain(Queue& queue) {
    std::vector<ReceivedMessage> all;
    while (true) {
      ReceiveMessageRequest request;
      request.max_number_of_messages = 10;
      request.visibility_timeout_seconds = 3600;
      auto got = queue.ReceiveMessage(request);
      EXPECT_TRUE(got) << got.error().ToString();
      if (!got || got->empty()) return all;
      for (auto& m : *got) all.push_back(std::move(m));
    }
  }

  TempDir dir_;
};

SendMessageRequest Body(std::string body) {
  SendMessageRequest request;
  request.body = std::move(body);
  return request;
}

TEST_F(SqliteQueueTest, CreatesDirectoryAndVersionedWalDatabase) {
  ASSERT_NE(Open(), nullptr);
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &raw), SQLITE_OK);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  const auto pragma = [&](const char* sql) {
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db.get(), sql, -1, &stmt, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(stmt), SQLITE_ROW);
    std::string value = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return value;
  };
  EXPECT_EQ(pragma("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(pragma("PRAGMA user_version"), "2");
  EXPECT_TRUE(std::filesystem::exists(DbPath() + "-notify"));
}

TEST_F(SqliteQueueTest, RefusesNewerSchemaVersion) {
  ASSERT_NE(Open(), nullptr);
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(raw);
  auto service = OpenSqliteQueueService(DbPath());
  ASSERT_FALSE(service);
  EXPECT_EQ(service.error().code, "InternalError");
  EXPECT_NE(service.error().message.find("99"), std::string::npos);
}

// A file written by schema version 1 (bodies in the messages row) opens,
// its messages keep their bodies and state, and it is version 2 afterwards.
TEST_F(SqliteQueueTest, MigratesSchemaVersion1Files) {
  std::filesystem::create_directories(dir_.path() / "data");
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &raw), SQLITE_OK);
  const char* v1 = R"sql(
    PRAGMA journal_mode = WAL;
    CREATE TABLE queues (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
      visibility_timeout_seconds INTEGER NOT NULL, message_retention_seconds INTEGER NOT NULL,
      delay_seconds INTEGER NOT NULL, maximum_message_size INTEGER NOT NULL,
      receive_message_wait_time_seconds INTEGER NOT NULL, dead_letter_queue TEXT,
      max_receive_count INTEGER, created_at INTEGER NOT NULL);
    CREATE TABLE messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
      queue_id INTEGER NOT NULL REFERENCES queues(id), body BLOB NOT NULL, md5 TEXT NOT NULL,
      attributes BLOB NOT NULL, sent_at INTEGER NOT NULL, visible_at INTEGER NOT NULL,
      receive_count INTEGER NOT NULL DEFAULT 0, first_receive_at INTEGER,
      last_receive_at INTEGER, receipt_token TEXT, dead_letter_source TEXT);
    CREATE INDEX messages_by_visibility ON messages(queue_id, visible_at, seq);
    CREATE INDEX messages_by_age ON messages(queue_id, sent_at);
    CREATE TABLE deleted_handles (handle TEXT PRIMARY KEY, queue_id INTEGER NOT NULL,
      deleted_at INTEGER NOT NULL);
    CREATE INDEX deleted_handles_by_time ON deleted_handles(deleted_at);
    INSERT INTO queues VALUES (1, 'q', 30, 345600, 0, 262144, 0, NULL, NULL, 0);
    INSERT INTO messages (id, queue_id, body, md5, attributes, sent_at, visible_at, receive_count)
      VALUES ('m-1', 1, 'first body', '0', x'', unixepoch() * 1000 - 2000, 0, 2),
             ('m-2', 1, 'second body', '0', x'', unixepoch() * 1000 - 1000, 0, 0);
    PRAGMA user_version = 1;
  )sql";
  ASSERT_EQ(sqlite3_exec(raw, v1, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(raw);
  sqlite3_close(raw);

  auto service = Open();
  ASSERT_NE(service, nullptr);
  auto queue = service->GetQueue("q");
  ASSERT_TRUE(queue) << queue.error().ToString();
  std::vector<ReceivedMessage> got = Drain(**queue);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].message_id, "m-1");
  EXPECT_EQ(got[0].body, "first body");
  EXPECT_EQ(got[0].approximate_receive_count, 3);
  EXPECT_EQ(got[1].body, "second body");
  // A deleted message takes its body with it.
  ASSERT_TRUE((*queue)->DeleteMessage(got[0].receipt_handle));
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &raw), SQLITE_OK);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db.get(),
                               "SELECT (SELECT COUNT(*) FROM message_bodies), "
                               "(SELECT user_version FROM pragma_user_version)",
                               -1, &stmt, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(stmt, 0), 1);
  EXPECT_EQ(sqlite3_column_int(stmt, 1), 2);
  sqlite3_finalize(stmt);
}

// SendMessages: any number of entries, each judged on its own, the valid ones
// written together; a refused entry does not stop the others.
TEST_F(SqliteQueueTest, SendMessagesWritesManyAndReportsEachEntry) {
  auto service = Open();
  ASSERT_NE(service, nullptr);
  QueueAttributes attributes;
  attributes.maximum_message_size = 1024;
  auto queue = service->CreateQueue("bulk", attributes);
  ASSERT_TRUE(queue) << queue.error().ToString();
  std::vector<SendMessageRequest> requests;
  for (int i = 0; i < 250; ++i) requests.push_back(Body(fmt::format("body {}", i)));
  requests[17].body = std::string(2000, 'x');  // above MaximumMessageSize
  auto sent = (*queue)->SendMessages(requests);
  ASSERT_TRUE(sent) << sent.error().ToString();
  ASSERT_EQ(sent->size(), requests.size());
  for (std::size_t i = 0; i < sent->size(); ++i) {
    if (i == 17) {
      ASSERT_FALSE((*sent)[i]);
      EXPECT_EQ((*sent)[i].error().code, "MessageTooLong");
    } else {
      ASSERT_TRUE((*sent)[i]) << i << ": " << (*sent)[i].error().ToString();
      EXPECT_EQ((*sent)[i]->md5_of_body, Md5Hex(requests[i].body));
    }
  }
  std::vector<ReceivedMessage> got = Drain(**queue);
  ASSERT_EQ(got.size(), 249u);
  std::set<std::string> bodies;
  for (const auto& m : got) bodies.insert(m.body);
  EXPECT_TRUE(bodies.contains("body 0"));
  EXPECT_TRUE(bodies.contains("body 249"));
  EXPECT_FALSE(bodies.contains(requests[17].body));
  auto configuration = (*queue)->GetQueueConfiguration();
  ASSERT_TRUE(configuration);
  EXPECT_EQ(configuration->maximum_message_size, 1024);
}

TEST_F(SqliteQueueTest, DataSurvivesReopening) {
  auto clock = std::make_shared<FakeClock>();
  std::string in_flight_id;
  {
    auto service = Open(clock);
    QueueAttributes attributes;
    attributes.visibility_timeout_seconds = 120;
    auto queue = *service->CreateQueue("durable", attributes);
    for (int i = 0; i < 3; ++i) {
      SendMessageRequest request = Body(fmt::format("m{}", i));
      request.attributes["n"] = {"Number", std::to_string(i)};
      ASSERT_TRUE(queue->SendMessage(request));
    }
    ReceiveMessageRequest one;
    auto got = queue->ReceiveMessage(one);
    ASSERT_TRUE(got && got->size() == 1u);
    in_flight_id = (*got)[0].message_id;
  }
  auto service = Open(clock);
  auto names = service->ListQueues();
  ASSERT_TRUE(names);
  EXPECT_EQ(*names, std::vector<std::string>{"durable"});
  auto queue = service->GetQueue("durable");
  ASSERT_TRUE(queue);
  auto stats = (*queue)->GetQueueAttributes();
  ASSERT_TRUE(stats);
  EXPECT_EQ(stats->attributes.visibility_timeout_seconds, 120);
  EXPECT_EQ(stats->approximate_number_of_messages, 2);
  EXPECT_EQ(stats->approximate_number_of_messages_not_visible, 1);
  auto rest = Drain(**queue);
  ASSERT_EQ(rest.size(), 2u);
  for (const auto& m : rest) {
    EXPECT_NE(m.message_id, in_flight_id);
    EXPECT_EQ(m.attributes.at("n").data_type, "Number");
  }
  clock->Advance(seconds(121));
  auto again = Drain(**queue);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].message_id, in_flight_id);
  EXPECT_EQ(again[0].approximate_receive_count, 2);
}

TEST_F(SqliteQueueTest, TwoServiceInstancesShareOneFile) {
  auto a = Open();
  auto b = Open();
  auto queue_a = *a->CreateQueue("shared", {});
  auto queue_b = b->GetQueue("shared");
  ASSERT_TRUE(queue_b) << queue_b.error().ToString();
  ASSERT_TRUE((*queue_b)->SendMessage(Body("from b")));
  auto got = Drain(*queue_a);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "from b");
  // The receipt handle works through the other instance.
  EXPECT_TRUE((*queue_b)->DeleteMessage(got[0].receipt_handle));
  auto stats = queue_a->GetQueueAttributes();
  ASSERT_TRUE(stats);
  EXPECT_EQ(
      stats->approximate_number_of_messages + stats->approximate_number_of_messages_not_visible, 0);
  // CreateQueue through b with other attributes conflicts with a's queue.
  QueueAttributes other;
  other.delay_seconds = 3;
  auto conflict = b->CreateQueue("shared", other);
  ASSERT_FALSE(conflict);
  EXPECT_EQ(conflict.error().code, "QueueAlreadyExists");
}

TEST_F(SqliteQueueTest, LongPollWakesThroughNotifyFileFromAnotherInstance) {
  // Two instances have separate in-process notifiers; only the notify file
  // (inotify) can wake a's waiter when b sends.
  auto a = Open();
  auto b = Open();
  auto queue_a = *a->CreateQueue("poll", {});
  auto queue_b = *b->GetQueue("poll");
  const auto start = std::chrono::steady_clock::now();
  std::jthread sender([&] {
    std::this_thread::sleep_for(milliseconds(300));
    EXPECT_TRUE(queue_b->SendMessage(Body("across")));
  });
  ReceiveMessageRequest request;
  request.wait_time_seconds = 20;
  auto got = queue_a->ReceiveMessage(request);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(got) << got.error().ToString();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].body, "across");
  EXPECT_LT(elapsed, seconds(15));
}

TEST_F(SqliteQueueTest, LongPollWakesWhenAnotherInstanceReleasesVisibility) {
  auto a = Open();
  auto b = Open();
  auto queue_a = *a->CreateQueue("release", {});
  auto queue_b = *b->GetQueue("release");
  ASSERT_TRUE(queue_a->SendMessage(Body("held")));
  ReceiveMessageRequest hold;
  hold.visibility_timeout_seconds = 600;
  auto held = queue_b->ReceiveMessage(hold);
  ASSERT_TRUE(held && held->size() == 1u);
  const auto start = std::chrono::steady_clock::now();
  std::jthread releaser([&] {
    std::this_thread::sleep_for(milliseconds(300));
    EXPECT_TRUE(queue_b->ChangeMessageVisibility((*held)[0].receipt_handle, 0));
  });
  ReceiveMessageRequest request;
  request.wait_time_seconds = 20;
  auto got = queue_a->ReceiveMessage(request);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(got) << got.error().ToString();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].approximate_receive_count, 2);
  EXPECT_LT(elapsed, seconds(15));
}

TEST_F(SqliteQueueTest, ConcurrentReceiversOnSeparateConnectionsGetEachMessageOnce) {
  auto setup = Open();
  QueueAttributes attributes;
  attributes.visibility_timeout_seconds = 3600;
  auto queue = *setup->CreateQueue("contended", attributes);
  std::set<std::string> sent_ids;
  for (int batch = 0; batch < 20; ++batch) {
    std::vector<SendMessageBatchEntry> entries;
    for (int i = 0; i < 10; ++i) entries.push_back({fmt::format("e{}", i), Body("x")});
    auto sent = queue->SendMessageBatch(entries);
    ASSERT_TRUE(sent);
    for (const auto& e : *sent) {
      ASSERT_TRUE(e.result);
      sent_ids.insert(e.result->message_id);
    }
  }
  std::mutex mu;
  std::vector<std::string> received;
  std::atomic<int> errors = 0;
  {
    std::vector<std::jthread> threads;
    for (int t = 0; t < 4; ++t) {
      auto service = Open();  // its own connection, as another process has
      ASSERT_NE(service, nullptr);
      threads.emplace_back([&, service] {
        auto q = service->GetQueue("contended");
        if (!q) {
          ++errors;
          return;
        }
        while (true) {
          ReceiveMessageRequest request;
          request.max_number_of_messages = 3;
          auto got = (*q)->ReceiveMessage(request);
          if (!got) {
            ++errors;
            return;
          }
          if (got->empty()) return;
          std::lock_guard lock(mu);
          for (const auto& m : *got) received.push_back(m.message_id);
        }
      });
    }
  }
  EXPECT_EQ(errors, 0);
  EXPECT_EQ(received.size(), 200u);
  EXPECT_EQ(std::set<std::string>(received.begin(), received.end()), sent_ids);
}

TEST_F(SqliteQueueTest, BusyDatabaseIsTransientAndWritesNothing) {
  auto service = Open();
  auto queue = *service->CreateQueue("busy", {});
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(DbPath().c_str(), &raw), SQLITE_OK);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> blocker(raw, &sqlite3_close);
  ASSERT_EQ(sqlite3_exec(blocker.get(), "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);

  // Waits out the busy timeout (5 s), then gives up.
  auto batch = queue->SendMessageBatch({{"a", Body("1")}, {"b", Body("2")}, {"c", Body("")}});
  ASSERT_TRUE(batch);
  ASSERT_EQ(batch->size(), 3u);
  for (int i = 0; i < 2; ++i) {
    ASSERT_FALSE((*batch)[i].result);
    EXPECT_EQ((*batch)[i].result.error().kind, ErrorKind::kTransient);
    EXPECT_EQ((*batch)[i].result.error().code, "ServiceUnavailable");
    EXPECT_NE((*batch)[i].result.error().message.find("locked"), std::string::npos)
        << (*batch)[i].result.error().message;
  }
  // The invalid entry keeps its own error.
  ASSERT_FALSE((*batch)[2].result);
  EXPECT_EQ((*batch)[2].result.error().code, "InvalidMessageContents");

  ASSERT_EQ(sqlite3_exec(blocker.get(), "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  auto stats = queue->GetQueueAttributes();
  ASSERT_TRUE(stats) << stats.error().ToString();
  EXPECT_EQ(stats->approximate_number_of_messages, 0);
  // And the service works again.
  EXPECT_TRUE(queue->SendMessage(Body("after")));
  EXPECT_EQ(Drain(*queue).size(), 1u);
}

// The project's durability promise: kill -9 during a 5,000-message send loop
// loses no acknowledged message. The child reports each message id on a pipe
// only after SendMessage returned it; after SIGKILL every reported id must be
// in the database.
TEST_F(SqliteQueueTest, KillDuringSendLoopLosesNoAcknowledgedMessage) {
  ASSERT_NE(Open(), nullptr);  // creates the directory and schema
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const std::string program = POSTLINE_QUEUE_SEND_LOOP;
  const std::string db_path = DbPath();
  std::vector<char*> argv = {const_cast<char*>(program.c_str()), const_cast<char*>(db_path.c_str()),
                             const_cast<char*>("killed"), const_cast<char*>("5000"), nullptr};
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);

  std::vector<std::string> acknowledged;
  std::string pending;
  bool killed = false;
  char buffer[4096];
  while (true) {
    const ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buffer, static_cast<std::size_t>(n));
    std::size_t newline;
    while ((newline = pending.find('\n')) != std::string::npos) {
      acknowledged.push_back(pending.substr(0, newline));
      pending.erase(0, newline + 1);
    }
    if (!killed && acknowledged.size() >= 1000) {
      ::kill(child, SIGKILL);  // keep reading: ids already in the pipe were acknowledged
      killed = true;
    }
  }
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(killed) << "the child ended before 1000 acknowledgements; status " << status;
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child finished its 5000 sends before the kill; status " << status;
  ASSERT_GE(acknowledged.size(), 1000u);
  ASSERT_LT(acknowledged.size(), 5000u);

  auto service = Open();
  auto queue = service->GetQueue("killed");
  ASSERT_TRUE(queue) << queue.error().ToString();
  std::set<std::string> stored;
  for (const auto& m : Drain(**queue)) stored.insert(m.message_id);
  std::size_t missing = 0;
  for (const auto& id : acknowledged) missing += stored.contains(id) ? 0 : 1;
  EXPECT_EQ(missing, 0u) << "of " << acknowledged.size() << " acknowledged messages";
  // At most one message was committed whose id the child had not yet written.
  EXPECT_LE(stored.size(), acknowledged.size() + 1);
}

}  // namespace
}  // namespace postline
