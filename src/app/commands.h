// The postline command line: subcommands and the wiring of modules.
#pragma once

#include <signal.h>

namespace postline::app {

// Exit codes (documented in the README).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;       // a runtime failure; `health`: unhealthy
inline constexpr int kExitConfig = 2;        // invalid configuration (.env / environment)
inline constexpr int kExitUsage = 64;        // bad command line (EX_USAGE)
inline constexpr int kExitDataErr = 65;      // invalid input data: envelope, invoice (EX_DATAERR)
inline constexpr int kExitNoInput = 66;      // an input file or attachment cannot be read (EX_NOINPUT)
inline constexpr int kExitUnavailable = 69;  // queue or transport unreachable (EX_UNAVAILABLE)
inline constexpr int kExitTempFail = 75;     // temporary failure; try again (EX_TEMPFAIL)

// Parses argv and runs the subcommand. `signals` are blocked in all threads
// and waited for by the long-running subcommands (worker).
int RunCli(int argc, char** argv, const sigset_t& signals);

}  // namespace postline::app
