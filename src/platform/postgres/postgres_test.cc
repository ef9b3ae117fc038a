#include "postline/postgres.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <thread>
#include <vector>

#include "testing/postgres_server.h"

namespace postline::pg {
namespace {

using testing_support::SharedPostgresServer;

// --- connection strings (no server needed) ---------------------------------------

TEST(ConnectionStringTest, RedactsTheUserInfoPasswordOfAUri) {
  EXPECT_EQ(
      RedactConnectionString("postgresql://app:s3cret@db.internal:5432/postline?sslmode=require"),
      "postgresql://app:********@db.internal:5432/postline?sslmode=require");
  EXPECT_EQ(RedactConnectionString("postgres://app:p%40ss@h1:5432,h2:5433/db"),
            "postgres://app:********@h1:5432,h2:5433/db");
  // No password: unchanged.
  EXPECT_EQ(RedactConnectionString("postgresql://app@db/postline"), "postgresql://app@db/postline");
  EXPECT_EQ(RedactConnectionString("postgresql:///postline?host=/var/run/postgresql"),
            "postgresql:///postline?host=/var/run/postgresql");
}

TEST(ConnectionStringTest, RedactsPasswordParametersOfAUri) {
  EXPECT_EQ(RedactConnectionString(
                "postgresql://db/postline?user=app&password=s3cret&sslmode=verify-full"),
            "postgresql://db/postline?user=app&password=********&sslmode=verify-full");
  EXPECT_EQ(RedactConnectionString("postgresql://db/x?sslpassword=keypass&%70assword=pw"),
            "postgresql://db/x?sslpassword=********&%70assword=********");
}

TEST(ConnectionStringTest, RedactsKeywordValueForms) {
  EXPECT_EQ(
      RedactConnectionString("host=db dbname=postline user=app password=s3cret sslmode=require"),
      "host=db dbname=postline user=app password=******** sslmode=require");
  EXPECT_EQ(RedactConnectionString("host=db password = 'with space \\' quote' user=app"),
            "host=db password = ******** user=app");
  EXPECT_EQ(RedactConnectionString("host=db sslpassword=k"), "host=db sslpassword=********");
  // Unparseable strings hide what follows the point where parsing stopped.
  EXPECT_EQ(RedactConnectionString("host=db password='unterminated"), "host=db password=********");
  EXPECT_EQ(RedactConnectionString("host=db s3cret"), "host=db ********");
}

TEST(ConnectionStringTest, ARedactedStringStillParsesAndHoldsNoPassword) {
  for (std::string url : {"postgresql://app:s3cret@db:5432/postline?sslmode=require",
                          "host=db user=app password='s3cret' dbname=postline",
                          "postgresql://db/postline?password=s3cret"}) {
    const std::string redacted = RedactConnectionString(url);
    EXPECT_EQ(redacted.find("s3cret"), std::string::npos) << redacted;
    EXPECT_TRUE(ValidateConnectionString(redacted)) << redacted;
  }
}

TEST(ConnectionStringTest, ValidatesLikeLibpqWithoutEchoingTheString) {
  EXPECT_TRUE(ValidateConnectionString("postgresql://app:pw@db/postline"));
  EXPECT_TRUE(ValidateConnectionString("postgres://db"));
  EXPECT_TRUE(ValidateConnectionString("host=db port=5432 dbname=postline"));
  // libpq quotes the token it stumbled on; a password in it is hidden.
  for (std::string bad : {"hots=db password=s3cret", "postgresql://db/x?password=s3cret&hots=1",
                          "postgresql://app:s3cret%zz@db/x", "postgresql://db/x?password=s3cret%g",
                          "host=db password='s3cret", "password s3cret"}) {
    auto v = ValidateConnectionString(bad);
    ASSERT_FALSE(v) << bad;
    EXPECT_EQ(v.error().code, "invalid_database_url");
    EXPECT_EQ(v.error().field, "POSTLINE_DATABASE_URL");
    EXPECT_EQ(v.error().message.find("s3cret"), std::string::npos) << v.error().message;
  }
  // What is not a password stays, so the message says what is wrong.
  auto misspelt = ValidateConnectionString("hots=db password=s3cret");
  ASSERT_FALSE(misspelt);
  EXPECT_NE(misspelt.error().message.find("invalid connection option \"hots\""), std::string::npos)
      << misspelt.error().message;
}

TEST(ConnectionStringTest, DescribesTheDatabaseWithoutThePassword) {
  EXPECT_EQ(DescribeDatabase("postgresql://app:s3cret@db.internal:6543/postline"),
            "db.internal:6543/postline");
  EXPECT_EQ(DescribeDatabase("host=a,b port=1,2 dbname=x user=u password=p"), "a:1,b:2/x");
  EXPECT_EQ(DescribeDatabase("nonsense"), "");
  if (std::getenv("PGHOST") == nullptr && std::getenv("PGPORT") == nullptr) {
    EXPECT_EQ(DescribeDatabase("dbname=x"), "local socket:5432/x");
  }
}

TEST(StorableTextTest, ReplacesWhatPostgresCannotHold) {
  EXPECT_EQ(ToStorableText("250 2.0.0 Ok: queued"), "250 2.0.0 Ok: queued");
  EXPECT_EQ(ToStorableText("Grüße 日本"), "Grüße 日本");
  EXPECT_EQ(ToStorableText(std::string("a\0b", 3)),
            "a\xEF\xBF\xBD"
            "b");
  EXPECT_EQ(ToStorableText("caf\xE9"), "caf\xEF\xBF\xBD");                            // Latin-1
  EXPECT_EQ(ToStorableText("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(ToStorableText("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");                  // overlong
}

TEST(ConnectionTest, ARefusedConnectionIsUnavailableAndNamesTheDatabaseNotThePassword) {
  // Port 1: nothing listens there.
  auto conn = Connection::Open("postgresql://app:s3cret@127.0.0.1:1/postline?connect_timeout=5");
  ASSERT_FALSE(conn);
  EXPECT_EQ(conn.error().code, "database_unavailable");
  EXPECT_EQ(conn.error().kind, ErrorKind::kTransient);
  EXPECT_EQ(conn.error().field, "POSTLINE_DATABASE_URL");
  EXPECT_NE(conn.error().message.find("127.0.0.1:1/postline"), std::string::npos)
      << conn.error().message;
  EXPECT_EQ(conn.error().message.find("s3cret"), std::string::npos) << conn.error().message;
}

TEST(ConnectionTest, AnInvalidStringIsRefusedBeforeConnecting) {
  auto conn = Connection::Open("hots=db");
  ASSERT_FALSE(conn);
  EXPECT_EQ(conn.error().code, "invalid_database_url");
}

// --- against a server -----------------------------------------------------------------

class PostgresTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    server_ = SharedPostgresServer(&why);
    if (server_ == nullptr) GTEST_SKIP() << "PostgreSQL unavailable: " << why;
    db_ = fmt::format("lib_{}", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    for (char& c : db_) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto url = server_->CreateDatabase(db_);
    ASSERT_TRUE(url) << url.error();
    url_ = *url;
    auto conn = Connection::Open(url_);
    ASSERT_TRUE(conn) << conn.error().ToString();
    conn_ = std::move(*conn);
  }

  // A pool of `size` connections to the test's database.
  std::shared_ptr<ConnectionPool> Pool(
      int size, std::chrono::milliseconds acquire_timeout = std::chrono::seconds(10)) {
    PoolOptions options;
    options.conninfo = url_;
    options.size = size;
    options.acquire_timeout = acquire_timeout;
    auto pool = ConnectionPool::Create(options);
    EXPECT_TRUE(pool) << pool.error().ToString();
    return pool ? *pool : nullptr;
  }

  // Ends the server process behind `pid` and waits until it is gone.
  void Terminate(int pid) {
    auto admin = Connection::Open(url_);
    ASSERT_TRUE(admin);
    auto killed =
        (*admin)->Exec("SELECT pg_terminate_backend($1::integer, 5000)", Params().Int(pid));
    ASSERT_TRUE(killed) << killed.error().ToString();
    ASSERT_TRUE(killed->Bool(0, 0));
  }

  testing_support::PostgresServer* server_ = nullptr;
  std::string db_;
  std::string url_;
  std::unique_ptr<Connection> conn_;
};

TEST_F(PostgresTest, ExecutesParameterisedStatementsWithTextResults) {
  ASSERT_TRUE(conn_->ExecScript("CREATE TABLE t (id text PRIMARY KEY, n bigint, note text)"));
  auto inserted =
      conn_->Exec("INSERT INTO t VALUES ($1, $2::bigint, $3), ($4, $5::bigint, $6)",
                  Params().Text("a").Int(-7).Null().Text("b").Int(1LL << 40).Utf8("Grüße"));
  ASSERT_TRUE(inserted) << inserted.error().ToString();
  EXPECT_EQ(inserted->affected(), 2);
  auto rows = conn_->Exec("SELECT id, n, note FROM t ORDER BY id");
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 2);
  EXPECT_EQ(rows->Text(0, 0), "a");
  EXPECT_EQ(rows->Int(0, 1), -7);
  EXPECT_TRUE(rows->IsNull(0, 2));
  EXPECT_EQ(rows->Int(1, 1), 1LL << 40);
  EXPECT_EQ(rows->Text(1, 2), "Grüße");
  // Prepared once, reused.
  for (int i = 0; i < 3; ++i) {
    auto again = conn_->Exec("SELECT id, n, note FROM t ORDER BY id");
    ASSERT_TRUE(again);
    EXPECT_EQ(again->size(), 2);
  }
}

TEST_F(PostgresTest, MapsServerErrors) {
  ASSERT_TRUE(conn_->ExecScript("CREATE TABLE u (k text CONSTRAINT u_key PRIMARY KEY)"));
  ASSERT_TRUE(conn_->Exec("INSERT INTO u VALUES ($1)", Params().Text("x")));
  auto dup = conn_->Exec("INSERT INTO u VALUES ($1)", Params().Text("x"), "insert key");
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code, "unique_violation");
  EXPECT_EQ(dup.error().kind, ErrorKind::kInvalidInput);
  EXPECT_EQ(dup.error().field, "u_key");
  EXPECT_NE(dup.error().message.find("insert key on PostgreSQL database 127.0.0.1:"),
            std::string::npos)
      << dup.error().message;
  EXPECT_NE(dup.error().message.find("SQLSTATE 23505"), std::string::npos);
  EXPECT_EQ(dup.error().message.find(server_->password()), std::string::npos);

