// Test support for the queue module's tests: a settable clock and a
// temporary directory that removes itself.
#pragma once

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>

#include "postline/clock.h"

namespace postline::testing_support {

// A clock that moves only when told to. Now() and SteadyNow() move together.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(std::int64_t start_unix_millis = 1'767'225'600'000)  // 2026-01-01
      : millis_(start_unix_millis) {}

  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::time_point(std::chrono::milliseconds(millis_.load()));
  }
  std::chrono::steady_clock::time_point SteadyNow() const override {
    return std::chrono::steady_clock::time_point(std::chrono::milliseconds(millis_.load()));
  }
  void Advance(std::chrono::milliseconds by) { millis_ += by.count(); }

 private:
  std::atomic<std::int64_t> millis_;
};

// mkdtemp under $TMPDIR (or /tmp); removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string pattern =
        (std::filesystem::temp_directory_path() / "postline-queue-XXXXXX").string();
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace postline::testing_support
