// The folder blob store (embedded mode, POSTLINE_BLOB_DIR).
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "postline/blob_store.h"

namespace postline {
namespace {

namespace fs = std::filesystem;

class FolderBlobStore final : public BlobStore {
 public:
  explicit FolderBlobStore(std::string dir) : dir_(std::move(dir)) {}

  Result<void> Put(std::string_view key, std::string_view bytes) override {
    if (!ValidBlobKey(key)) return BlobKeyError(key);
    std::error_code ec;
    fs::create_directories(dir_, ec);
    const std::string path = fmt::format("{}/{}", dir_, key);
    const std::string tmp = path + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return BlobStoreUnavailable(fmt::format("cannot create {}: {}", tmp, std::strerror(errno)));
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        ::close(fd);
        return BlobStoreUnavailable(fmt::format("cannot write {}: {}", tmp, std::strerror(errno)));
      }
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0 || ::close(fd) != 0) {
      return BlobStoreUnavailable(fmt::format("cannot sync {}", tmp));
    }
    fs::rename(tmp, path, ec);
    if (ec) return BlobStoreUnavailable(fmt::format("cannot rename {}: {}", tmp, ec.message()));
    int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
    return {};
  }

  Result<std::string> Get(std::string_view key) override {
    if (!ValidBlobKey(key)) return BlobKeyError(key);
    std::ifstream in(fmt::format("{}/{}", dir_, key), std::ios::binary);
    if (!in) {
      return MakeError(ErrorKind::kNotFound, "blob_not_found",
                       fmt::format("blob {} is not in {}", key, dir_));
    }
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  Result<void> Delete(std::string_view key) override {
    if (!ValidBlobKey(key)) return BlobKeyError(key);
    std::error_code ec;
    fs::remove(fmt::format("{}/{}", dir_, key), ec);
    if (ec) return BlobStoreUnavailable(fmt::format("cannot remove blob {}: {}", key, ec.message()));
    return {};
  }

 private:
  std::string dir_;
};
}  // namespace

std::shared_ptr<BlobStore> NewFolderBlobStore(std::string dir) {
  return std::make_shared<FolderBlobStore>(std::move(dir));
}

}  // namespace postline
