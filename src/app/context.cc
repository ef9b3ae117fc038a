#include "app/context.h"

#include "app/aws_command.h"
#include "postline/blob_store.h"
#include "postline/ses.h"
#include "postline/sqs.h"

#include <pthread.h>

#include <cstdlib>
#include <iostream>

namespace postline::app {

int PrintError(const Error& e, int code) {
  std::cerr << "postline: " << e.ToString() << "\n";
  return code;
}

int ExitCodeFor(const Error& e) {
  if (e.code == "unreadable_attachment" || e.code == "file_not_found") return kExitNoInput;
  switch (e.kind) {
    case ErrorKind::kInvalidInput:
      return kExitDataErr;
    case ErrorKind::kNotFound:
      return kExitNoInput;
    case ErrorKind::kTransient:
      return kExitTempFail;
    case ErrorKind::kPermanent:
    case ErrorKind::kInternal:
      return kExitFailure;
  }
  return kExitFailure;
}

WorkerSettings WorkerSettingsFrom(const Settings& s, int concurrency) {
  WorkerSettings ws;
  ws.concurrency = concurrency > 0 ? concurrency : s.concurrency;
  ws.visibility_timeout_seconds = s.visibility_timeout_seconds;
  ws.retry_min_seconds = s.retry_min_seconds;
  ws.retry_max_seconds = s.retry_max_seconds;
  ws.max_age_seconds = s.max_age_seconds;
  ws.rate_limit_per_second = s.rate_limit_per_second;
  ws.priority_reserve_percent = s.priority_reserve_percent;
  ws.sent_log_retention_seconds = s.sent_log_retention_seconds;
  ws.max_in_doubt = s.max_in_doubt;
  return ws;
}

Result<std::shared_ptr<StateStore>> OpenState(Context& ctx) {
  if (ctx.state) return ctx.state;
  auto state = OpenStateStore(StateStoreOptions{
      ctx.settings.database_url, ctx.settings.StateDatabasePath(), SystemClock(),
      [log = Log(ctx.logger)](const StatusEvent& ev, const Error& e) {
        log.Warn("status_record_failed", {{"envelope_id", ev.envelope_id}, {"error", e.ToString()}});
      }});
  if (!state) return std::unexpected(state.error());
  ctx.state = *state;
  return ctx.state;
}

std::shared_ptr<StateStore> OpenStateOrWarn(Context& ctx) {
  auto state = OpenState(ctx);
  if (state) return *state;
  Log(ctx.logger).Warn("state_store_unavailable", {{"error", state.error().ToString()}});
  return nullptr;
}

Result<void> OpenQueues(Context& ctx) {
  if (ctx.service) return {};
  switch (ctx.settings.queue_provider) {
    case QueueProvider::kSqlite: {
      auto svc = OpenSqliteQueueService(ctx.settings.QueueDatabasePath(), SystemClock(),
                                        ctx.settings.sqlite_synchronous == "normal"
                                            ? SqliteSynchronous::kNormal
                                            : SqliteSynchronous::kFull);
      if (!svc) return std::unexpected(svc.error());
      ctx.service = *svc;
      break;
    }
    case QueueProvider::kMemory:
      ctx.service = NewMemoryQueueService();
      break;
    case QueueProvider::kSqs: {
      // Queues on AWS are created once (`postline queues create`), not at
      // every start: open the configured URLs and their DLQs by name.
      auto client = NewAwsClient(ctx.settings, "sqs");
      if (!client) return std::unexpected(client.error());
      SqsOptions options;
      options.client = *client;
      auto sqs = NewSqsQueueService(options);
      auto pair = OpenSqsQueuePair(*sqs, ctx.settings.sqs_regular_queue_url,
                                   ctx.settings.sqs_priority_queue_url);
      if (!pair) return std::unexpected(pair.error());
      ctx.service = sqs;
      ctx.queues = *pair;
      // Large e-mails: bodies above MaximumMessageSize go to the S3 bucket.
      if (!ctx.settings.blob_bucket.empty()) {
        auto s3 = NewAwsClient(ctx.settings, "s3");
        if (!s3) return std::unexpected(s3.error());
        ctx.queues = WithBlobOffload(*pair, NewS3BlobStore(*s3, ctx.settings.blob_bucket));
      }
      return {};
    }
  }
  auto pair =
      EnsureGuideQueues(*ctx.service, GuideQueueAttributes(), ctx.settings.max_receive_count);
  if (!pair) return std::unexpected(pair.error());
  ctx.queues = *pair;
  // Large e-mails (an invoice PDF with many CJK glyphs easily passes the
  // guide's 256 KiB): bodies above MaximumMessageSize go to a folder,
  // POSTLINE_BLOB_DIR or <data dir>/blobs.
  const std::string blob_dir =
      ctx.settings.blob_dir.empty() ? ctx.settings.data_dir + "/blobs" : ctx.settings.blob_dir;
  ctx.queues = WithBlobOffload(*pair, NewFolderBlobStore(blob_dir));
  return {};
}

Result<TransportFactory> MakeTransportFactory(const Settings& s) {
  switch (s.email_provider) {
    case EmailProvider::kSmtp: {
      SmtpSettings smtp = s.smtp;
      return TransportFactory([smtp] { return NewSmtpTransport(smtp); });
    }
    case EmailProvider::kFile: {
      std::string outbox = s.OutboxDir();
      return TransportFactory([outbox] { return NewFileTransport(outbox); });
    }
    case EmailProvider::kSes: {
      auto client = NewAwsClient(s, "ses");  // one client (and credentials cache) for all senders
      if (!client) return std::unexpected(client.error());
      return TransportFactory([client = *client] { return NewSesTransport(client); });
    }
  }
  return MakeError(ErrorKind::kInternal, "unsupported_provider", "unknown EMAIL_PROVIDER",
                   "EMAIL_PROVIDER");
}

SignalWatcher::SignalWatcher(const sigset_t& signals, std::stop_source stop)
    : thread_([signals, stop](std::stop_token own) mutable {
        int sig = 0;
        // SIGUSR2 from the destructor only wakes the thread.
        sigset_t set = signals;
        sigaddset(&set, SIGUSR2);
        bool stopping = false;
        while (sigwait(&set, &sig) == 0) {
          if (sig == SIGUSR2 && own.stop_requested()) return;
          if (sig == SIGTERM || sig == SIGINT) {
            // The first signal asks for a graceful stop; a second one means
            // "now" (in-flight sends are abandoned; their messages come back
            // after the visibility timeout).
            if (stopping) std::_Exit(128 + sig);
            stopping = true;
            stop.request_stop();
          }
        }
      }) {}

SignalWatcher::~SignalWatcher() {
  thread_.request_stop();
  pthread_kill(thread_.native_handle(), SIGUSR2);
}

}  // namespace postline::app
