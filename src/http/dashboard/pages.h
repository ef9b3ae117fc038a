// The dashboard's pages: data from the sources → mustache templates.
#pragma once

#include <chrono>
#include <cstdint>
#include <kainjow/mustache.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "postline/dashboard.h"

namespace postline::dashboard_internal {

// What every page needs besides its own data.
struct PageContext {
  const DashboardSettings& settings;
  const DashboardSources& sources;
  std::string csrf;         // the session's CSRF token
  bool can_logout = false;  // a token is configured and the session logged in
  std::chrono::system_clock::time_point now;
};

struct Page {
  int status = 200;
  std::string title;
  std::string nav;      // href of the current navigation entry
  std::string content;  // rendered HTML
  std::string flash;    // notice (text)
  std::string error;    // error (text)
};

// Renders the embedded mustache template `name` (without ".mustache") with
// every {{value}} escaped by HtmlEscape. Throws std::runtime_error when the
// template is missing or malformed (a build defect).
std::string RenderTemplate(std::string_view name, kainjow::mustache::data& data);

// The whole document: layout around page.content.
DashboardResponse RenderPage(const PageContext& ctx, const Page& page);

// An HTML error page with `status` and the text `message`.
DashboardResponse ErrorPage(const PageContext& ctx, int status, std::string_view message);

// The inline SVG bar chart: `sent` and `failed` per bucket, oldest first.
std::string ThroughputSvg(const std::vector<std::int64_t>& sent,
                          const std::vector<std::int64_t>& failed);

Page QueuesPage(const PageContext& ctx);
Page MessagesPage(const PageContext& ctx);
Page DeadLettersPage(const PageContext& ctx);
Page DeadLetterDetailPage(const PageContext& ctx, std::string_view dlq,
                          std::string_view message_id);
Page ConfirmPage(const PageContext& ctx, std::string_view dlq, std::string_view action,
                 const std::vector<std::string>& ids);
Page SentPage(const PageContext& ctx, std::string_view query);
Page EmailPage(const PageContext& ctx, std::string_view envelope_id);
// /preview/dlq/<dlq>/<message id>[/html | /eml | /attachment/<n>]
DashboardResponse PreviewDeadLetter(const PageContext& ctx, std::string_view dlq,
                                    std::string_view message_id, std::string_view part,
                                    std::string_view index);

// The DLQ named `name` among the sources' queues, or null.
std::shared_ptr<Queue> FindDeadLetterQueue(const DashboardSources& sources, std::string_view name);

}  // namespace postline::dashboard_internal
