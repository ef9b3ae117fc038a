#include "app/context.h"

#include <pthread.h>

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

Result<void> OpenQueues(Context& ctx) {
  if (ctx.service) return {};
  switch (ctx.settings.queue_provider) {
    case QueueProvider::kSqlite: {
      auto svc = OpenSqliteQueueService(ctx.settings.QueueDatabasePath());
      if (!svc) return std::unexpected(svc.error());
      ctx.service = *svc;
      break;
    }
    case QueueProvider::kMemory:
      ctx.service = NewMemoryQueueService();
      break;
    case QueueProvider::kSqs:
      return MakeError(ErrorKind::kInvalidInput, "unsupported_provider",
                       "QUEUE_PROVIDER=sqs is not available in this build; use sqlite",
                       "QUEUE_PROVIDER");
  }
  auto pair =
      EnsureGuideQueues(*ctx.service, GuideQueueAttributes(), ctx.settings.max_receive_count);
  if (!pair) return std::unexpected(pair.error());
  ctx.queues = *pair;
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
    case EmailProvider::kSes:
      break;
  }
  return MakeError(ErrorKind::kInvalidInput, "unsupported_provider",
                   "EMAIL_PROVIDER=ses is not available in this build; use smtp or file",
                   "EMAIL_PROVIDER");
}

SignalWatcher::SignalWatcher(const sigset_t& signals, std::stop_source stop)
    : thread_([signals, stop](std::stop_token own) mutable {
        int sig = 0;
        // SIGUSR2 from the destructor only wakes the thread.
        sigset_t set = signals;
        sigaddset(&set, SIGUSR2);
        while (sigwait(&set, &sig) == 0) {
          if (sig == SIGUSR2 && own.stop_requested()) return;
          if (sig == SIGTERM || sig == SIGINT) {
            stop.request_stop();
            return;
          }
        }
      }) {}

SignalWatcher::~SignalWatcher() {
  thread_.request_stop();
  pthread_kill(thread_.native_handle(), SIGUSR2);
}

}  // namespace postline::app
