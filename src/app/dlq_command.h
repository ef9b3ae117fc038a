// `postline dlq list|show|redrive|purge`: inspect and move dead letters.
#pragma once

#include "app/context.h"

namespace postline::app {

Command RegisterDlqCommand(CLI::App& app);

}  // namespace postline::app
