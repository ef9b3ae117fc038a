// The production Env: POSIX files, std::chrono clocks, OpenSSL randomness.
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "postline/env.h"

namespace postline {
namespace {

std::unexpected<Error> IoError(std::string_view what, const std::string& path, int err) {
  return MakeError(ErrorKind::kTransient, "io_error",
                   fmt::format("cannot {} \"{}\": {}", what, path, std::strerror(err)));
}

std::unexpected<Error> NotFound(const std::string& path, std::string_view why) {
  return MakeError(ErrorKind::kNotFound, "file_not_found", fmt::format("\"{}\" {}", path, why));
}

// A file descriptor closed on scope exit.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  // Closes now; returns 0 or errno.
  int Close() {
    const int fd = fd_;
    fd_ = -1;
    return ::close(fd) == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

int WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return 0;
}

std::string Parent(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

class PosixEnv final : public Env {
 public:
  Result<std::string> ReadFile(const std::string& path, std::size_t max_bytes) override {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
      if (errno == ENOENT || errno == ENOTDIR) return NotFound(path, "does not exist");
      return IoError("open", path, errno);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return IoError("stat", path, errno);
    if (S_ISDIR(st.st_mode)) return NotFound(path, "is a directory, not a file");
    std::string out;
    if (S_ISREG(st.st_mode)) {
      if (static_cast<std::uint64_t>(st.st_size) > max_bytes) return TooLarge(path, max_bytes);
      out.reserve(static_cast<std::size_t>(st.st_size));
    }
    char buf[65536];
    while (true) {
      const ssize_t n = ::read(fd.get(), buf, sizeof buf);
      if (n < 0) {
        if (errno == EINTR) continue;
        return IoError("read", path, errno);
      }
      if (n == 0) break;
      if (out.size() + static_cast<std::size_t>(n) > max_bytes) return TooLarge(path, max_bytes);
      out.append(buf, static_cast<std::size_t>(n));
    }
    return out;
  }

  Result<void> WriteFileAtomic(const std::string& path, std::string_view data,
                               bool sync) override {
    std::string tmp = path + ".tmp-XXXXXX";
    UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
    if (fd.get() < 0) return IoError("create a temporary file for", path, errno);
    int err = WriteAll(fd.get(), data);
    if (err == 0 && ::fchmod(fd.get(), 0644) != 0) err = errno;
    if (err == 0 && sync && ::fsync(fd.get()) != 0) err = errno;
    if (const int closed = fd.Close(); err == 0) err = closed;
    if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
    if (err != 0) {
      ::unlink(tmp.c_str());
      return IoError("write", path, err);
    }
    if (sync) {
      const std::string dir = Parent(path);
      UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (dfd.get() < 0) return IoError("open directory", dir, errno);
      if (::fsync(dfd.get()) != 0) return IoError("sync directory", dir, errno);
    }
    return {};
  }

  Result<void> CreateDirectories(const std::string& path) override {
    if (path.empty()) return {};
    std::string partial;
    std::size_t pos = 0;
    while (pos != std::string::npos) {
      pos = path.find('/', pos + 1);
      partial = path.substr(0, pos);
      if (partial.empty()) continue;
      if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) {
        return IoError("create directory", partial, errno);
      }
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return IoError("create directory", path, errno);
    if (!S_ISDIR(st.st_mode)) return IoError("create directory", path, ENOTDIR);
    return {};
  }

  Result<void> RemoveFile(const std::string& path) override {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return IoError("remove", path, errno);
    return {};
  }

  Result<bool> FileExists(const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) return true;
    if (errno == ENOENT || errno == ENOTDIR) return false;
    return IoError("stat", path, errno);
  }

  Result<std::vector<std::string>> ListDirectory(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) {
      if (errno == ENOENT) return NotFound(path, "does not exist");
      return IoError("list", path, errno);
    }
    std::vector<std::string> names;
    while (const dirent* entry = ::readdir(dir)) {
      const std::string_view name = entry->d_name;
      if (name != "." && name != "..") names.emplace_back(name);
    }
    ::closedir(dir);
    std::sort(names.begin(), names.end());
    return names;
  }

  Result<std::chrono::system_clock::time_point> ModificationTime(
      const std::string& path) override {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      if (errno == ENOENT || errno == ENOTDIR) return NotFound(path, "does not exist");
      return IoError("stat", path, errno);
    }
    return std::chrono::system_clock::time_point(std::chrono::seconds(st.st_mtim.tv_sec) +
                                                 std::chrono::nanoseconds(st.st_mtim.tv_nsec));
  }

  std::chrono::system_clock::time_point Now() const override {
    return std::chrono::system_clock::now();
  }
  std::chrono::steady_clock::time_point SteadyNow() const override {
    return std::chrono::steady_clock::now();
  }

  bool SleepFor(std::chrono::milliseconds duration, std::stop_token stop) override {
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lock(mu);
    // wait_for with a stop token returns early when stop is requested.
    return !cv.wait_for(lock, stop, duration, [] { return false; }) && !stop.stop_requested();
  }

  void RandomBytes(std::span<std::uint8_t> out) override {
    if (out.empty()) return;
    if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
      std::fputs("postline: the random number source failed\n", stderr);
      std::abort();
    }
  }

 private:
  static std::unexpected<Error> TooLarge(const std::string& path, std::size_t max_bytes) {
    return InvalidInput("too_large",
                        fmt::format("\"{}\" is larger than {} bytes", path, max_bytes));
  }
};

}  // namespace

std::shared_ptr<Env> DefaultEnv() {
  static const std::shared_ptr<Env> env = std::make_shared<PosixEnv>();
  return env;
}

}  // namespace postline
