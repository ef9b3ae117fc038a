// Reading, redriving and deleting dead letters through the Queue interface.
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "http/dashboard/dashboard_internal.h"
#include "postline/envelope.h"
#include "postline/service.h"
#include "postline/delivery.h"

namespace postline::dashboard_internal {
namespace {

constexpr int kHoldSeconds = 30;  // how long a read dead letter stays hidden at most

DeadLetter Describe(const ReceivedMessage& m, const std::string& dlq) {
  DeadLetter d;
  d.message = m;
  d.dlq = dlq;
  d.info = DescribeDeadLetter(m);
  auto email = ParseEmailJson(m.body, "");
  if (email) {
    if (d.info.envelope_id.empty()) d.info.envelope_id = email->id;
    d.email = std::move(*email);
  } else {
    d.parse_error = email.error().ToString();
  }
  return d;
}

bool Selected(const ReceivedMessage& m, const std::set<std::string>& ids, bool all) {
  return all || ids.contains(m.message_id);
}

}  // namespace

Result<DeadLetterPage> PeekDeadLetters(Queue& dlq, int limit) {
  DeadLetterPage page;
  auto got = ReceiveAllVisible(dlq, kHoldSeconds, static_cast<std::size_t>(std::max(limit, 0)),
                               &page.truncated);
  if (!got) return std::unexpected(got.error());
  ReleaseAll(dlq, *got);
  std::sort(got->begin(), got->end(), [](const ReceivedMessage& a, const ReceivedMessage& b) {
    return a.sent_timestamp < b.sent_timestamp;
  });
  for (const auto& m : *got) page.letters.push_back(Describe(m, dlq.name()));
  return page;
}

Result<DeadLetterActionResult> RedriveSelected(const QueuePair& queues, Queue& dlq,
                                               const std::set<std::string>& ids, bool all,
                                               int limit, StatusObserver* observer) {
  DeadLetterActionResult result;
  if (!all && ids.empty()) return result;
  RedriveSelection selection;
  if (!all) selection.message_ids = ids;
  selection.max = limit;
  auto outcome = RedriveFromDeadLetterQueue(queues, dlq, selection, observer);
  if (!outcome) return std::unexpected(outcome.error());
  result.done = static_cast<int>(outcome->moved);
  result.errors = std::move(outcome->errors);
  return result;
}

Result<DeadLetterActionResult> DeleteSelected(Queue& dlq, const std::set<std::string>& ids,
                                              bool all, int limit) {
  auto got = ReceiveAllVisible(dlq, kHoldSeconds, static_cast<std::size_t>(std::max(limit, 0)));
  if (!got) return std::unexpected(got.error());
  DeadLetterActionResult result;
  std::vector<ReceivedMessage> keep;
  for (const auto& m : *got) {
    if (!Selected(m, ids, all)) {
      keep.push_back(m);
      continue;
    }
    if (auto deleted = dlq.DeleteMessage(m.receipt_handle); !deleted) {
      result.errors.push_back(fmt::format("{}: {}", m.message_id, deleted.error().ToString()));
      continue;
    }
    ++result.done;
  }
  ReleaseAll(dlq, keep);
  return result;
}

}  // namespace postline::dashboard_internal
