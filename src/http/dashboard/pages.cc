// The dashboard's pages.
#include "http/dashboard/pages.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <stdexcept>

#include "http/dashboard/assets.h"
#include "http/dashboard/dashboard_internal.h"
#include "postline/mime.h"
#include "postline/state.h"
#include "postline/delivery.h"

namespace postline::dashboard_internal {
namespace {

using kainjow::mustache::data;
using kainjow::mustache::mustache;
using std::chrono::minutes;
using std::chrono::seconds;
using std::chrono::system_clock;

constexpr int kBuckets = 12;       // chart: 12 × 5 minutes = the last hour
constexpr int kStatusScan = 1000;  // status records read per state (the store's maximum)
constexpr std::size_t kMaxSearchResults = 200;

std::string Joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += ", ";
    out += s;
  }
  return out;
}

std::string AddressList(const std::vector<Address>& list) {
  std::string out;
  for (const auto& a : list) {
    if (!out.empty()) out += ", ";
    out += a.name.empty() ? a.email : fmt::format("{} <{}>", a.name, a.email);
  }
  return out;
}

std::string Lane(std::string_view queue) {
  if (queue == kPriorityQueueName) return "priority (1–3)";
  if (queue == kRegularQueueName) return "regular (4–10)";
  return std::string(queue);
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  return out;
}

// The window in which a retrying e-mail's next attempt falls: the worker's
// backoff is uniformly random in [min, min(max, min · 2^(attempts−1))]
// seconds after the failed attempt (postline/delivery.h, BackoffSeconds).
std::string NextAttempt(const PageContext& ctx, const EmailStatus& s) {
  if (s.state == "queued") return "when the queue releases it";
  if (s.state == "sending") return "sending now";
  if (s.state != "retrying") return "";
  if (ctx.settings.retry_min_seconds <= 0 || ctx.settings.retry_max_seconds <= 0) {
    return fmt::format("after the backoff from {}", FormatTime(s.updated_at));
  }
  const int lo = ctx.settings.retry_min_seconds;
  std::int64_t hi = lo;
  for (int i = 1; i < std::max(1, s.attempts) && hi < ctx.settings.retry_max_seconds; ++i) hi *= 2;
  hi = std::min<std::int64_t>(hi, ctx.settings.retry_max_seconds);
  auto from = s.updated_at + seconds(lo);
  auto to = s.updated_at + seconds(hi);
  if (lo == hi) return FormatTime(from);
  return fmt::format("{} – {}", FormatTime(from), FormatTime(to).substr(11));
}

data StatusRow(const PageContext& ctx, const EmailStatus& s) {
  data row;
  row.set("id", s.id);
  row.set("to", Joined(s.recipients));
  row.set("subject", s.subject);
  row.set("priority", Lane(s.queue));
  row.set("state", s.state);
  row.set("attempts", std::to_string(s.attempts));
  row.set("next_attempt", NextAttempt(ctx, s));
  const std::string code = std::to_string(s.reply_code);
  row.set("last_error", s.reply_code && !s.last_error.starts_with(code)
                            ? fmt::format("{} {}", code, s.last_error)
                            : s.last_error);
  row.set("updated", FormatTime(s.updated_at));
  row.set("detail", s.state == "sent" ? s.reply : s.last_error);
  return row;
}

std::string QueueError(const Error& e) {
  return fmt::format("cannot read the queue: {}", e.ToString());
}

}  // namespace

std::string RenderTemplate(std::string_view name, data& values) {
  std::string file = std::string(name) + ".mustache";
  for (const auto& asset : Assets()) {
    if (asset.name != file) continue;
    mustache tmpl{std::string(asset.bytes)};
    if (!tmpl.is_valid()) {
      throw std::runtime_error(fmt::format("template {}: {}", file, tmpl.error_message()));
    }
    tmpl.set_custom_escape([](const std::string& s) { return HtmlEscape(s); });
    return tmpl.render(values);
  }
  throw std::runtime_error(fmt::format("template {} is not embedded", file));
}

