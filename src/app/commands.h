// The postline command line: subcommands and the wiring of modules.
#pragma once

#include <signal.h>

namespace postline::app {

// Parses argv and runs the subcommand. `signals` are blocked in all threads
// and waited for by the long-running subcommands (worker).
int RunCli(int argc, char** argv, const sigset_t& signals);

}  // namespace postline::app
