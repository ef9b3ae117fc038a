// postline/blob_store.h — large e-mails: bodies above the queue's
// MaximumMessageSize go to a blob store; the queue carries a pointer.
//
// The pattern of the Amazon SQS Extended Client Library: OffloadingQueue
// wraps a Queue. SendMessage(Batch) with a body + attributes larger than the
// queue's MaximumMessageSize stores the body (the whole encoded envelope,
// attachments included) under a fresh key and sends instead a small pointer
// body {"postline_blob":{"key":…,"size":…,"md5":…}} with the message
// attribute "postline-blob" = key. ReceiveMessage replaces a pointer by the
// stored body (checking its MD5), so producers and the worker see the
// original body. A pointer that cannot be read (ParseJson, postline/json.h),
// a missing blob or one whose MD5 differs concerns that message alone: its
// body becomes "postline: large body <key> …", which the worker dead-letters
// as unparseable, and the rest of the receive is returned. A DeleteMessage
// through the same OffloadingQueue object (by the receipt handle of that
// receive) deletes the blob after the message.
// A message moved to a DLQ keeps its pointer (and the blob stays); the
// worker's own dead-lettering re-sends the full body, which is offloaded
// again under a new key, then deletes the original (and its blob).
//
// Stores: a folder (embedded mode, POSTLINE_BLOB_DIR) and an S3 bucket
// (POSTLINE_BLOB_BUCKET; SigV4 service "s3", path-style URLs
// <endpoint>/<bucket>/postline-blobs/<key>, so emulators work).
//
// Thread-safety: stores and OffloadingQueue are safe to use from many threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "postline/aws.h"
#include "postline/error.h"
#include "postline/queue.h"

namespace postline {

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  // Stores `bytes` under `key` ([A-Za-z0-9_-], 1–128). Errors: kTransient
  // "blob_store_unavailable" (I/O, network, 5xx), kPermanent "AccessDenied".
  virtual Result<void> Put(std::string_view key, std::string_view bytes) = 0;
  // The bytes stored under `key`. Errors: kNotFound "blob_not_found";
  // otherwise as Put.
  virtual Result<std::string> Get(std::string_view key) = 0;
  // Removes `key`; removing a missing key succeeds. Errors: as Put.
  virtual Result<void> Delete(std::string_view key) = 0;
};

// Files <dir>/<key> (written to a temporary name, fsynced, renamed). The
// directory is created on first Put.
std::shared_ptr<BlobStore> NewFolderBlobStore(std::string dir);

// Objects postline-blobs/<key> in `bucket`; `client` signs for service "s3".
std::shared_ptr<BlobStore> NewS3BlobStore(std::shared_ptr<aws::AwsClient> client,
                                          std::string bucket);

inline constexpr std::string_view kBlobAttribute = "postline-blob";

// Blob keys are 1–128 characters of [A-Za-z0-9_-].
bool ValidBlobKey(std::string_view key);
// kInvalidInput "invalid_blob_key" naming `key` and the rule.
std::unexpected<Error> BlobKeyError(std::string_view key);
// kTransient "blob_store_unavailable" with `message`.
std::unexpected<Error> BlobStoreUnavailable(std::string message);

// Wraps `queue` as described above. The queue's MaximumMessageSize is read
// once (GetQueueAttributes) on first use.
std::shared_ptr<Queue> NewOffloadingQueue(std::shared_ptr<Queue> queue,
                                          std::shared_ptr<BlobStore> blobs);

// Wraps the four queues of a pair.
QueuePair WithBlobOffload(const QueuePair& pair, const std::shared_ptr<BlobStore>& blobs);

}  // namespace postline