DashboardResponse RenderPage(const PageContext& ctx, const Page& page) {
  data values;
  values.set("title", page.title);
  data nav{data::type::list};
  for (auto [href, label] : {std::pair{"/", "Queues"},
                             {"/messages", "Messages"},
                             {"/dead-letters", "Dead letters"},
                             {"/sent", "Sent log"}}) {
    data item;
    item.set("href", href);
    item.set("label", label);
    item.set("current", page.nav == href);
    nav.push_back(item);
  }
  values.set("nav", nav);
  values.set("can_logout", ctx.can_logout);
  values.set("csrf", ctx.csrf);
  if (!page.flash.empty()) values.set("flash", page.flash);
  if (!page.error.empty()) values.set("error", page.error);
  values.set("content", page.content);
  values.set("now", FormatTime(ctx.now));
  DashboardResponse response;
  response.status = page.status;
  response.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
  response.body = RenderTemplate("layout", values);
  return response;
}

DashboardResponse ErrorPage(const PageContext& ctx, int status, std::string_view message) {
  data values;
  values.set("message", std::string(message));
  Page page;
  page.status = status;
  page.title = status == 404 ? "Not found" : status == 403 ? "Forbidden" : "Error";
  page.content = RenderTemplate("error", values);
  return RenderPage(ctx, page);
}

std::string ThroughputSvg(const std::vector<std::int64_t>& sent,
                          const std::vector<std::int64_t>& failed) {
  const std::size_t n = std::max(sent.size(), failed.size());
  std::int64_t top = 1;
  for (std::size_t i = 0; i < n; ++i) {
    top = std::max(top, (i < sent.size() ? sent[i] : 0) + (i < failed.size() ? failed[i] : 0));
  }
  constexpr int kWidth = 120, kHeight = 40, kBar = 10;
  std::string label = "Sent per 5 minutes over the last hour, oldest first:";
  for (std::size_t i = 0; i < n; ++i) {
    label += fmt::format(" {}", i < sent.size() ? sent[i] : 0);
    if (i < failed.size() && failed[i] > 0) label += fmt::format(" (+{} failed)", failed[i]);
  }
  std::string svg = fmt::format(
      "<svg class=\"chart\" viewBox=\"0 0 {} {}\" preserveAspectRatio=\"none\" role=\"img\" "
      "aria-label=\"{}\">",
      kWidth, kHeight + 1, HtmlEscape(label));
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t s = i < sent.size() ? sent[i] : 0;
    const std::int64_t f = i < failed.size() ? failed[i] : 0;
    const int x = static_cast<int>(i) * kBar;
    const int hs = static_cast<int>(s * kHeight / top);
    const int hf = static_cast<int>(f * kHeight / top);
    if (hs > 0) {
      svg += fmt::format("<rect class=\"sent\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                         x + 1, kHeight - hs, kBar - 2, hs);
    }
    if (hf > 0) {
      svg += fmt::format("<rect class=\"failed\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\"/>",
                         x + 1, kHeight - hs - hf, kBar - 2, hf);
    }
  }
  svg += fmt::format("<line class=\"axis\" x1=\"0\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\"/></svg>",
                     kHeight, kWidth);
  return svg;
}

std::shared_ptr<Queue> FindDeadLetterQueue(const DashboardSources& sources, std::string_view name) {
  for (const auto& q : {sources.queues.priority_dlq, sources.queues.regular_dlq}) {
    if (q && q->name() == name) return q;
  }
  return nullptr;
}

// --- queues -----------------------------------------------------------------