  auto bad_text = conn_->Exec("INSERT INTO u VALUES ($1)", Params().Text("caf\xE9"));
  ASSERT_FALSE(bad_text);
  EXPECT_EQ(bad_text.error().code, "invalid_value");
  EXPECT_TRUE(conn_->Exec("INSERT INTO u VALUES ($1)", Params().Utf8("caf\xE9")));

  auto syntax = conn_->Exec("SELEKT 1");
  ASSERT_FALSE(syntax);
  EXPECT_EQ(syntax.error().code, "database_error");
  EXPECT_EQ(syntax.error().kind, ErrorKind::kInternal);
  EXPECT_FALSE(conn_->broken());  // errors of statements keep the connection

  ASSERT_TRUE(conn_->ExecScript("CREATE ROLE reader LOGIN PASSWORD 'r'"));
  auto reader =
      Connection::Open(fmt::format("postgresql://reader:r@127.0.0.1:{}/{}", server_->port(), db_));
  ASSERT_TRUE(reader) << reader.error().ToString();
  auto denied = (*reader)->Exec("INSERT INTO u VALUES ('y')");
  ASSERT_FALSE(denied);
  EXPECT_EQ(denied.error().code, "database_permission_denied");
  reader->reset();
  ASSERT_TRUE(conn_->ExecScript("DROP ROLE reader"));

