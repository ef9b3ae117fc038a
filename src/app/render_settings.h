// Invoice render settings from the configuration, shared by `postline
// invoice` and the HTTP API.
#pragma once

#include "postline/config.h"
#include "postline/invoice.h"

namespace postline::app {

// POSTLINE_LOCALE, POSTLINE_PAGE_SIZE, FRONTEND_URL, POSTLINE_PAY_PATH,
// POSTLINE_TEMPLATE_DIR, and the built-in templates folder.
invoice::InvoiceRenderSettings RenderSettingsFrom(const Settings& s);

}  // namespace postline::app