Page QueuesPage(const PageContext& ctx) {
  const auto& qs = ctx.sources.queues;
  const auto now = ctx.now;
  // Dead e-mails of the last hour, by source queue and bucket.
  std::map<std::string, std::vector<std::int64_t>> failed;
  std::string status_error;
  if (ctx.sources.state) {
    auto dead = ctx.sources.state->ListStatus("dead", kStatusScan);
    if (dead) {
      for (const auto& s : *dead) {
        auto age = std::chrono::duration_cast<seconds>(now - s.updated_at).count();
        if (age < 0 || age >= 3600) continue;
        auto& buckets = failed[s.queue];
        buckets.resize(kBuckets);
        ++buckets[kBuckets - 1 - static_cast<int>(age / 300)];
      }
    } else {
      status_error = dead.error().ToString();
    }
  }

  data list{data::type::list};
  std::string page_error;
  for (const auto& [queue, dlq] :
       {std::pair{qs.priority, qs.priority_dlq}, {qs.regular, qs.regular_dlq}}) {
    for (const auto& q : {queue, dlq}) {
      if (!q) continue;
      const bool lane = q == queue;
      data card;
      card.set("name", q->name());
      card.set("depth_alarm", std::to_string(ctx.settings.depth_alarm));
      auto stats = q->GetQueueAttributes();
      if (stats) {
        const std::int64_t depth = stats->approximate_number_of_messages +
                                   stats->approximate_number_of_messages_not_visible +
                                   stats->approximate_number_of_messages_delayed;
        card.set("available", std::to_string(stats->approximate_number_of_messages));
        card.set("in_flight", std::to_string(stats->approximate_number_of_messages_not_visible));
        card.set("delayed", std::to_string(stats->approximate_number_of_messages_delayed));
        card.set("oldest", FormatAge(stats->approximate_age_of_oldest_message_seconds));
        card.set("depth", std::to_string(depth));
        card.set("alarm", depth > ctx.settings.depth_alarm);
      } else {
        card.set("error", QueueError(stats.error()));
        for (auto k : {"available", "in_flight", "delayed", "oldest"}) card.set(k, "—");
      }
      card.set("dlq", !lane);
      if (lane) {
        data lane_data;
        std::vector<std::int64_t> sent(kBuckets, 0);
        std::string sent_total = "—";
        if (ctx.sources.state) {
          // CountSince at each bucket edge; differences are the buckets.
          std::vector<std::int64_t> since(kBuckets + 1, 0);
          bool ok = true;
          for (int i = 0; i <= kBuckets && ok; ++i) {
            auto count =
                ctx.sources.state->CountSentSince(now - minutes(5 * (kBuckets - i)), q->name());
            if (!count) {
              ok = false;
              page_error = fmt::format("cannot read the sent log: {}", count.error().ToString());
            } else {
              since[static_cast<std::size_t>(i)] = *count;
            }
          }
          if (ok) {
            for (int i = 0; i < kBuckets; ++i) {
              sent[static_cast<std::size_t>(i)] =
                  since[static_cast<std::size_t>(i)] - since[static_cast<std::size_t>(i) + 1];
            }
            sent_total = std::to_string(since[0]);
          }
        }
        auto f = failed[q->name()];
        f.resize(kBuckets);
        std::int64_t failed_total = 0;
        for (auto v : f) failed_total += v;
        lane_data.set("sent", sent_total);
        lane_data.set("failed", ctx.sources.state && status_error.empty()
                                    ? std::to_string(failed_total)
                                    : std::string("—"));
        lane_data.set("chart", ThroughputSvg(sent, f));
        card.set("lane", lane_data);
      }
      list.push_back(card);
    }
  }
  data values;
  values.set("queues", list);
  values.set("depth_alarm", std::to_string(ctx.settings.depth_alarm));
  Page page;
  page.title = "Queues";
  page.nav = "/";
  page.content = RenderTemplate("queues", values);
  if (!status_error.empty()) page_error = "cannot read the status store: " + status_error;
  page.error = page_error;
  return page;
}

// --- messages ---------------------------------------------------------------

Page MessagesPage(const PageContext& ctx) {
  data values;
  data rows{data::type::list};
  if (!ctx.sources.state) {
    values.set("unavailable",
               "No status store is configured, so waiting e-mails cannot be listed.");
  } else {
    std::vector<EmailStatus> all;
    for (auto state : {"sending", "retrying", "queued"}) {
      auto got = ctx.sources.state->ListStatus(state, kStatusScan);
      if (!got) {
        values.set("unavailable", "cannot read the status store: " + got.error().ToString());
        break;
      }
      all.insert(all.end(), got->begin(), got->end());
    }
    std::stable_sort(all.begin(), all.end(), [](const EmailStatus& a, const EmailStatus& b) {
      return a.created_at < b.created_at;
    });
    for (const auto& s : all) rows.push_back(StatusRow(ctx, s));
  }
  values.set("messages", rows);
  Page page;
  page.title = "Messages";
  page.nav = "/messages";
  page.content = RenderTemplate("messages", values);
  return page;
}

