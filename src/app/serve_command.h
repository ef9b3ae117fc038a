// `postline serve` (HTTP API + worker in one process) and `postline api`
// (the HTTP API alone, for scale-out).
#pragma once

#include "app/context.h"

namespace postline::app {

Command RegisterServeCommand(CLI::App& app);
Command RegisterApiCommand(CLI::App& app);

}  // namespace postline::app
