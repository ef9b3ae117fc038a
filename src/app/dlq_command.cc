#include "app/dlq_command.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "postline/clock.h"
#include "postline/delivery.h"

namespace postline::app {
namespace {

using nlohmann::json;

struct DlqOptions {
  std::string queue;  // "priority" | "regular" | "" (both)
  bool as_json = false;
  std::string id;
  std::string filter;
  double rate = 0;  // redrives per second; 0: as fast as the queue takes them
  bool yes = false;
};

struct Lane {
  std::shared_ptr<Queue> dlq;
};

std::vector<Lane> Lanes(const Context& ctx, const std::string& which) {
  std::vector<Lane> out;
  if (which.empty() || which == "priority") out.push_back({ctx.queues.priority_dlq});
  if (which.empty() || which == "regular") out.push_back({ctx.queues.regular_dlq});
  return out;
}

// Receives every message of `dlq` once, hiding each for `visibility_s`
// (SQS has no peek). Stops when the queue returns nothing or a message comes
// back a second time.
std::string Rfc3339(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

json ToJson(const DeadLetterInfo& d, std::string_view dlq) {
  return json{{"dlq", dlq},
              {"message_id", d.message_id},
              {"envelope_id", d.envelope_id},
              {"reason", d.reason},
              {"reply_code", d.reply_code},
              {"reply", d.reply},
              {"attempts", d.attempts},
              {"source_queue", d.source_queue},
              {"subject", d.subject},
              {"recipients", d.recipients},
              {"sent_timestamp", Rfc3339(d.sent_timestamp)}};
}

// Lists (or, with `id`, finds) dead letters; releases them afterwards.
Result<json> Collect(Context& ctx, const DlqOptions& o) {
  json out = json::array();
  for (const auto& lane : Lanes(ctx, o.queue)) {
    auto all = ReceiveAllVisible(*lane.dlq, 30);
    if (!all) return std::unexpected(all.error());
    for (const auto& m : *all) {
      DeadLetterInfo d = DescribeDeadLetter(m);
      if (!o.id.empty() && d.envelope_id != o.id && d.message_id != o.id) continue;
      out.push_back(ToJson(d, lane.dlq->name()));
    }
    ReleaseAll(*lane.dlq, *all);
  }
  return out;
}

int RunList(Context& ctx, const DlqOptions& o) {
  auto rows = Collect(ctx, o);
  if (!rows) return PrintError(rows.error(), ExitCodeFor(rows.error()));
  if (o.as_json) {
    std::cout << rows->dump(2) << "\n";
    return kExitOk;
  }
  std::cout << fmt::format("{:<28} {:<12} {:>4} {:>8} {:<26} {}\n", "ENVELOPE_ID", "REASON", "CODE",
                           "ATTEMPTS", "SOURCE_QUEUE", "SUBJECT");
  for (const auto& r : *rows) {
    std::string id = r["envelope_id"].get<std::string>();
    if (id.empty()) id = r["message_id"].get<std::string>();
    std::cout << fmt::format("{:<28} {:<12} {:>4} {:>8} {:<26} {}\n", id,
                             r["reason"].get<std::string>(), r["reply_code"].get<int>(),
                             r["attempts"].get<int>(), r["source_queue"].get<std::string>(),
                             r["subject"].get<std::string>());
  }
  return kExitOk;
}

int RunShow(Context& ctx, const DlqOptions& o) {
  auto rows = Collect(ctx, o);
  if (!rows) return PrintError(rows.error(), ExitCodeFor(rows.error()));
  if (rows->empty()) {
    return PrintError(
        {ErrorKind::kNotFound, "not_found",
         fmt::format("no dead letter with envelope id or message id \"{}\"", o.id), "ID"},
        kExitFailure);
  }
  if (o.as_json) {
    std::cout << (rows->size() == 1 ? (*rows)[0] : *rows).dump(2) << "\n";
    return kExitOk;
  }
  for (const auto& r : *rows) {
    std::string recipients;
    for (const auto& a : r["recipients"]) {
      recipients += (recipients.empty() ? "" : ", ") + a.get<std::string>();
    }
    std::cout << fmt::format(
        "envelope_id:  {}\nmessage_id:   {}\ndlq:          {}\nreason:       {}\nreply_code:   "
        "{}\nreply:        {}\nattempts:     {}\nsource_queue: {}\nsubject:      {}\nrecipients:   "
        "{}\nsent:         {}\n",
        r["envelope_id"].get<std::string>(), r["message_id"].get<std::string>(),
        r["dlq"].get<std::string>(), r["reason"].get<std::string>(), r["reply_code"].get<int>(),
        r["reply"].get<std::string>(), r["attempts"].get<int>(),
        r["source_queue"].get<std::string>(), r["subject"].get<std::string>(), recipients,
        r["sent_timestamp"].get<std::string>());
  }
  return kExitOk;
}

int RunRedrive(Context& ctx, const DlqOptions& o) {
  auto reasons = ParseDeadLetterFilter(o.filter);
  if (!reasons) return PrintError(reasons.error(), kExitUsage);
  RedriveSelection selection;
  selection.reasons = *reasons;
  selection.rate_per_second = o.rate;
  json moved = json::object();
  json skipped = json::object();
  bool failed = false;
  for (const auto& lane : Lanes(ctx, o.queue)) {
    auto outcome = RedriveFromDeadLetterQueue(ctx.queues, *lane.dlq, selection, OpenStateOrWarn(ctx).get());
    if (!outcome) return PrintError(outcome.error(), ExitCodeFor(outcome.error()));
    for (const auto& line : outcome->errors) std::cerr << "postline: " << line << "\n";
    failed = failed || outcome->errors.size() > static_cast<std::size_t>(outcome->skipped);
    if (outcome->skipped > 0) skipped[lane.dlq->name()] = outcome->skipped;
    moved[lane.dlq->name()] = outcome->moved;
  }
  json out = {{"redriven", moved}};
  if (!skipped.empty()) out["skipped"] = skipped;
  std::cout << out.dump() << "\n";
  return failed ? kExitFailure : kExitOk;
}

int RunPurge(Context& ctx, const DlqOptions& o) {
  json out = json::object();
  for (const auto& lane : Lanes(ctx, o.queue)) {
    auto stats = lane.dlq->GetQueueAttributes();
    if (!stats) return PrintError(stats.error(), ExitCodeFor(stats.error()));
    const auto depth = stats->approximate_number_of_messages +
                       stats->approximate_number_of_messages_not_visible +
                       stats->approximate_number_of_messages_delayed;
    if (!o.yes) {
      std::cerr << fmt::format("postline: would delete {} message(s) from {}\n", depth,
                               lane.dlq->name());
      continue;
    }
    if (auto purged = lane.dlq->PurgeQueue(); !purged) {
      return PrintError(purged.error(), ExitCodeFor(purged.error()));
    }
    out[lane.dlq->name()] = depth;
  }
  if (!o.yes) {
    return PrintError({ErrorKind::kInvalidInput, "confirmation_required",
                       "dlq purge deletes dead letters for good; pass --yes to confirm", "--yes"},
                      kExitUsage);
  }
  std::cout << json{{"purged", out}}.dump() << "\n";
  return kExitOk;
}

}  // namespace

Command RegisterDlqCommand(CLI::App& app) {
  auto o = std::make_shared<DlqOptions>();
  CLI::App* cmd = app.add_subcommand("dlq", "Dead-letter queues: list, show, redrive, purge");
  cmd->require_subcommand(1);
  auto add_queue = [&](CLI::App* sub) {
    sub->add_option("--queue", o->queue, "priority | regular (default: both)")
        ->check(CLI::IsMember({"priority", "regular"}));
  };
  CLI::App* list =
      cmd->add_subcommand("list", "List dead letters (hides them for a moment: SQS has no peek)");
  add_queue(list);
  list->add_flag("--json", o->as_json, "Print JSON");
  CLI::App* show = cmd->add_subcommand("show", "Show one dead letter by envelope id or message id");
  show->add_option("ID", o->id, "Envelope id or the DLQ's message id")->required();
  add_queue(show);
  show->add_flag("--json", o->as_json, "Print JSON");
  CLI::App* redrive = cmd->add_subcommand(
      "redrive", "Move dead letters back to their source queue (reason attributes removed)");
  add_queue(redrive);
  redrive->add_option("--filter", o->filter,
                      "reason=permanent|expired|unparseable|max_receives[,…] (default: all)");
  redrive->add_option("--rate", o->rate, "Messages per second (default: unpaced)")
      ->check(CLI::PositiveNumber);
  CLI::App* purge = cmd->add_subcommand("purge", "Delete every dead letter (needs --yes)");
  add_queue(purge);
  purge->add_flag("--yes", o->yes, "Confirm");
  return Command{cmd, [o, list, show, redrive](Context& ctx) {
                   if (auto ok = OpenQueues(ctx); !ok) {
                     return PrintError(ok.error(), kExitUnavailable);
                   }
                   if (list->parsed()) return RunList(ctx, *o);
                   if (show->parsed()) return RunShow(ctx, *o);
                   if (redrive->parsed()) return RunRedrive(ctx, *o);
                   return RunPurge(ctx, *o);
                 }};
}

}  // namespace postline::app