// --- dead letters -------------------------------------------------------------

namespace {

data DeadLetterData(const PageContext& ctx, const DeadLetter& d) {
  data row;
  row.set("queue", d.dlq);
  row.set("message_id", d.message.message_id);
  row.set("envelope_id", d.info.envelope_id);
  row.set("source_queue", d.info.source_queue);
  row.set("reason", d.info.reason);
  row.set("reply_code", d.info.reply_code ? std::to_string(d.info.reply_code) : std::string());
  row.set("reply", d.info.reply);
  row.set("attempts", d.info.attempts ? std::to_string(d.info.attempts) : std::string("—"));
  row.set("queued", FormatTime(d.message.sent_timestamp));
  row.set("csrf", ctx.csrf);
  if (d.email) {
    row.set("to", AddressList(d.email->to));
    row.set("from", AddressList({d.email->from}));
    row.set("subject", d.email->subject);
    row.set("priority", std::to_string(d.email->priority));
    row.set("previewable", true);
  } else {
    row.set("to", "(not an envelope)");
    row.set("parse_error", d.parse_error);
  }
  return row;
}

}  // namespace

Page DeadLettersPage(const PageContext& ctx) {
  data dlqs{data::type::list};
  for (const auto& q : {ctx.sources.queues.priority_dlq, ctx.sources.queues.regular_dlq}) {
    if (!q) continue;
    data section;
    section.set("name", q->name());
    section.set("csrf", ctx.csrf);
    data letters{data::type::list};
    auto page = PeekDeadLetters(*q, ctx.settings.max_dead_letters);
    if (page) {
      for (const auto& d : page->letters) letters.push_back(DeadLetterData(ctx, d));
      section.set("count", std::to_string(page->letters.size()) + (page->truncated ? "+" : ""));
      section.set("truncated", page->truncated);
      section.set("shown", std::to_string(page->letters.size()));
      section.set("has_letters", !page->letters.empty());
    } else {
      section.set("error", QueueError(page.error()));
      section.set("count", "?");
    }
    section.set("letters", letters);
    dlqs.push_back(section);
  }
  data values;
  values.set("dlqs", dlqs);
  Page page;
  page.title = "Dead letters";
  page.nav = "/dead-letters";
  page.content = RenderTemplate("dead_letters", values);
  return page;
}

namespace {

Result<DeadLetter> FindDeadLetter(const PageContext& ctx, std::string_view dlq_name,
                                  std::string_view message_id) {
  auto dlq = FindDeadLetterQueue(ctx.sources, dlq_name);
  if (!dlq) {
    return MakeError(ErrorKind::kNotFound, "QueueDoesNotExist",
                     fmt::format("no dead-letter queue \"{}\"", dlq_name));
  }
  auto page = PeekDeadLetters(*dlq, ctx.settings.max_dead_letters);
  if (!page) return std::unexpected(page.error());
  for (auto& d : page->letters) {
    if (d.message.message_id == message_id) return std::move(d);
  }
  return MakeError(
      ErrorKind::kNotFound, "message_not_found",
      fmt::format("no message \"{}\" in {} (redriven or deleted?)", message_id, dlq_name));
}

int StatusFor(const Error& e) {
  switch (e.kind) {
    case ErrorKind::kNotFound:
      return 404;
    case ErrorKind::kInvalidInput:
      return 400;
    case ErrorKind::kTransient:
      return 503;
    default:
      return 500;
  }
}

}  // namespace

