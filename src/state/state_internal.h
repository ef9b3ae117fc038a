// Internal to the state module: the rules every StateStore backend shares —
// input checks and how a StatusEvent becomes the columns of a status record
// (postline/state.h, StateStore::OnStatus). Not a public header.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "postline/error.h"
#include "postline/events.h"
#include "postline/json.h"
#include "postline/state.h"

namespace postline::state_internal {

inline constexpr std::size_t kMaxIdempotencyKeyLength = 128;

// kInvalidInput "invalid_idempotency_key" unless `key` is 1–128 characters.
inline std::optional<Error> CheckIdempotencyKey(std::string_view key) {
  if (!key.empty() && key.size() <= kMaxIdempotencyKeyLength) return std::nullopt;
  return Error{ErrorKind::kInvalidInput, "invalid_idempotency_key",
               fmt::format("an idempotency key must be 1–{} characters, got {}",
                           kMaxIdempotencyKeyLength, key.size()),
               "idempotency_key"};
}

// kInvalidInput "invalid_limit" unless 1 ≤ `limit` ≤ 1000 (ListStatus).
inline std::optional<Error> CheckListLimit(int limit) {
  if (limit >= 1 && limit <= 1000) return std::nullopt;
  return Error{ErrorKind::kInvalidInput, "invalid_limit",
               fmt::format("limit must be 1–1000, got {}", limit), "limit"};
}

// The values a status event brings to its record: the detail of a
// "retrying" or "dead" event is the last error, of a "sent" event the
// reply; recipients (to + cc + bcc, JSON array text), subject and key come
// from event.email when set (has_email), else stay as recorded.
struct StatusColumns {
  std::string last_error;
  std::string reply;
  std::string recipients_json = "[]";
  std::string subject;
  std::string idempotency_key;
  bool has_email = false;
};

inline StatusColumns ColumnsOf(const StatusEvent& ev) {
  using State = StatusEvent::State;
  StatusColumns c;
  if (ev.state == State::kRetrying || ev.state == State::kDead) c.last_error = ev.detail;
  if (ev.state == State::kSent) c.reply = ev.detail;
  if (ev.email != nullptr) {
    nlohmann::json recipients = nlohmann::json::array();
    for (const auto* list : {&ev.email->to, &ev.email->cc, &ev.email->bcc}) {
      for (const auto& a : *list) recipients.push_back(a.email);
    }
    // Replacement of ill-formed UTF-8 instead of an exception: the
    // addresses were validated, this only guards the store.
    c.recipients_json = recipients.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    c.subject = ev.email->subject;
    c.idempotency_key = ev.email->idempotency_key;
    c.has_email = true;
  }
  return c;
}

// Calls `hook` (when set) with a failure of OnStatus; the hook must not
// throw, and if it does the exception is swallowed: status is advisory.
inline void ReportStatusError(const StatusErrorHook& hook, const StatusEvent& ev,
                              const Error& error) {
  if (!hook) return;
  try {
    hook(ev, error);
  } catch (...) {
  }
}

// The JSON array of strings in `text` ("[]" or garbage: empty).
inline std::vector<std::string> StringsFromJson(std::string_view text) {
  std::vector<std::string> out;
  auto parsed = ParseJson(text, {.document = "a stored list"});
  if (parsed && parsed->is_array()) {
    for (const auto& v : *parsed) {
      if (v.is_string()) out.push_back(v.get<std::string>());
    }
  }
  return out;
}

}  // namespace postline::state_internal
