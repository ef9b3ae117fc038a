// postline — the command-line entry point: reads configuration, wires the
// modules together and runs one subcommand. No logic worth a unit test lives
// here; each piece is a module function with its own tests.
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "app/commands.h"
#include "app/context.h"

int main(int argc, char** argv) {
  // Signals are handled by a dedicated thread (sigwait), so block them in
  // every thread before any is started.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR2);  // wakes the signal thread at exit
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return postline::app::RunCli(argc, argv, signals);
}
