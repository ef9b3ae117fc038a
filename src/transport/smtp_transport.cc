// The SMTP transport: one libcurl easy handle per transport instance, kept
// across Send calls so that libcurl's connection cache (owned by the handle)
// keeps the SMTP connection open between messages.
//
// libcurl's global state is initialised once per process, on first use, by
// EnsureCurlGlobalInit() (std::call_once), and never cleaned up: the
// process's other libcurl users (queue/sqs, transport/ses) share it.

#include <curl/curl.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <utility>

#include "postline/transport.h"
#include "smtp_internal.h"

namespace postline {
namespace {

using transport_internal::ClassifySmtpResult;
using transport_internal::SmtpTranscript;
using transport_internal::UsesImplicitTls;

// libcurl 8.2 renamed the option (the 7.88 spelling has three L's).
#if LIBCURL_VERSION_NUM >= 0x080200
constexpr CURLoption kMailRcptAllowFails = CURLOPT_MAIL_RCPT_ALLOWFAILS;
#else
constexpr CURLoption kMailRcptAllowFails = CURLOPT_MAIL_RCPT_ALLLOWFAILS;
#endif

CURLcode EnsureCurlGlobalInit() {
  static std::once_flag once;
  static CURLcode result = CURLE_OK;
  std::call_once(once, [] { result = curl_global_init(CURL_GLOBAL_DEFAULT); });
  return result;
}

struct CurlEasyCleanup {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyCleanup>;

struct CurlSlistFree {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlSlist = std::unique_ptr<curl_slist, CurlSlistFree>;

// What the libcurl callbacks of one easy handle write to. Must outlive the
// handle: curl_easy_cleanup may still report the QUIT exchange.
struct CallState {
  SmtpTranscript transcript;
  std::array<char, CURL_ERROR_SIZE> error{};
  std::string_view upload;  // the message being sent; empty outside Send
  size_t upload_offset = 0;
  // OutgoingMessage::before_commit of the message being sent, called before
  // the last bytes are handed to libcurl (which then ends DATA with ".").
  const std::function<void()>* before_commit = nullptr;
  bool committed = false;
};

int DebugCallback(CURL*, curl_infotype type, char* data, size_t size, void* userp) {
  auto* state = static_cast<CallState*>(userp);
  try {
    if (type == CURLINFO_HEADER_IN) {
      state->transcript.OnReplyBytes(std::string_view(data, size));
    } else if (type == CURLINFO_HEADER_OUT) {
      state->transcript.OnCommandBytes(std::string_view(data, size));
    }
  } catch (...) {
    // Out of memory while recording: the transcript is incomplete, the
    // transfer itself goes on.
  }
  return 0;
}

size_t ReadCallback(char* buffer, size_t size, size_t nitems, void* userp) {
  auto* state = static_cast<CallState*>(userp);
  size_t room = size * nitems;
  size_t left = state->upload.size() - state->upload_offset;
  size_t n = std::min(room, left);
  // libcurl ends DATA once it has read CURLOPT_INFILESIZE bytes, without
  // asking for more: the last chunk is the point of no return.
  if (n == left && !state->committed) {
    state->committed = true;
    if (state->before_commit != nullptr && *state->before_commit) {
      try {
        (*state->before_commit)();
      } catch (...) {
        return CURL_READFUNC_ABORT;
      }
    }
  }
  std::memcpy(buffer, state->upload.data() + state->upload_offset, n);
  state->upload_offset += n;
  return n;
}

size_t DiscardCallback(char*, size_t size, size_t nmemb, void*) { return size * nmemb; }

bool HasLineBreakOrNul(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

SendResult LocalFailure(SendOutcome outcome, std::string reply) {
  SendResult r;
  r.outcome = outcome;
  r.reply = std::move(reply);
  return r;
}

class SmtpTransport final : public Transport {
 public:
  explicit SmtpTransport(SmtpSettings settings)
      : settings_(std::move(settings)),
        url_(transport_internal::SmtpUrl(settings_)),
        validation_(ValidateSmtpSettings(settings_)) {}

  SmtpTransport(const SmtpTransport&) = delete;
  SmtpTransport& operator=(const SmtpTransport&) = delete;

  SendResult Send(const OutgoingMessage& message) override {
    try {
      return SendOrThrow(message);
    } catch (const std::exception& e) {
      // Only allocation failures can get here.
      handle_.reset();
      return LocalFailure(SendOutcome::kTransient,
                          fmt::format("local failure while sending: {}", e.what()));
    }
  }

  Result<void> Check() override {
    try {
      return CheckOrThrow();
    } catch (const std::exception& e) {
      return MakeError(ErrorKind::kTransient, "smtp_unavailable",
                       fmt::format("local failure while checking SMTP: {}", e.what()), "SMTP_HOST");
    }
  }

  std::string_view name() const override { return "smtp"; }

 private:
  // Sets the options every handle needs. Returns the first failure.
  CURLcode Configure(CURL* h, CallState* state) const {
    CURLcode rc = CURLE_OK;
    auto set = [&](CURLoption option, auto value) {
      if (rc == CURLE_OK) rc = curl_easy_setopt(h, option, value);
    };
    set(CURLOPT_URL, url_.c_str());
    set(CURLOPT_NOSIGNAL, 1L);
    set(CURLOPT_NOPROGRESS, 1L);
    set(CURLOPT_CRLF, 0L);  // the data already has CRLF line ends: no conversion
    set(CURLOPT_CONNECTTIMEOUT_MS, settings_.connect_timeout_ms);
    set(CURLOPT_TIMEOUT_MS, settings_.timeout_ms);
    // libcurl waits for the reply to QUIT when it drops a failed connection,
    // and that wait ignores CURLOPT_TIMEOUT_MS: bound it by the same time
    // (whole seconds, rounded up) instead of libcurl's 120 s default.
    set(CURLOPT_SERVER_RESPONSE_TIMEOUT, std::max(1L, (settings_.timeout_ms + 999) / 1000));
    // VERBOSE only routes protocol lines to DEBUGFUNCTION; nothing is printed.
    set(CURLOPT_VERBOSE, 1L);
    set(CURLOPT_DEBUGFUNCTION, &DebugCallback);
    set(CURLOPT_DEBUGDATA, static_cast<void*>(state));
    set(CURLOPT_ERRORBUFFER, state->error.data());
    if (!UsesImplicitTls(settings_)) {
      set(CURLOPT_USE_SSL, settings_.tls == SmtpTls::kNone ? static_cast<long>(CURLUSESSL_NONE)
                                                           : static_cast<long>(CURLUSESSL_ALL));
    }
    if (!settings_.ca_file.empty()) set(CURLOPT_CAINFO, settings_.ca_file.c_str());
    set(CURLOPT_SSL_VERIFYPEER, settings_.verify_peer ? 1L : 0L);
    set(CURLOPT_SSL_VERIFYHOST, settings_.verify_peer ? 2L : 0L);
    if (!settings_.user.empty()) {
      set(CURLOPT_USERNAME, settings_.user.c_str());
      set(CURLOPT_PASSWORD, settings_.password.c_str());
    }
    return rc;
  }

  // Creates and configures the kept handle when there is none.
  std::optional<SendResult> EnsureHandle() {
    if (handle_) return std::nullopt;
    if (CURLcode init = EnsureCurlGlobalInit(); init != CURLE_OK) {
      return LocalFailure(SendOutcome::kTransient, fmt::format("libcurl initialisation failed: {}",
                                                               curl_easy_strerror(init)));
    }
    CurlEasy handle(curl_easy_init());
    if (!handle) {
      return LocalFailure(SendOutcome::kTransient, "could not create a libcurl handle");
    }
    if (CURLcode rc = Configure(handle.get(), &state_); rc != CURLE_OK) {
      return LocalFailure(
          SendOutcome::kPermanent,
          fmt::format("libcurl refused the SMTP settings: {}", curl_easy_strerror(rc)));
    }
    curl_easy_setopt(handle.get(), CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(handle.get(), CURLOPT_READFUNCTION, &ReadCallback);
    curl_easy_setopt(handle.get(), CURLOPT_READDATA, static_cast<void*>(&state_));
    curl_easy_setopt(handle.get(), kMailRcptAllowFails, 1L);
    // libcurl's SMTP upload keeps this buffer plus a scratch buffer of twice
    // its size (for dot-stuffing) per handle: 192 KB per sender at the 64 KB
    // default, 48 KB at 16 KB, which keeps 32 senders' memory small; the
    // message is still written in 16 KB sends.
    curl_easy_setopt(handle.get(), CURLOPT_UPLOAD_BUFFERSIZE, 16384L);
    handle_ = std::move(handle);
    return std::nullopt;
  }

  SendResult SendOrThrow(const OutgoingMessage& message) {
    // Settings that skipped validation (e.g. plain text to a remote host)
    // never reach the network.
    if (!validation_) {
      return LocalFailure(SendOutcome::kPermanent,
                          "invalid SMTP settings: " + validation_.error().ToString());
    }
    if (message.rcpt_to.empty()) {
      return LocalFailure(SendOutcome::kPermanent,
                          fmt::format("message {} has no envelope recipients (rcpt_to is empty)",
                                      message.envelope_id));
    }
    if (HasLineBreakOrNul(message.mail_from)) {
      return LocalFailure(SendOutcome::kPermanent,
                          "mail_from contains a line break or NUL; refusing to send it to the "
                          "server as an SMTP command");
    }
    for (size_t i = 0; i < message.rcpt_to.size(); ++i) {
      if (message.rcpt_to[i].empty() || HasLineBreakOrNul(message.rcpt_to[i])) {
        return LocalFailure(SendOutcome::kPermanent,
                            fmt::format("rcpt_to[{}] is empty or contains a line break or NUL", i));
      }
    }
    if (auto failure = EnsureHandle()) return *failure;

    curl_slist* head = nullptr;
    for (const std::string& rcpt : message.rcpt_to) {
      curl_slist* next = curl_slist_append(head, rcpt.c_str());
      if (next == nullptr) {  // the list is left as it was
        curl_slist_free_all(head);
        throw std::bad_alloc();
      }
      head = next;
    }
    CurlSlist recipients(head);

    state_.committed = false;
    auto [rc, reused] = Perform(message, recipients.get(), /*fresh_connection=*/false);
    // A kept connection that the server closed while idle can fail before
    // any reply arrives; nothing was accepted then, so one more try on a new
    // connection is safe.
    if (rc != CURLE_OK && reused && !state_.transcript.any_reply() &&
        (rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING)) {
      std::tie(rc, reused) = Perform(message, recipients.get(), /*fresh_connection=*/true);
    }
    return ClassifySmtpResult(rc, state_.transcript, state_.error.data());
  }

  // One transfer on the kept handle. Returns libcurl's result and whether
  // an existing connection was reused.
  std::pair<CURLcode, bool> Perform(const OutgoingMessage& message, curl_slist* recipients,
                                    bool fresh_connection) {
    CURL* h = handle_.get();
    state_.transcript.Clear();
    state_.error[0] = '\0';
    state_.upload = message.data;
    state_.upload_offset = 0;
    state_.before_commit = &message.before_commit;
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, message.mail_from.c_str());
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, recipients);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.data.size()));
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, fresh_connection ? 1L : 0L);
    CURLcode rc = curl_easy_perform(h);
    long new_connections = 0;
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &new_connections);
    // The list is freed by the caller: leave no dangling pointer behind.
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, static_cast<curl_slist*>(nullptr));
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 0L);
    state_.upload = {};
    state_.before_commit = nullptr;
    return {rc, new_connections == 0};
  }

  Result<void> CheckOrThrow() {
    if (!validation_) return std::unexpected(validation_.error());
    if (CURLcode init = EnsureCurlGlobalInit(); init != CURLE_OK) {
      return MakeError(ErrorKind::kTransient, "smtp_unavailable",
                       fmt::format("libcurl initialisation failed: {}", curl_easy_strerror(init)),
                       "SMTP_HOST");
    }
    // Declared before the handle: the handle's cleanup (QUIT) still reports
    // to it.
    CallState state;
    CurlEasy handle(curl_easy_init());
    if (!handle) {
      return MakeError(ErrorKind::kTransient, "smtp_unavailable",
                       "could not create a libcurl handle", "SMTP_HOST");
    }
    CURLcode rc = Configure(handle.get(), &state);
    if (rc == CURLE_OK) {
      // Connect, EHLO, STARTTLS, AUTH (as configured), then NOOP; the
      // connection is not kept, so libcurl says QUIT when the transfer ends.
      curl_easy_setopt(handle.get(), CURLOPT_CUSTOMREQUEST, "NOOP");
      curl_easy_setopt(handle.get(), CURLOPT_WRITEFUNCTION, &DiscardCallback);
      curl_easy_setopt(handle.get(), CURLOPT_FORBID_REUSE, 1L);
      rc = curl_easy_perform(handle.get());
    }
    if (rc == CURLE_OK) return {};
    SendResult r = ClassifySmtpResult(rc, state.transcript, state.error.data());
    const transport_internal::SmtpExchange* last = state.transcript.LastCompleted();
    ErrorKind kind =
        r.outcome == SendOutcome::kPermanent ? ErrorKind::kPermanent : ErrorKind::kTransient;
    std::string where = fmt::format("SMTP check of {}:{} failed: ", settings_.host, settings_.port);
    if (rc == CURLE_LOGIN_DENIED || (last != nullptr && last->verb.starts_with("AUTH"))) {
      return MakeError(kind, "smtp_auth_refused", where + r.reply, "SMTP_PASSWORD");
    }
    if (rc == CURLE_USE_SSL_FAILED) {
      return MakeError(kind, "smtp_starttls_unavailable", where + r.reply, "POSTLINE_SMTP_TLS");
    }
    return MakeError(kind, "smtp_unavailable", where + r.reply, "SMTP_HOST");
  }

  const SmtpSettings settings_;
  const std::string url_;
  const Result<void> validation_;
  // Declared before handle_ so that it outlives it (see CallState).
  CallState state_;
  CurlEasy handle_;  // created on first Send; owns the cached connection
};

}  // namespace

namespace transport_internal {

bool UsesImplicitTls(const SmtpSettings& settings) {
  return settings.tls == SmtpTls::kImplicit ||
         (settings.tls == SmtpTls::kAuto && settings.port == 465);
}

std::string SmtpUrl(const SmtpSettings& settings) {
  std::string host = settings.host;
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";
  return fmt::format("{}://{}:{}/{}", UsesImplicitTls(settings) ? "smtps" : "smtp", host,
                     settings.port, settings.helo_name);
}

}  // namespace transport_internal

std::unique_ptr<Transport> NewSmtpTransport(const SmtpSettings& settings) {
  return std::make_unique<SmtpTransport>(settings);
}

}  // namespace postline
