// The folder blob store and the offloading queue decorator.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "postline/blob_store.h"
#include "postline/queue.h"
#include "testing/queue_test_support.h"

namespace postline {
namespace {

TEST(FolderBlobStore, PutGetDelete) {
  testing_support::TempDir dir;
  auto store = NewFolderBlobStore((dir.path() / "blobs").string());
  ASSERT_TRUE(store->Put("k1", std::string("\x00pdf", 4)));
  auto got = store->Get("k1");
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, std::string("\x00pdf", 4));
  ASSERT_TRUE(store->Delete("k1"));
  EXPECT_EQ(store->Get("k1").error().code, "blob_not_found");
  EXPECT_TRUE(store->Delete("k1"));
  EXPECT_FALSE(store->Put("../escape", "x"));
}

// A memory queue that takes at most 1 KB, behind an OffloadingQueue with a
// folder blob store in a temporary home.
struct OffloadingFixture {
  testing_support::TempDir dir;
  std::shared_ptr<QueueService> service = NewMemoryQueueService();
  std::shared_ptr<Queue> queue;
  OffloadingFixture() {
    QueueAttributes attributes;
    attributes.maximum_message_size = 1024;
    queue = NewOffloadingQueue(*service->CreateQueue("small", attributes),
                               NewFolderBlobStore((dir.path() / "blobs").string()));
  }
};

TEST(OffloadingQueue, LargeBodiesTravelThroughTheBlobStore) {
  OffloadingFixture fixture;
  auto& dir = fixture.dir;
  auto& queue = fixture.queue;
  SendMessageRequest big;
  big.body = std::string(5000, 'x');
  big.attributes["k"] = {"String", "v"};
  auto sent = queue->SendMessage(big);
  ASSERT_TRUE(sent) << sent.error().ToString();
  EXPECT_EQ(sent->md5_of_body, Md5Hex(big.body));
  SendMessageRequest small;
  small.body = "tiny";
  ASSERT_TRUE(queue->SendMessage(small));
  ReceiveMessageRequest receive;
  receive.max_number_of_messages = 10;
  auto got = queue->ReceiveMessage(receive);
  ASSERT_TRUE(got);
  ASSERT_EQ(got->size(), 2u);
  int blob_files = 0;
  for (auto& entry : std::filesystem::directory_iterator((dir.path() / "blobs").string())) {
    (void)entry;
    ++blob_files;
  }
  EXPECT_EQ(blob_files, 1);
  for (const auto& m : *got) {
    if (m.body.size() == 5000) {
      EXPECT_EQ(m.body, big.body);
      EXPECT_EQ(m.attributes, big.attributes);  // the pointer attribute is removed
    } else {
      EXPECT_EQ(m.body, "tiny");
    }
    ASSERT_TRUE(queue->DeleteMessage(m.receipt_handle));
  }
  EXPECT_TRUE(std::filesystem::is_empty((dir.path() / "blobs").string()));
}

// The bulk path: a producer checking requests against the decorated queue's
// configuration accepts a body above the inner MaximumMessageSize, and
// SendMessages offloads it like SendMessage does.
TEST(OffloadingQueue, SendMessagesOffloadsLargeBodies) {
  OffloadingFixture fixture;
  auto& dir = fixture.dir;
  auto& queue = fixture.queue;
  std::vector<SendMessageRequest> requests(12);
  for (std::size_t i = 0; i < requests.size(); ++i) requests[i].body = fmt::format("m{}", i);
  requests[3].body = std::string(5000, 'y');
  auto configuration = queue->GetQueueConfiguration();
  ASSERT_TRUE(configuration);
  for (const auto& r : requests) EXPECT_TRUE(ValidateSendMessageRequest(r, *configuration));
  auto sent = queue->SendMessages(requests);
  ASSERT_TRUE(sent) << sent.error().ToString();
  ASSERT_EQ(sent->size(), requests.size());
  for (std::size_t i = 0; i < sent->size(); ++i) {
    ASSERT_TRUE((*sent)[i]) << (*sent)[i].error().ToString();
    EXPECT_EQ((*sent)[i]->md5_of_body, Md5Hex(requests[i].body));
  }
  std::set<std::string> bodies;
  while (true) {
    ReceiveMessageRequest receive;
    receive.max_number_of_messages = 10;
    auto got = queue->ReceiveMessage(receive);
    ASSERT_TRUE(got);
    if (got->empty()) break;
    for (const auto& m : *got) {
      bodies.insert(m.body);
      ASSERT_TRUE(queue->DeleteMessage(m.receipt_handle));
    }
  }
  EXPECT_EQ(bodies.size(), requests.size());
  EXPECT_TRUE(bodies.contains(requests[3].body));
  EXPECT_TRUE(std::filesystem::is_empty((dir.path() / "blobs").string()));
}

// A pointer body whose "md5" was not a string made value() throw (the worker
// aborted on every receive); a bad pointer or a mismatching blob failed the
// whole receive, so the good messages received with it stayed in flight.
// Each now comes back as a body the worker dead-letters as unparseable.
TEST(OffloadingQueue, UnreadablePointersBecomeUnparseableBodiesNotFailedReceives) {
  OffloadingFixture fixture;
  auto blobs = NewFolderBlobStore((fixture.dir.path() / "blobs").string());
  auto inner = fixture.service->GetQueue("small");
  ASSERT_TRUE(inner);
  ASSERT_TRUE(blobs->Put("kbad", "the stored body"));
  const std::string pointers[] = {
      R"({"postline_blob":{"key":"kbad","md5":5}})",
      R"({"postline_blob":"kbad"})",
      R"({"postline_blob":{"key":"kbad","size":1e400,"md5":"x"}})",
      std::string(200, '[') + std::string(200, ']'),
      R"({"postline_blob":{"key":"kbad","md5":"00000000000000000000000000000000"}})",
  };
  for (const auto& body : pointers) {
    SendMessageRequest req;
    req.body = body;
    req.attributes[std::string(kBlobAttribute)] = {"String", "kbad"};
    ASSERT_TRUE((*inner)->SendMessage(req));
  }
  SendMessageRequest good;
  good.body = "tiny";
  ASSERT_TRUE(fixture.queue->SendMessage(good));
  ReceiveMessageRequest receive;
  receive.max_number_of_messages = 10;
  auto got = fixture.queue->ReceiveMessage(receive);
  ASSERT_TRUE(got) << got.error().ToString();
  ASSERT_EQ(got->size(), std::size(pointers) + 1);
  int unreadable = 0;
  for (const auto& m : *got) {
    if (m.body == "tiny") continue;
    EXPECT_TRUE(m.body.starts_with("postline: large body kbad ")) << m.body;
    EXPECT_NE(m.body, "the stored body");
    ++unreadable;
  }
  EXPECT_EQ(unreadable, static_cast<int>(std::size(pointers)));
}

}  // namespace
}  // namespace postline
