// postline/events.h — the events of an e-mail's life, as producers and the
// delivery settler report them: queued → sending → retrying → sent | dead.
//
// Producers (service/ SendEmail, the dead-letter redrive) report "queued";
// the delivery settler reports "sending", "retrying", "sent" and "dead". The
// state store records them (postline/state.h); the HTTP API's metrics count
// them. A StatusObserver is the one-way seam between whoever makes an event
// and whoever records or counts it, so neither links the other.
//
// Thread-safety: observers are called from many threads at once; they must
// be thread-safe and must not throw. A failure to record is theirs to log.
#pragma once

#include <string>
#include <string_view>

#include "postline/envelope.h"

namespace postline {

struct StatusEvent {
  enum class State { kQueued, kSending, kRetrying, kSent, kDead };
  State state = State::kQueued;
  std::string envelope_id;
  std::string queue;                // the queue the message is on (or came from)
  int attempts = 0;                 // receives so far (0 when queued)
  int reply_code = 0;               // the SMTP reply code, 0 when none
  std::string detail;               // last error, DLQ reason, or the server's reply
  std::string provider_message_id;  // when sent (SMTP queue id, SES MessageId)
  const Email* email = nullptr;     // when known (queued, sending); not owned
};

// "queued", "sending", "retrying", "sent" or "dead".
constexpr std::string_view StatusStateName(StatusEvent::State state) {
  switch (state) {
    case StatusEvent::State::kQueued:
      return "queued";
    case StatusEvent::State::kSending:
      return "sending";
    case StatusEvent::State::kRetrying:
      return "retrying";
    case StatusEvent::State::kSent:
      return "sent";
    case StatusEvent::State::kDead:
      return "dead";
  }
  return "queued";
}

class StatusObserver {
 public:
  virtual ~StatusObserver() = default;
  virtual void OnStatus(const StatusEvent& event) = 0;
};

}  // namespace postline
