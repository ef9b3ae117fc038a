// smtp_internal.h — internal to the transport module.
//
// SmtpTranscript records one SMTP transaction as libcurl carries it out: the
// commands libcurl sends and the replies the server gives, fed line by line
// from CURLOPT_DEBUGFUNCTION (CURLINFO_HEADER_OUT / CURLINFO_HEADER_IN).
// ClassifySmtpResult turns the transcript plus libcurl's result code into a
// SendResult following the table in docs/delivery.md.
//
// Credentials never enter the transcript: the argument of AUTH and the
// client's lines answering a 334 challenge are dropped.
//
// Thread-safety: plain values; one thread at a time.
#pragma once

#include <curl/curl.h>

#include <string>
#include <string_view>
#include <vector>

#include "postline/transport.h"

namespace postline::transport_internal {

// One command and the server's complete reply to it.
struct SmtpExchange {
  std::string verb;      // "" for the greeting, "EHLO", "MAIL", "RCPT", "DATA",
                         // "." for the reply that ends DATA, "AUTH", ...
  std::string argument;  // the address for MAIL/RCPT; empty otherwise
  int code = 0;          // 0 until the final reply line arrived
  std::string reply;     // reply lines joined with a space, CRLF removed
};

class SmtpTranscript {
 public:
  // Forgets everything; call before each transfer.
  void Clear();
  // `bytes` is what libcurl passes to the debug callback for
  // CURLINFO_HEADER_OUT (one or more command lines we sent).
  void OnCommandBytes(std::string_view bytes);
  // `bytes` is what libcurl passes for CURLINFO_HEADER_IN (reply lines).
  void OnReplyBytes(std::string_view bytes);

  const std::vector<SmtpExchange>& exchanges() const { return exchanges_; }
  // True when at least one complete reply line arrived since Clear().
  bool any_reply() const { return any_reply_; }
  // The last exchange other than QUIT that received a complete reply, or
  // nullptr.
  const SmtpExchange* LastCompleted() const;

 private:
  void OnReplyLine(std::string_view line);
  SmtpExchange& Pending();

  std::vector<SmtpExchange> exchanges_;
  std::string partial_in_;
  std::string partial_out_;
  bool any_reply_ = false;
  bool awaiting_data_end_ = false;  // 354 seen: the next reply ends DATA
};

// The queue id in a final DATA reply when the text has a recognisable
// form ("... queued as X", "... id=X"); otherwise the reply text after the
// code. Example: "250 2.0.0 Ok: queued as ABC" -> "ABC".
std::string ExtractProviderMessageId(std::string_view reply);

// The explanation used when the server does not offer STARTTLS.
inline constexpr std::string_view kNoStartTlsText =
    "server did not offer STARTTLS; refusing to send credentials or mail in clear text; "
    "set POSTLINE_SMTP_TLS=none only for a loopback test server";

// Classifies a finished transfer (docs/delivery.md). `curl_error` is the
// text of CURLOPT_ERRORBUFFER (may be empty).
SendResult ClassifySmtpResult(CURLcode code, const SmtpTranscript& transcript,
                              std::string_view curl_error);

// The libcurl URL for `settings`: smtps:// for implicit TLS (SmtpTls::kImplicit,
// or kAuto on port 465), smtp:// otherwise; IPv6 literals in brackets; the
// EHLO name as the path. Example: "smtp://smtp.gmail.com:587/".
std::string SmtpUrl(const SmtpSettings& settings);

// True when the connection starts with TLS (no STARTTLS).
bool UsesImplicitTls(const SmtpSettings& settings);

// True for libcurl results that mean the connection itself failed
// (as opposed to the server refusing something).
bool IsConnectionFailure(CURLcode code);

}  // namespace postline::transport_internal
