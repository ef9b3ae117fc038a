// postline/transport.h — delivering composed messages: SMTP (libcurl), file.
//
// A Transport answers every send with a typed outcome — sent, transient or
// permanent — and the server's reply. It never retries by itself: retries
// belong to the worker, through the queue's visibility timeout.
//
// Classification (docs/delivery.md): SMTP 2yz → sent; 4yz replies, connection
// refused/reset, timeouts, DNS failures and TLS handshake failures →
// transient; 5yz replies → permanent; when some RCPT TO are refused with 5yz
// and others accepted, the message is sent to the accepted ones and the
// refused ones are listed in `rejected`.
//
// Thread-safety: a Transport instance is used by one thread at a time (each
// worker sender owns one, which keeps its SMTP connection open across
// messages). Create one per thread with a TransportFactory.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "postline/error.h"

namespace postline {

struct OutgoingMessage {
  std::string envelope_id;          // for logs and file names
  std::string mail_from;            // SMTP envelope sender (ASCII addr-spec)
  std::vector<std::string> rcpt_to; // SMTP envelope recipients (ASCII addr-specs), to+cc+bcc
  std::string data;                 // RFC 5322 message bytes, CRLF line ends
  // Called by the transport right before its point of no return: after it,
  // the receiver may take the message even if this process dies before it
  // learns so (SMTP: before the last bytes of DATA and the end-of-data "."
  // of RFC 5321 §4.1.1.4; SES: before the SendEmail request; file: before
  // the rename into the outbox). At most once per Send, on the calling
  // thread; may block (the worker uses it to bound how many sends are in
  // doubt at once, POSTLINE_MAX_IN_DOUBT). Not called when the send fails
  // before that point. Must not throw. Empty: nothing to call.
  std::function<void()> before_commit;
};

enum class SendOutcome { kSent, kTransient, kPermanent };
std::string_view SendOutcomeName(SendOutcome outcome);  // "sent" | "transient" | "permanent"

struct RecipientRejection {
  std::string recipient;
  int reply_code = 0;   // e.g. 550
  std::string reply;    // the server's reply text
};

struct SendResult {
  SendOutcome outcome = SendOutcome::kTransient;
  int reply_code = 0;   // last SMTP reply code; 0 when none was received
  std::string reply;    // the server's reply text, or a description of the local failure
  std::string provider_message_id;  // e.g. the queue id in "250 2.0.0 Ok: queued as X"
  // Recipients the server refused at RCPT TO. With kSent: the message went
  // to the others, and these (4yz or 5yz) did not get it. Also filled when
  // every recipient was refused (then the outcome is kPermanent, or
  // kTransient if any refusal was 4yz).
  std::vector<RecipientRejection> rejected;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Delivers one message. Never throws.
  virtual SendResult Send(const OutgoingMessage& message) = 0;
  // A connectivity check for `postline health`: SMTP connects and says EHLO
  // (and STARTTLS/AUTH when configured), NOOP, then QUIT, on a connection of
  // its own; the file transport creates the outbox and writes a probe file.
  // Errors: kTransient with the failure, kPermanent when authentication is
  // refused (code "smtp_auth_refused") or STARTTLS is required but not
  // offered ("smtp_starttls_unavailable").
  virtual Result<void> Check() = 0;
  // "smtp", "file", "ses".
  virtual std::string_view name() const = 0;
};

using TransportFactory = std::function<std::unique_ptr<Transport>()>;

enum class SmtpTls {
  kAuto,      // port 465: implicit TLS; otherwise STARTTLS, required
  kImplicit,  // TLS from the first byte (smtps)
  kStartTls,  // STARTTLS required; fail before AUTH if the server does not offer it
  kNone,      // plain text; accepted for loopback hosts only
};

struct SmtpSettings {
  std::string host;
  int port = 587;
  std::string user;      // empty: no AUTH
  std::string password;
  SmtpTls tls = SmtpTls::kAuto;
  std::string ca_file;   // extra CA bundle (PEM) for the server certificate; empty: system store
  bool verify_peer = true;
  long connect_timeout_ms = 10000;
  long timeout_ms = 120000;  // whole transaction
  std::string helo_name;     // EHLO name; empty: libcurl's default
};

// Validates settings (host set, port 1–65535, kNone only for a loopback host:
// "localhost", 127.0.0.0/8, ::1). Errors: kInvalidInput naming SMTP_HOST,
// SMTP_PORT or POSTLINE_SMTP_TLS (field), or "helo_name" / "timeout_ms"
// (EHLO name with characters outside [A-Za-z0-9.-[]:]; non-positive timeouts).
Result<void> ValidateSmtpSettings(const SmtpSettings& settings);

// An SMTP transport over libcurl; one connection kept open across Send calls
// (a new one when a failure or the server closed it).
// STARTTLS is required unless tls is kNone or implicit TLS is used: a server
// that does not offer it gets no AUTH and no mail (kPermanent). A Send waits
// at most settings.timeout_ms for the transaction, plus as long again for the
// QUIT reply when a failed connection is dropped (and once more if a kept
// connection proves dead before any reply). libcurl's global state
// is initialised on first use (once per process, thread-safe) and never
// cleaned up. Outcome table: docs/delivery.md.
// REQUIRES: ValidateSmtpSettings(settings) succeeded (otherwise every Send is
// kPermanent and Check returns the validation error, without connecting).
std::unique_ptr<Transport> NewSmtpTransport(const SmtpSettings& settings);

// Writes each message to `<outbox_dir>/<envelope_id>.eml` atomically
// (temporary file, fsync, rename, fsync of the directory). Creates the
// directory if missing. Write failures are transient (disk full may clear);
// an envelope_id that is not a safe file name (empty, '/', '\\', control
// characters, leading '.', over 200 bytes) is permanent. On success
// provider_message_id is the written file's path. Sending the same
// envelope_id again replaces the file.
std::unique_ptr<Transport> NewFileTransport(const std::string& outbox_dir);

}  // namespace postline