  auto timeout = conn_->ExecScript("SET statement_timeout = 50; SELECT pg_sleep(5)");
  ASSERT_FALSE(timeout);
  EXPECT_EQ(timeout.error().code, "database_busy");
}

TEST_F(PostgresTest, AWrongPasswordIsUnavailableWithoutRepeatingIt) {
  auto conn = Connection::Open(
      fmt::format("postgresql://postgres:wrong-s3cret@127.0.0.1:{}/{}", server_->port(), db_));
  ASSERT_FALSE(conn);
  EXPECT_EQ(conn.error().code, "database_unavailable");
  EXPECT_NE(conn.error().message.find("password authentication failed"), std::string::npos)
      << conn.error().message;
  EXPECT_EQ(conn.error().message.find("wrong-s3cret"), std::string::npos);
}

TEST_F(PostgresTest, ATransactionRollsBackUnlessCommitted) {
  ASSERT_TRUE(conn_->ExecScript("CREATE TABLE t (v integer)"));
  {
    auto tx = Transaction::Begin(*conn_);
    ASSERT_TRUE(tx);
    ASSERT_TRUE(conn_->Exec("INSERT INTO t VALUES (1)"));
  }  // rolled back
  {
    auto tx = Transaction::Begin(*conn_);
    ASSERT_TRUE(tx);
    ASSERT_TRUE(conn_->Exec("INSERT INTO t VALUES (2)"));
    ASSERT_TRUE(tx->Commit());
  }
  {
    // A statement failed inside: COMMIT reports it instead of pretending.
    auto tx = Transaction::Begin(*conn_);
    ASSERT_TRUE(tx);
    ASSERT_TRUE(conn_->Exec("INSERT INTO t VALUES (3)"));
    EXPECT_FALSE(conn_->Exec("INSERT INTO t VALUES ('x')"));
    auto committed = tx->Commit();
    ASSERT_FALSE(committed);
    EXPECT_NE(committed.error().message.find("aborted"), std::string::npos);
  }
  auto rows = conn_->Exec("SELECT v FROM t ORDER BY v");
  ASSERT_TRUE(rows);
  ASSERT_EQ(rows->size(), 1);
  EXPECT_EQ(rows->Int(0, 0), 2);
  EXPECT_FALSE(conn_->broken());
}

TEST_F(PostgresTest, ABatchIsOneRoundTripAndAllOrNothing) {
  ASSERT_TRUE(conn_->ExecScript("CREATE TABLE t (k text PRIMARY KEY, v integer)"));
  std::vector<Statement> batch;
  for (int i = 0; i < 100; ++i) {
    batch.push_back(
        {"INSERT INTO t VALUES ($1, $2::integer)", Params().Text(fmt::format("k{}", i)).Int(i)});
  }
  batch.push_back({"SELECT count(*) FROM t", {}});
  auto done = conn_->ExecBatch(batch);
  ASSERT_TRUE(done) << done.error().ToString();
  ASSERT_EQ(done->size(), 101u);
  EXPECT_EQ((*done)[0].affected(), 1);
  EXPECT_EQ((*done)[100].Int(0, 0), 100);

  // The 3rd statement fails: the 1st and 2nd are not committed either.
  std::vector<Statement> failing = {
      {"INSERT INTO t VALUES ($1, $2::integer)", Params().Text("new1").Int(1)},
      {"UPDATE t SET v = -1 WHERE k = $1", Params().Text("k5")},
      {"INSERT INTO t VALUES ($1, $2::integer)", Params().Text("k7").Int(7)},
      {"INSERT INTO t VALUES ($1, $2::integer)", Params().Text("new2").Int(2)},
  };
  auto failed = conn_->ExecBatch(failing, "settle");
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code, "unique_violation");
  EXPECT_FALSE(conn_->broken());
  auto rows = conn_->Exec("SELECT count(*), min(v) FROM t");
  ASSERT_TRUE(rows);
  EXPECT_EQ(rows->Int(0, 0), 100);
  EXPECT_EQ(rows->Int(0, 1), 0);
  // The connection is usable afterwards, in and out of pipelines.
  auto again = conn_->ExecBatch(std::span(failing).first(2));
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ((*conn_->Exec("SELECT count(*) FROM t")).Int(0, 0), 101);
}

