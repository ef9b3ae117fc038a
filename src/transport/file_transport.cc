// The file transport: each message becomes <outbox>/<envelope_id>.eml,
// written atomically (temporary file in the same directory, fsync, rename,
// fsync of the directory), so a reader of the outbox never sees a partial
// message and a written message survives a crash.

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "postline/transport.h"

namespace postline {
namespace {

// Owns a file descriptor; closes it (ignoring errors) unless released.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now and reports close()'s errno (0 on success).
  int Close() {
    int fd = std::exchange(fd_, -1);
    return ::close(fd) == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

std::string ErrnoText(int err) { return std::error_code(err, std::generic_category()).message(); }

// Envelope ids become file names: reject anything that could escape the
// outbox or hide the file.
std::string EnvelopeIdProblem(std::string_view id) {
  if (id.empty()) return "is empty";
  if (id.size() > 200) return fmt::format("is {} characters long (at most 200)", id.size());
  if (id.front() == '.') return "starts with '.'";
  for (char c : id) {
    if (c == '/' || c == '\\') return "contains a path separator";
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return "contains a control character";
  }
  return {};
}

int WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

int FsyncDirectory(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return errno;
  if (::fsync(fd.get()) != 0) return errno;
  return fd.Close();
}

SendResult Transient(std::string reply) {
  SendResult r;
  r.outcome = SendOutcome::kTransient;
  r.reply = std::move(reply);
  return r;
}

class FileTransport final : public Transport {
 public:
  explicit FileTransport(std::string outbox_dir)
      : dir_(outbox_dir.empty() ? std::string(".") : std::move(outbox_dir)) {}

  SendResult Send(const OutgoingMessage& message) override {
    try {
      return SendOrThrow(message);
    } catch (const std::exception& e) {
      return Transient(
          fmt::format("local failure while writing message {}: {}", message.envelope_id, e.what()));
    }
  }

  Result<void> Check() override {
    try {
      if (std::string problem = EnsureDirectory(); !problem.empty()) {
        return MakeError(ErrorKind::kTransient, "outbox_unwritable", problem,
                         "POSTLINE_OUTBOX_DIR");
      }
      auto [path, err] = WriteTemporary(".check", {});
      if (err != 0) {
        return MakeError(ErrorKind::kTransient, "outbox_unwritable",
                         fmt::format("cannot write in outbox {}: {}", dir_, ErrnoText(err)),
                         "POSTLINE_OUTBOX_DIR");
      }
      ::unlink(path.c_str());
      return {};
    } catch (const std::exception& e) {
      return MakeError(ErrorKind::kTransient, "outbox_unwritable",
                       fmt::format("local failure while checking outbox {}: {}", dir_, e.what()),
                       "POSTLINE_OUTBOX_DIR");
    }
  }

  std::string_view name() const override { return "file"; }

 private:
  // Creates the outbox (and parents). Returns a description of the failure,
  // or "" on success.
  std::string EnsureDirectory() const {
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    if (ec) return fmt::format("cannot create outbox directory {}: {}", dir_, ec.message());
    if (!std::filesystem::is_directory(dir_, ec)) {
      return fmt::format("outbox {} is not a directory", dir_);
    }
    return {};
  }

  // Writes `data` to a new hidden temporary file in the outbox and syncs it.
  // Returns its path and 0, or the path (possibly empty) and an errno.
  std::pair<std::string, int> WriteTemporary(std::string_view stem, std::string_view data) const {
    std::string templ = fmt::format("{}/.{}.XXXXXX", dir_, stem);
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    // mkostemp opens with O_CREAT | O_EXCL, so the name is ours alone.
    UniqueFd fd(::mkostemp(buf.data(), O_CLOEXEC));
    if (fd.get() < 0) return {std::string(), errno};
    std::string path(buf.data());
    int err = 0;
    if (::fchmod(fd.get(), 0644) != 0) err = errno;
    if (err == 0) err = WriteAll(fd.get(), data);
    if (err == 0 && ::fsync(fd.get()) != 0) err = errno;
    if (int close_err = fd.Close(); err == 0) err = close_err;
    if (err != 0) ::unlink(path.c_str());
    return {path, err};
  }

  SendResult SendOrThrow(const OutgoingMessage& message) {
    if (std::string problem = EnvelopeIdProblem(message.envelope_id); !problem.empty()) {
      SendResult r;
      r.outcome = SendOutcome::kPermanent;
      r.reply = fmt::format("envelope_id \"{}\" {}; it must be usable as a file name",
                            message.envelope_id, problem);
      return r;
    }
    if (std::string problem = EnsureDirectory(); !problem.empty()) return Transient(problem);

    std::string final_path = fmt::format("{}/{}.eml", dir_, message.envelope_id);
    auto [temp_path, err] = WriteTemporary(message.envelope_id + ".eml", message.data);
    if (err != 0) {
      return Transient(fmt::format("cannot write {}: {}", final_path, ErrnoText(err)));
    }
    if (message.before_commit) message.before_commit();
    if (::rename(temp_path.c_str(), final_path.c_str()) != 0) {
      int rename_err = errno;
      ::unlink(temp_path.c_str());
      return Transient(
          fmt::format("cannot rename {} to {}: {}", temp_path, final_path, ErrnoText(rename_err)));
    }
    if (int sync_err = FsyncDirectory(dir_); sync_err != 0) {
      // The file is in place but its directory entry may not be durable:
      // report a retry; writing it again is harmless (same name).
      return Transient(
          fmt::format("wrote {} but could not sync {}: {}", final_path, dir_, ErrnoText(sync_err)));
    }
    SendResult r;
    r.outcome = SendOutcome::kSent;
    r.reply = fmt::format("written to {}", final_path);
    r.provider_message_id = final_path;
    return r;
  }

  std::string dir_;
};

}  // namespace

std::unique_ptr<Transport> NewFileTransport(const std::string& outbox_dir) {
  return std::make_unique<FileTransport>(outbox_dir);
}

}  // namespace postline