Page DeadLetterDetailPage(const PageContext& ctx, std::string_view dlq,
                          std::string_view message_id) {
  Page page;
  page.nav = "/dead-letters";
  auto found = FindDeadLetter(ctx, dlq, message_id);
  if (!found) {
    page.status = StatusFor(found.error());
    page.title = "Dead letter";
    data values;
    values.set("message", found.error().message);
    page.content = RenderTemplate("error", values);
    return page;
  }
  data values = DeadLetterData(ctx, *found);
  page.title = found->email ? "Dead letter: " + found->email->subject : "Dead letter";
  page.content = RenderTemplate("dead_letter", values);
  return page;
}

Page ConfirmPage(const PageContext& ctx, std::string_view dlq, std::string_view action,
                 const std::vector<std::string>& ids) {
  data values;
  values.set("csrf", ctx.csrf);
  values.set("queue", std::string(dlq));
  values.set("action", std::string(action));
  data list{data::type::list};
  for (const auto& id : ids) list.push_back(data(id));
  values.set("ids", list);
  const bool all = action.ends_with("-all");
  const bool del = action.starts_with("delete");
  std::string what =
      all ? fmt::format("every message in {}", dlq)
          : fmt::format("{} selected message{} in {}", ids.size(), ids.size() == 1 ? "" : "s", dlq);
  values.set("question", del ? fmt::format("Delete {}? Deleted e-mails are gone for good.", what)
                             : fmt::format("Send {} back to its queue for another try?", what));
  values.set("button", del ? "Delete" : "Redrive");
  values.set("button_class", del ? "danger" : "");
  Page page;
  page.title = del ? "Delete dead letters" : "Redrive dead letters";
  page.nav = "/dead-letters";
  page.content = RenderTemplate("confirm", values);
  return page;
}

// --- sent log and one e-mail --------------------------------------------------

Page SentPage(const PageContext& ctx, std::string_view query) {
  data values;
  values.set("q", std::string(query));
  data rows{data::type::list};
  std::string needle = Lower(query);
  if (!ctx.sources.state) {
    values.set("unavailable", "No status store is configured; search needs it.");
  } else {
    std::vector<EmailStatus> found;
    std::set<std::string> seen;
    if (!query.empty()) {
      if (auto exact = ctx.sources.state->GetStatus(query); exact && *exact) {
        seen.insert((*exact)->id);
        found.push_back(**exact);
      }
    }
    std::vector<std::string_view> states = {"sent"};
    if (!query.empty()) states = {"sent", "dead", "retrying", "sending", "queued"};
    for (auto state : states) {
      auto got = ctx.sources.state->ListStatus(state, query.empty() ? 50 : kStatusScan);
      if (!got) {
        values.set("unavailable", "cannot read the status store: " + got.error().ToString());
        break;
      }
      for (auto& s : *got) {
        if (found.size() >= kMaxSearchResults || seen.contains(s.id)) continue;
        bool match = needle.empty() || Lower(s.id).find(needle) != std::string::npos ||
                     Lower(s.subject).find(needle) != std::string::npos;
        for (const auto& r : s.recipients)
          match = match || Lower(r).find(needle) != std::string::npos;
        if (!match) continue;
        seen.insert(s.id);
        found.push_back(std::move(s));
      }
    }
    std::stable_sort(found.begin(), found.end(), [](const EmailStatus& a, const EmailStatus& b) {
      return a.updated_at > b.updated_at;
    });
    for (const auto& s : found) rows.push_back(StatusRow(ctx, s));
  }
  values.set("results", rows);
  values.set("empty", query.empty() ? "Nothing sent yet." : "No e-mail matches.");
  Page page;
  page.title = query.empty() ? "Sent log" : fmt::format("Sent log: “{}”", query);
  page.nav = "/sent";
  page.content = RenderTemplate("sent", values);
  return page;
}