TEST_F(PostgresTest, ABatchInsideATransactionIsPartOfIt) {
  ASSERT_TRUE(conn_->ExecScript("CREATE TABLE t (v integer)"));
  {
    auto tx = Transaction::Begin(*conn_);
    ASSERT_TRUE(tx);
    std::vector<Statement> batch = {{"INSERT INTO t VALUES (1)", {}},
                                    {"INSERT INTO t VALUES (2)", {}}};
    ASSERT_TRUE(conn_->ExecBatch(batch));
  }  // rolled back
  EXPECT_EQ((*conn_->Exec("SELECT count(*) FROM t")).Int(0, 0), 0);
}

TEST_F(PostgresTest, AConnectionKilledByTheServerIsLostAndUnavailable) {
  Terminate(conn_->BackendPid());
  auto after = conn_->Exec("SELECT 1");
  ASSERT_FALSE(after);
  EXPECT_EQ(after.error().code, "database_unavailable");
  EXPECT_TRUE(conn_->lost());
  EXPECT_TRUE(conn_->broken());
}

TEST_F(PostgresTest, ThePoolIsBoundedAndWaits) {
  auto pool = Pool(2, std::chrono::milliseconds(200));
  ASSERT_TRUE(pool);
  {
    auto a = pool->Acquire();
    auto b = pool->Acquire();
    ASSERT_TRUE(a && b);
    EXPECT_TRUE(a->fresh());
    auto c = pool->Acquire();
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().code, "database_busy");
    EXPECT_EQ(pool->open_connections(), 2);
  }
  // Given back: reused, not reopened.
  auto d = pool->Acquire();
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->fresh());
  EXPECT_EQ(pool->open_connections(), 2);
}

TEST_F(PostgresTest, ThreadsShareTheConnectionsOfAPool) {
  auto shared = Pool(2);
  ASSERT_TRUE(shared);
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) {
        auto r = shared->Run<std::int64_t>([&](Connection& c) -> Result<std::int64_t> {
          auto rows = c.Exec("SELECT $1::bigint + 1", Params().Int(i));
          if (!rows) return std::unexpected(rows.error());
          return rows->Int(0, 0);
        });
        if (r && *r == i + 1) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 160);
  EXPECT_LE(shared->open_connections(), 2);
}

