// postline/env.h — the operating-system seam: files, time, sleeping and
// randomness, behind one injected interface (leveldb's Env).
//
// Everything in postline that touches the file system, reads the time,
// sleeps or draws random bytes does it through an Env passed to its
// constructor, with DefaultEnv() as the production default. Tests pass a
// FakeEnv (src/testing) or an EnvWrapper that overrides one call: a disk that
// fails on sync, a clock that jumps, a sleep that returns at once.
//
// Env is a Clock (postline/clock.h), so anything that only needs the time
// takes a Clock and can be handed an Env.
//
// Errors (Error::code): "file_not_found" (kNotFound) when a path does not
// exist; "too_large" (kInvalidInput) when a file exceeds the caller's bound;
// "io_error" (kTransient: full disk, I/O error, permission) otherwise, with
// the path and strerror in the message and `field` naming what the caller
// said the path is for.
//
// Thread-safety: implementations are safe to call from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "postline/clock.h"
#include "postline/error.h"

namespace postline {

class Env : public Clock {
 public:
  ~Env() override = default;

  // --- files ------------------------------------------------------------------

  // The whole content of the regular file at `path`. Errors:
  // "file_not_found" (also for a directory: the message says so);
  // "too_large" when the file holds more than `max_bytes`; "io_error".
  virtual Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes) = 0;

  // Replaces the file at `path` with `data` atomically: written to a
  // temporary file in the same directory, synced (when `sync`), renamed over
  // `path`, and the directory synced (when `sync`). Readers see the old or
  // the new content, never a part. A failure removes the temporary file and
  // leaves `path` as it was. Errors: "io_error".
  virtual Result<void> WriteFileAtomic(const std::string& path, std::string_view data,
                                       bool sync) = 0;

  // Creates `path` and its missing parents; an existing directory is fine.
  // Errors: "io_error".
  virtual Result<void> CreateDirectories(const std::string& path) = 0;

  // Removes the file at `path`; a missing file is not an error. Errors:
  // "io_error".
  virtual Result<void> RemoveFile(const std::string& path) = 0;

  // True when something exists at `path`. Errors: "io_error" when that
  // cannot be told (permission).
  virtual Result<bool> FileExists(const std::string& path) = 0;

  // The names (not paths) of the entries of directory `path`, sorted.
  // Errors: "file_not_found", "io_error".
  virtual Result<std::vector<std::string>> ListDirectory(const std::string& path) = 0;

  // When the file at `path` was last modified (for age-based clean-up).
  // Errors: "file_not_found", "io_error".
  virtual Result<std::chrono::system_clock::time_point> ModificationTime(
      const std::string& path) = 0;

  // --- time (Clock) -------------------------------------------------------------

  std::chrono::system_clock::time_point Now() const override = 0;
  std::chrono::steady_clock::time_point SteadyNow() const override = 0;

  // Sleeps for `duration`, or until `stop` is requested (whichever first).
  // Returns false when it returned early because of `stop`.
  virtual bool SleepFor(std::chrono::milliseconds duration, std::stop_token stop = {}) = 0;

  // --- randomness ------------------------------------------------------------------

  // Fills `out` with cryptographically strong random bytes (OpenSSL's
  // RAND_bytes in production). Never fails: a failing source aborts the
  // process, since identifiers and receipt handles depend on it.
  virtual void RandomBytes(std::span<std::uint8_t> out) = 0;
};

// The production Env: POSIX files (fsync, rename), std::chrono clocks,
// condition-variable sleeps that wake on stop, OpenSSL randomness. A
// process-wide instance that lives until exit; never null.
std::shared_ptr<Env> DefaultEnv();

// Forwards every call to `target`; a test derives from it and overrides the
// one call it wants to change. `target` must outlive the wrapper's use.
class EnvWrapper : public Env {
 public:
  explicit EnvWrapper(std::shared_ptr<Env> target) : target_(std::move(target)) {}

  Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes) override {
    return target_->ReadFile(path, max_bytes);
  }
  Result<void> WriteFileAtomic(const std::string& path, std::string_view data,
                               bool sync) override {
    return target_->WriteFileAtomic(path, data, sync);
  }
  Result<void> CreateDirectories(const std::string& path) override {
    return target_->CreateDirectories(path);
  }
  Result<void> RemoveFile(const std::string& path) override { return target_->RemoveFile(path); }
  Result<bool> FileExists(const std::string& path) override { return target_->FileExists(path); }
  Result<std::vector<std::string>> ListDirectory(const std::string& path) override {
    return target_->ListDirectory(path);
  }
  Result<std::chrono::system_clock::time_point> ModificationTime(
      const std::string& path) override {
    return target_->ModificationTime(path);
  }
  std::chrono::system_clock::time_point Now() const override { return target_->Now(); }
  std::chrono::steady_clock::time_point SteadyNow() const override {
    return target_->SteadyNow();
  }
  bool SleepFor(std::chrono::milliseconds duration, std::stop_token stop = {}) override {
    return target_->SleepFor(duration, std::move(stop));
  }
  void RandomBytes(std::span<std::uint8_t> out) override { target_->RandomBytes(out); }

  Env& target() const { return *target_; }

 private:
  std::shared_ptr<Env> target_;
};

}  // namespace postline