Page EmailPage(const PageContext& ctx, std::string_view envelope_id) {
  Page page;
  page.nav = "/sent";
  page.title = fmt::format("E-mail {}", envelope_id);
  data values;
  values.set("id", std::string(envelope_id));
  std::optional<EmailStatus> status;
  if (ctx.sources.state) {
    auto got = ctx.sources.state->GetStatus(envelope_id);
    if (!got) {
      page.error = "cannot read the status store: " + got.error().ToString();
    } else {
      status = *got;
    }
  }
  std::optional<SentRecord> sent;
  if (ctx.sources.state) {
    auto got = ctx.sources.state->FindSent(envelope_id);
    if (!got) {
      page.error = "cannot read the sent log: " + got.error().ToString();
    } else {
      sent = *got;
    }
  }
  if (!status && !sent && page.error.empty()) {
    page.status = 404;
    data err;
    err.set("message", fmt::format("No e-mail with envelope id \"{}\" is recorded.", envelope_id));
    page.content = RenderTemplate("error", err);
    return page;
  }
  data events{data::type::list};
  auto event = [&](system_clock::time_point at, std::string state, std::string queue, int attempts,
                   int reply_code, std::string detail) {
    data e;
    e.set("at", FormatTime(at));
    e.set("event_state", std::move(state));
    // Only set what is there (kainjow's sections treat "" as true), under
    // names the page's own values do not use (sections fall back to them).
    if (!queue.empty()) e.set("event_queue", std::move(queue));
    if (attempts > 0) e.set("event_attempts", std::to_string(attempts));
    const std::string code = std::to_string(reply_code);
    if (reply_code > 0 && !detail.starts_with(code)) e.set("event_reply_code", code);
    e.set("event_detail", std::move(detail));
    events.push_back(e);
  };
  if (status) {
    values.set("state", status->state);
    values.set("queue", status->queue);
    values.set("to", Joined(status->recipients));
    values.set("subject", status->subject);
    values.set("priority", Lane(status->queue));
    values.set("attempts", std::to_string(status->attempts));
    if (auto next = NextAttempt(ctx, *status); !next.empty()) values.set("next_attempt", next);
    if (auto detail = status->state == "sent" ? status->reply : status->last_error;
        !detail.empty()) {
      values.set("detail", detail);
    }
    // The store keeps the first and the latest event (and the time of "sent").
    event(status->created_at, "queued", "", 0, 0, "");
    if (status->state != "queued" || status->updated_at != status->created_at) {
      event(status->updated_at, status->state, status->queue, status->attempts, status->reply_code,
            status->state == "sent" ? status->reply : status->last_error);
    }
    if (status->state == "dead") {
      // Its envelope is in a DLQ: link the dead letter and its preview.
      for (const auto& q : {ctx.sources.queues.priority_dlq, ctx.sources.queues.regular_dlq}) {
        if (!q) continue;
        auto letters = PeekDeadLetters(*q, ctx.settings.max_dead_letters);
        if (!letters) continue;
        for (const auto& d : letters->letters) {
          if (d.info.envelope_id != envelope_id) continue;
          data link;
          link.set("dlq", UrlEncode(q->name()));
          link.set("message_id", UrlEncode(d.message.message_id));
          values.set("dead_letter", link);
        }
      }
    }
  } else {
    values.set("state", "sent");
  }
  if (sent) {
    data s;
    s.set("sent_at", FormatTime(sent->sent_at));
    s.set("message_id", sent->message_id);
    s.set("transport", sent->transport);
    s.set("provider_message_id", sent->provider_message_id);
    s.set("reply", sent->reply);
    s.set("attempts", std::to_string(sent->attempts));
    data rejected{data::type::list};
    for (const auto& r : sent->rejected_recipients) rejected.push_back(data(r));
    s.set("rejected", rejected);
    values.set("sent", s);
  }
  values.set("events", events);
  page.content = RenderTemplate("email", values);
  return page;
}

// --- preview ----------------------------------------------------------------

