// The S3 blob store (POSTLINE_BLOB_BUCKET with QUEUE_PROVIDER=sqs).
#include <fmt/format.h>

#include <string>

#include "postline/aws.h"
#include "postline/blob_store.h"

namespace postline {
namespace {

class S3BlobStore final : public BlobStore {
 public:
  S3BlobStore(std::shared_ptr<aws::AwsClient> client, std::string bucket)
      : client_(std::move(client)), bucket_(std::move(bucket)) {}

  Result<void> Put(std::string_view key, std::string_view bytes) override {
    if (!ValidBlobKey(key)) return BlobKeyError(key);
    auto r = Call("PUT", key, std::string(bytes));
    if (!r) return std::unexpected(r.error());
    return {};
  }

  Result<std::string> Get(std::string_view key) override {
    if (!ValidBlobKey(key)) return BlobKeyError(key);
    aws::ServiceError se;
    auto r = Call("GET", key, "", &se);
    if (!r) {
      if (se.http_status == 404 || se.code == "NoSuchKey") {
        return MakeError(ErrorKind::kNotFound, "blob_not_found",
                         fmt::format("blob {} is not in bucket {}", key, bucket_));
      }
      return std::unexpected(r.error());
    }
    return r->body;
  }

  Result<void> Delete(std::string_view key) override {
    if (!ValidBlobKey(key)) return BlobKeyError(key);
    aws::ServiceError se;
    auto r = Call("DELETE", key, "", &se);
    if (!r && se.http_status != 404) return std::unexpected(r.error());
    return {};
  }

 private:
  Result<aws::HttpResponse> Call(const std::string& method, std::string_view key, std::string body,
                                 aws::ServiceError* se = nullptr) {
    aws::HttpRequest request;
    request.method = method;
    request.path = fmt::format("/{}/postline-blobs/{}", bucket_, key);
    // S3 requires the payload hash as a signed header.
    request.headers = {fmt::format("x-amz-content-sha256: {}", aws::Sha256Hex(body))};
    if (method == "PUT") request.headers.push_back("Content-Type: application/octet-stream");
    request.body = std::move(body);
    request.timeout_ms = 120000;
    aws::ServiceError local;
    auto r = client_->Send(request, nullptr, {}, se ? se : &local);
    if (!r) {
      Error e = r.error();
      if (e.kind != ErrorKind::kPermanent) e.kind = ErrorKind::kTransient;
      if (e.code != "AccessDenied") e.code = "blob_store_unavailable";
      return std::unexpected(e);
    }
    return r;
  }

  std::shared_ptr<aws::AwsClient> client_;
  std::string bucket_;
};

}  // namespace

std::shared_ptr<BlobStore> NewS3BlobStore(std::shared_ptr<aws::AwsClient> client,
                                          std::string bucket) {
  return std::make_shared<S3BlobStore>(std::move(client), std::move(bucket));
}

}  // namespace postline
