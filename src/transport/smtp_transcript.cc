#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "smtp_internal.h"

namespace postline::transport_internal {
namespace {

std::string_view TrimLineEnd(std::string_view line) {
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
  return line;
}

std::string UpperAscii(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return out;
}

// "MAIL FROM:<a@b> SIZE=1" -> "a@b"; "" when there are no angle brackets.
std::string AngleAddress(std::string_view line) {
  auto open = line.find('<');
  if (open == std::string_view::npos) return {};
  auto close = line.find('>', open + 1);
  if (close == std::string_view::npos) return {};
  return std::string(line.substr(open + 1, close - open - 1));
}

// Parses the three-digit code of a reply line; 0 when the line has none.
int ReplyCode(std::string_view line) {
  if (line.size() < 3) return 0;
  int code = 0;
  for (int i = 0; i < 3; ++i) {
    if (!std::isdigit(static_cast<unsigned char>(line[i]))) return 0;
    code = code * 10 + (line[i] - '0');
  }
  if (line.size() > 3 && line[3] != ' ' && line[3] != '-') return 0;
  return code;
}

bool IsFinalReplyLine(std::string_view line) { return line.size() == 3 || line[3] == ' '; }

// Feeds complete lines of `bytes` (with `partial` holding an unfinished line
// from the previous call) to `on_line`.
template <typename F>
void SplitLines(std::string& partial, std::string_view bytes, F&& on_line) {
  while (!bytes.empty()) {
    auto nl = bytes.find('\n');
    if (nl == std::string_view::npos) {
      partial.append(bytes);
      return;
    }
    partial.append(bytes.substr(0, nl + 1));
    bytes.remove_prefix(nl + 1);
    std::string line = std::move(partial);
    partial.clear();
    on_line(TrimLineEnd(line));
  }
}

int CodeClass(int code) { return code / 100; }

bool IsPermanentCurlCode(CURLcode code) {
  switch (code) {
    case CURLE_LOGIN_DENIED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_UNKNOWN_OPTION:
      return true;
    default:
      return false;
  }
}

std::string LocalFailureText(CURLcode code, std::string_view curl_error) {
  std::string_view what = curl_easy_strerror(code);
  if (curl_error.empty()) return std::string(what);
  return fmt::format("{}: {}", what, curl_error);
}

}  // namespace

void SmtpTranscript::Clear() {
  exchanges_.clear();
  partial_in_.clear();
  partial_out_.clear();
  any_reply_ = false;
  awaiting_data_end_ = false;
}

void SmtpTranscript::OnCommandBytes(std::string_view bytes) {
  SplitLines(partial_out_, bytes, [this](std::string_view line) {
    awaiting_data_end_ = false;
    SmtpExchange exchange;
    const SmtpExchange* last = LastCompleted();
    if (last != nullptr && last->code == 334 && &exchanges_.back() == last) {
      // A SASL response to a challenge: it carries credentials, keep none.
      exchange.verb = "AUTH-RESPONSE";
    } else {
      auto space = line.find(' ');
      exchange.verb = UpperAscii(line.substr(0, space));
      if (exchange.verb == "MAIL" || exchange.verb == "RCPT")
        exchange.argument = AngleAddress(line);
      // Everything after AUTH's mechanism is an initial response: dropped.
    }
    exchanges_.push_back(std::move(exchange));
  });
}

void SmtpTranscript::OnReplyBytes(std::string_view bytes) {
  SplitLines(partial_in_, bytes, [this](std::string_view line) { OnReplyLine(line); });
}

SmtpExchange& SmtpTranscript::Pending() {
  if (!exchanges_.empty() && exchanges_.back().code == 0) return exchanges_.back();
  SmtpExchange exchange;
  if (awaiting_data_end_) {
    exchange.verb = ".";
    awaiting_data_end_ = false;
  }
  exchanges_.push_back(std::move(exchange));
  return exchanges_.back();
}

void SmtpTranscript::OnReplyLine(std::string_view line) {
  int code = ReplyCode(line);
  if (code == 0) return;  // not an SMTP reply line; ignore
  SmtpExchange& exchange = Pending();
  if (!exchange.reply.empty()) exchange.reply += ' ';
  exchange.reply.append(line);
  if (!IsFinalReplyLine(line)) return;
  exchange.code = code;
  any_reply_ = true;
  if (exchange.verb == "DATA" && code == 354) awaiting_data_end_ = true;
}

const SmtpExchange* SmtpTranscript::LastCompleted() const {
  for (auto it = exchanges_.rbegin(); it != exchanges_.rend(); ++it) {
    // libcurl says QUIT when it drops a failed connection; its 221 says
    // nothing about the transaction.
    if (it->code != 0 && it->verb != "QUIT") return &*it;
  }
  return nullptr;
}

std::string ExtractProviderMessageId(std::string_view reply) {
  auto token_after = [&](std::string_view marker) -> std::string {
    auto lower = std::string(reply);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    auto pos = lower.find(marker);
    if (pos == std::string::npos) return {};
    std::string_view rest = reply.substr(pos + marker.size());
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    auto end = rest.find_first_of(" \t;,");
    std::string token(rest.substr(0, end));
    while (!token.empty() && (token.back() == '.' || token.back() == ')')) token.pop_back();
    return token;
  };
  if (auto id = token_after("queued as "); !id.empty()) return id;  // Postfix, many others
  if (auto id = token_after("id="); !id.empty()) return id;         // Exim
  // Unrecognised: the reply text after the code.
  std::string_view text = reply;
  if (ReplyCode(text) != 0) text.remove_prefix(std::min<size_t>(4, text.size()));
  return std::string(text);
}

bool IsConnectionFailure(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
      return true;
    default:
      return false;
  }
}