TEST_F(PostgresTest, ThePoolReplacesAConnectionTheServerDropped) {
  auto pool = Pool(1);
  ASSERT_TRUE(pool);
  int first_pid = 0;
  {
    auto lease = pool->Acquire();
    ASSERT_TRUE(lease);
    first_pid = (*lease)->BackendPid();
  }
  Terminate(first_pid);
  auto pid = pool->Run<int>([](Connection& c) -> Result<int> {
    auto rows = c.Exec("SELECT pg_backend_pid()");
    if (!rows) return std::unexpected(rows.error());
    return static_cast<int>(rows->Int(0, 0));
  });
  ASSERT_TRUE(pid) << pid.error().ToString();
  EXPECT_NE(*pid, first_pid);
  EXPECT_EQ(pool->open_connections(), 1);
}

TEST_F(PostgresTest, RunRetriesOnceWhenAReusedConnectionWasLost) {
  auto pool = Pool(1);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(pool->Run<int>([](Connection&) -> Result<int> { return 0; }));
  // The connection dies between the pool's check and the statement: fn
  // kills its own backend on the first call.
  int calls = 0;
  auto r = pool->Run<int>([&](Connection& c) -> Result<int> {
    ++calls;
    if (calls == 1) Terminate(c.BackendPid());
    auto rows = c.Exec("SELECT 42");
    if (!rows) return std::unexpected(rows.error());
    return static_cast<int>(rows->Int(0, 0));
  });
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_EQ(*r, 42);
  EXPECT_EQ(calls, 2);
}

constexpr Migration kMigrations[] = {
    {1, "CREATE TABLE m1 (v integer); INSERT INTO m1 VALUES (1)"},
    {2, "ALTER TABLE m1 ADD COLUMN w text; INSERT INTO m1 VALUES (2, 'two')"},
};

TEST_F(PostgresTest, MigrationsApplyOnceAndRecordTheVersion) {
  auto v = Migrate(*conn_, "test", std::span(kMigrations).first(1));
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_EQ(*v, 1);
  v = Migrate(*conn_, "test", kMigrations);
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_EQ(*v, 2);
  v = Migrate(*conn_, "test", kMigrations);
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, 2);
  EXPECT_EQ((*conn_->Exec("SELECT count(*) FROM m1")).Int(0, 0), 2);
  auto recorded = conn_->Exec("SELECT version FROM postline_schema WHERE component = 'test'");
  ASSERT_TRUE(recorded);
  EXPECT_EQ(recorded->Int(0, 0), 2);
}

TEST_F(PostgresTest, ConcurrentStartersMigrateOnce) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      auto c = Connection::Open(url_);
      if (!c) return;
      auto v = Migrate(**c, "test", kMigrations);
      if (v && *v == 2) ++ok;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 6);
  EXPECT_EQ((*conn_->Exec("SELECT count(*) FROM m1")).Int(0, 0), 2);
}

TEST_F(PostgresTest, AFailingMigrationChangesNothing) {
  constexpr Migration broken[] = {
      {1, "CREATE TABLE m1 (v integer)"},
      {2, "INSERT INTO no_such_table VALUES (1)"},
  };
  auto v = Migrate(*conn_, "test", broken);
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, "database_error");
  EXPECT_FALSE(conn_->broken());
  auto tables =
      conn_->Exec("SELECT to_regclass('m1') IS NULL, to_regclass('postline_schema') IS NULL");
  ASSERT_TRUE(tables);
  EXPECT_TRUE(tables->Bool(0, 0));
  EXPECT_TRUE(tables->Bool(0, 1));
}

TEST_F(PostgresTest, AnOlderProgramRefusesANewerSchema) {
  ASSERT_TRUE(Migrate(*conn_, "test", kMigrations));
  auto v = Migrate(*conn_, "test", std::span(kMigrations).first(1));
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, "schema_too_new");
  EXPECT_EQ(v.error().kind, ErrorKind::kPermanent);
  EXPECT_NE(v.error().message.find("schema version 2 of test"), std::string::npos)
      << v.error().message;
  EXPECT_NE(v.error().message.find("is newer than this program's 1; upgrade postline"),
            std::string::npos)
      << v.error().message;
  EXPECT_EQ(v.error().message.find(server_->password()), std::string::npos);
}

}  // namespace
}  // namespace postline::pg
