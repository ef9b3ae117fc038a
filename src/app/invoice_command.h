// `postline invoice render|send`.
#pragma once

#include "app/context.h"

namespace postline::app {

Command RegisterInvoiceCommand(CLI::App& app);

}  // namespace postline::app