SendResult ClassifySmtpResult(CURLcode code, const SmtpTranscript& transcript,
                              std::string_view curl_error) {
  SendResult result;
  const SmtpExchange* data_end = nullptr;
  bool data_started = false;
  bool any_rcpt_accepted = false;
  bool any_rcpt_transient = false;
  const SmtpExchange* last_rcpt = nullptr;
  for (const SmtpExchange& e : transcript.exchanges()) {
    if (e.code == 0) continue;
    if (e.verb == "RCPT") {
      last_rcpt = &e;
      if (CodeClass(e.code) == 2) {
        any_rcpt_accepted = true;
      } else {
        if (CodeClass(e.code) == 4) any_rcpt_transient = true;
        result.rejected.push_back({e.argument, e.code, e.reply});
      }
    } else if (e.verb == "DATA") {
      data_started = true;
    } else if (e.verb == ".") {
      data_end = &e;
    }
  }
  const SmtpExchange* last = transcript.LastCompleted();

  // The server accepted the message: it is sent, whatever happened after.
  if (code == CURLE_OK || (data_end != nullptr && CodeClass(data_end->code) == 2)) {
    result.outcome = SendOutcome::kSent;
    const SmtpExchange* final_reply = data_end != nullptr ? data_end : last;
    if (final_reply != nullptr) {
      result.reply_code = final_reply->code;
      result.reply = final_reply->reply;
      result.provider_message_id = ExtractProviderMessageId(final_reply->reply);
    }
    return result;
  }

  if (last != nullptr) result.reply_code = last->code;

  if (code == CURLE_USE_SSL_FAILED &&
      !(last != nullptr && last->verb == "STARTTLS" && last->code >= 400)) {
    result.outcome = SendOutcome::kPermanent;
    result.reply = std::string(kNoStartTlsText);
    return result;
  }

  if (last_rcpt != nullptr && !any_rcpt_accepted && !data_started) {
    result.outcome = any_rcpt_transient ? SendOutcome::kTransient : SendOutcome::kPermanent;
    result.reply_code = last_rcpt->code;
    std::string text = "all recipients refused:";
    for (const RecipientRejection& r : result.rejected) {
      text += fmt::format(" <{}> {};", r.recipient, r.reply);
    }
    text.pop_back();
    result.reply = std::move(text);
    return result;
  }

  if (last != nullptr && last->code >= 400) {
    result.outcome = CodeClass(last->code) == 4 ? SendOutcome::kTransient : SendOutcome::kPermanent;
    result.reply = last->reply;
    return result;
  }

  result.outcome = IsPermanentCurlCode(code) ? SendOutcome::kPermanent : SendOutcome::kTransient;
  result.reply = LocalFailureText(code, curl_error);
  return result;
}

}  // namespace postline::transport_internal