namespace {

// Header fields of a composed message, unfolded.
std::vector<std::pair<std::string, std::string>> HeaderFields(std::string_view message) {
  std::vector<std::pair<std::string, std::string>> out;
  auto end = message.find("\r\n\r\n");
  std::string_view head = message.substr(0, end);
  while (!head.empty()) {
    auto eol = head.find("\r\n");
    std::string_view line = head.substr(0, eol);
    head = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t') && !out.empty()) {
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      out.back().second += " ";
      out.back().second += line;
      continue;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    out.emplace_back(std::string(line.substr(0, colon)), std::string(value));
  }
  return out;
}

std::string SizeText(std::size_t n) {
  if (n < 1024) return fmt::format("{} bytes", n);
  if (n < 1024 * 1024) return fmt::format("{:.1f} KiB", static_cast<double>(n) / 1024);
  return fmt::format("{:.1f} MiB", static_cast<double>(n) / (1024 * 1024));
}

// Headers for content taken from a message: no script, no plugins, no
// same-origin access, not sniffed.
void UntrustedHeaders(DashboardResponse& r) {
  r.headers.emplace_back("Content-Security-Policy",
                         "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                         "frame-ancestors 'self'");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
}

}  // namespace

DashboardResponse PreviewDeadLetter(const PageContext& ctx, std::string_view dlq,
                                    std::string_view message_id, std::string_view part,
                                    std::string_view index) {
  auto found = FindDeadLetter(ctx, dlq, message_id);
  if (!found) return ErrorPage(ctx, StatusFor(found.error()), found.error().message);
  if (!found->email) {
    return ErrorPage(ctx, 422, "The body is not a valid envelope: " + found->parse_error);
  }
  const Email& email = *found->email;
  const std::string base = fmt::format("/preview/dlq/{}/{}", UrlEncode(dlq), UrlEncode(message_id));
  if (part == "html") {
    DashboardResponse r;
    r.headers.emplace_back("Content-Type", "text/html; charset=utf-8");
    UntrustedHeaders(r);
    r.body = email.html;
    return r;
  }
  if (part == "attachment") {
    std::size_t i = 0;
    try {
      i = std::stoul(std::string(index));
    } catch (...) {
      i = email.attachments.size();
    }
    if (i >= email.attachments.size()) return ErrorPage(ctx, 404, "No such attachment.");
    const auto& a = email.attachments[i];
    DashboardResponse r;
    const bool pdf = a.content_type == "application/pdf";
    r.headers.emplace_back("Content-Type", pdf ? "application/pdf" : "application/octet-stream");
    r.headers.emplace_back("Content-Disposition",
                           fmt::format("{}; filename=\"attachment-{}{}\"",
                                       pdf ? "inline" : "attachment", i, pdf ? ".pdf" : ""));
    UntrustedHeaders(r);
    r.body = a.content;
    return r;
  }
  auto composed = ComposeMessage(email, ComposeOptions{ctx.now});
  if (!composed) return ErrorPage(ctx, 422, composed.error().ToString());
  if (part == "eml") {
    DashboardResponse r;
    r.headers.emplace_back("Content-Type", "message/rfc822");
    r.headers.emplace_back("Content-Disposition",
                           fmt::format("attachment; filename=\"{}.eml\"", UrlEncode(email.id)));
    UntrustedHeaders(r);
    r.body = *composed;
    return r;
  }
  if (!part.empty()) return ErrorPage(ctx, 404, "No such part.");
  data values;
  values.set("base", base);
  values.set("source", fmt::format("Composed from the envelope in {} as the worker would send it "
                                   "(Date is now).",
                                   dlq));
  data headers{data::type::list};
  for (const auto& [name, value] : HeaderFields(*composed)) {
    data h;
    h.set("name", name);
    h.set("value", value);
    headers.push_back(h);
  }
  values.set("headers", headers);
  values.set("has_html", !email.html.empty());
  values.set("text", email.text);
  data attachments{data::type::list};
  for (std::size_t i = 0; i < email.attachments.size(); ++i) {
    data a;
    a.set("base", base);
    a.set("index", std::to_string(i));
    a.set("filename", email.attachments[i].filename);
    a.set("content_type", email.attachments[i].content_type);
    a.set("size", SizeText(email.attachments[i].content.size()));
    attachments.push_back(a);
  }
  values.set("has_attachments", !email.attachments.empty());
  values.set("attachments", attachments);
  Page page;
  page.title = "Preview: " + email.subject;
  page.nav = "/dead-letters";
  page.content = RenderTemplate("preview", values);
  return RenderPage(ctx, page);
}

}  // namespace postline::dashboard_internal
