#include "app/render_settings.h"

namespace postline::app {

invoice::InvoiceRenderSettings RenderSettingsFrom(const Settings& s) {
  invoice::InvoiceRenderSettings r;
  r.locale = s.locale;
  r.page = s.page_size == "Letter" ? invoice::PageSize::kLetter : invoice::PageSize::kA4;
  r.frontend_url = s.frontend_url;
  r.pay_path = s.pay_path;
  r.template_dir = s.template_dir;
  r.default_template_dir = POSTLINE_TEMPLATES_DIR;
  return r;
}

}  // namespace postline::app
