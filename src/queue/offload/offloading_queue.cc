// The offloading queue decorator (the SQS Extended Client's pattern) and the
// blob-key rules shared by the stores.
#include <fmt/format.h>

#include <cctype>
#include <deque>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "postline/blob_store.h"
#include "postline/json.h"
#include "postline/queue_backend.h"

namespace postline {

bool ValidBlobKey(std::string_view key) {
  if (key.empty() || key.size() > 128) return false;
  for (char c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

std::unexpected<Error> BlobKeyError(std::string_view key) {
  return InvalidInput("invalid_blob_key",
                      fmt::format("blob key \"{}\" must be 1–128 of [A-Za-z0-9_-]", key), "key");
}

std::unexpected<Error> BlobStoreUnavailable(std::string message) {
  return MakeError(ErrorKind::kTransient, "blob_store_unavailable", std::move(message));
}

namespace {

using nlohmann::json;

std::string PointerBody(const std::string& key, const std::string& body) {
  return json{{"postline_blob", {{"key", key}, {"size", body.size()}, {"md5", Md5Hex(body)}}}}
      .dump();
}

class OffloadingQueue final : public Queue {
 public:
  OffloadingQueue(std::shared_ptr<Queue> inner, std::shared_ptr<BlobStore> blobs)
      : inner_(std::move(inner)), blobs_(std::move(blobs)) {}

  const std::string& name() const override { return inner_->name(); }

  Result<SendMessageResult> SendMessage(const SendMessageRequest& request) override {
    auto prepared = Offload(request);
    if (!prepared) return std::unexpected(prepared.error());
    auto sent = inner_->SendMessage(prepared->request);
    if (!sent) {
      if (!prepared->key.empty()) (void)blobs_->Delete(prepared->key);
      return sent;
    }
    sent->md5_of_body = Md5Hex(request.body);
    return sent;
  }

  Result<std::vector<BatchEntryResult<SendMessageResult>>> SendMessageBatch(
      const std::vector<SendMessageBatchEntry>& entries) override {
    std::vector<SendMessageBatchEntry> inner_entries;
    std::vector<std::string> keys;
    for (const auto& e : entries) {
      auto prepared = Offload(e.request);
      if (!prepared) {
        for (const auto& k : keys) {
          if (!k.empty()) (void)blobs_->Delete(k);
        }
        return std::unexpected(prepared.error());
      }
      inner_entries.push_back({e.id, std::move(prepared->request)});
      keys.push_back(prepared->key);
    }
    auto sent = inner_->SendMessageBatch(inner_entries);
    if (!sent) return sent;
    for (size_t i = 0; i < sent->size() && i < entries.size(); ++i) {
      auto& r = (*sent)[i];
      for (size_t j = 0; j < entries.size(); ++j) {
        if (entries[j].id != r.id) continue;
        if (r.result) {
          r.result->md5_of_body = Md5Hex(entries[j].request.body);
        } else if (!keys[j].empty()) {
          (void)blobs_->Delete(keys[j]);
        }
      }
    }
    return sent;
  }

  Result<std::vector<ReceivedMessage>> ReceiveMessage(
      const ReceiveMessageRequest& request) override {
    auto got = inner_->ReceiveMessage(request);
    if (!got) return got;
    for (auto& m : *got) {
      auto it = m.attributes.find(std::string(kBlobAttribute));
      if (it == m.attributes.end()) continue;
      const std::string key = it->second.value;
      // A body that is not this message's pointer, or a blob that is not the
      // one it names, concerns this message alone: it gets a body the worker
      // dead-letters as unparseable, and the rest of the batch is received.
      auto pointer = ParseJson(m.body, {.document = "the large-body pointer"});
      const std::string md5 =
          pointer ? JsonString(JsonObject(*pointer, "postline_blob"), "md5") : std::string();
      if (md5.empty()) {
        m.body = fmt::format(
            "postline: large body {} has an unreadable pointer: {}", key,
            pointer ? std::string("no postline_blob.md5 string") : pointer.error().ToString());
        continue;
      }
      auto bytes = blobs_->Get(key);
      if (!bytes) {
        // The worker dead-letters an unparseable body with this reason.
        m.body =
            fmt::format("postline: large body {} unavailable: {}", key, bytes.error().ToString());
        continue;
      }
      if (md5 != Md5Hex(*bytes)) {
        m.body = fmt::format(
            "postline: large body {} does not match its pointer (MD5 {} "
            "expected, {} stored)",
            key, md5, Md5Hex(*bytes));
        continue;
      }
      m.body = std::move(*bytes);
      m.md5_of_body = Md5Hex(m.body);
      m.attributes.erase(it);
      Remember(m.receipt_handle, key);
    }
    return got;
  }

  Result<void> DeleteMessage(std::string_view receipt_handle) override {
    auto deleted = inner_->DeleteMessage(receipt_handle);
    if (deleted) DeleteBlobOf(receipt_handle);
    return deleted;
  }

  Result<std::vector<BatchEntryResult<void>>> DeleteMessageBatch(
      const std::vector<std::pair<std::string, std::string>>& entries) override {
    auto deleted = inner_->DeleteMessageBatch(entries);
    if (!deleted) return deleted;
    for (const auto& r : *deleted) {
      if (!r.result) continue;
      for (const auto& [id, handle] : entries) {
        if (id == r.id) DeleteBlobOf(handle);
      }
    }
    return deleted;
  }

  Result<void> ChangeMessageVisibility(std::string_view receipt_handle, int seconds) override {
    return inner_->ChangeMessageVisibility(receipt_handle, seconds);
  }

  Result<std::vector<BatchEntryResult<void>>> ChangeMessageVisibilityBatch(
      const std::vector<VisibilityChange>& entries) override {
    return inner_->ChangeMessageVisibilityBatch(entries);
  }

  Result<QueueStats> GetQueueAttributes() override { return inner_->GetQueueAttributes(); }

  // Bodies of any size are accepted: those above the inner queue's
  // MaximumMessageSize go to the blob store.
  Result<QueueAttributes> GetQueueConfiguration() override {
    auto limits = Limits();
    if (!limits) return std::unexpected(limits.error());
    QueueAttributes accepted = *limits;
    accepted.maximum_message_size = std::numeric_limits<decltype(accepted.maximum_message_size)>::max();
    return accepted;
  }

  // Offloads the large bodies, then one SendMessages on the inner queue (one
  // transaction on sqlite). Blobs of refused entries are deleted again.
  Result<std::vector<Result<SendMessageResult>>> SendMessages(
      std::span<const SendMessageRequest> requests) override {
    std::vector<SendMessageRequest> inner_requests;
    std::vector<std::string> keys;
    inner_requests.reserve(requests.size());
    for (const auto& request : requests) {
      auto prepared = Offload(request);
      if (!prepared) {
        for (const auto& k : keys) {
          if (!k.empty()) (void)blobs_->Delete(k);
        }
        return std::unexpected(prepared.error());
      }
      inner_requests.push_back(std::move(prepared->request));
      keys.push_back(std::move(prepared->key));
    }
    auto sent = inner_->SendMessages(inner_requests);
    if (!sent) {
      for (const auto& k : keys) {
        if (!k.empty()) (void)blobs_->Delete(k);
      }
      return sent;
    }
    for (std::size_t i = 0; i < sent->size(); ++i) {
      auto& r = (*sent)[i];
      if (r) {
        r->md5_of_body = Md5Hex(requests[i].body);
      } else if (!keys[i].empty()) {
        (void)blobs_->Delete(keys[i]);
      }
    }
    return sent;
  }

  Result<void> PurgeQueue() override { return inner_->PurgeQueue(); }

 private:
  struct Prepared {
    SendMessageRequest request;
    std::string key;  // empty: sent as is
  };

  Result<Prepared> Offload(const SendMessageRequest& request) {
    auto limits = Limits();
    if (!limits) return std::unexpected(limits.error());
    auto ok = queue_backend::ValidateSendMessage(request, *limits);
    if (ok || ok.error().code != "MessageTooLong") return Prepared{request, ""};
    Prepared p{request, queue_backend::NewReceiptToken()};
    if (auto put = blobs_->Put(p.key, request.body); !put) return std::unexpected(put.error());
    p.request.body = PointerBody(p.key, request.body);
    p.request.attributes[std::string(kBlobAttribute)] = {"String", p.key};
    return p;
  }

  Result<QueueAttributes> Limits() {
    std::lock_guard lock(mu_);
    if (!limits_) {
      auto stats = inner_->GetQueueAttributes();
      if (!stats) return std::unexpected(stats.error());
      limits_ = stats->attributes;
    }
    return *limits_;
  }

  void Remember(const std::string& handle, const std::string& key) {
    std::lock_guard lock(mu_);
    keys_[handle] = key;
    order_.push_back(handle);
    while (order_.size() > kMaxRemembered) {
      keys_.erase(order_.front());
      order_.pop_front();
    }
  }

  void DeleteBlobOf(std::string_view handle) {
    std::string key;
    {
      std::lock_guard lock(mu_);
      auto it = keys_.find(std::string(handle));
      if (it == keys_.end()) return;
      key = it->second;
      keys_.erase(it);
    }
    (void)blobs_->Delete(key);
  }

  static constexpr size_t kMaxRemembered = 100000;
  std::shared_ptr<Queue> inner_;
  std::shared_ptr<BlobStore> blobs_;
  std::mutex mu_;
  std::optional<QueueAttributes> limits_;
  std::unordered_map<std::string, std::string> keys_;  // receipt handle → blob key
  std::deque<std::string> order_;
};

}  // namespace

std::shared_ptr<Queue> NewOffloadingQueue(std::shared_ptr<Queue> queue,
                                          std::shared_ptr<BlobStore> blobs) {
  return std::make_shared<OffloadingQueue>(std::move(queue), std::move(blobs));
}

QueuePair WithBlobOffload(const QueuePair& pair, const std::shared_ptr<BlobStore>& blobs) {
  QueuePair out;
  out.priority = NewOffloadingQueue(pair.priority, blobs);
  out.regular = NewOffloadingQueue(pair.regular, blobs);
  out.priority_dlq = NewOffloadingQueue(pair.priority_dlq, blobs);
  out.regular_dlq = NewOffloadingQueue(pair.regular_dlq, blobs);
  return out;
}

}  // namespace postline
