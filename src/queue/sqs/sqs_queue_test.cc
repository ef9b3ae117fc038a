// Unit tests of the SQS backend's codecs (no network).
#include <gtest/gtest.h>

#include "postline/sqs.h"

namespace postline::aws {
namespace {

TEST(SqsAttributesMd5, MatchesTheReferenceImplementation) {
  // Reference: aws-md5-of-message-attributes (npm), the algorithm of the AWS
  // SDKs, for these three attributes (String, Number, Binary).
  MessageAttributes attributes;
  attributes["priority"] = {"Number", "5"};
  attributes["kind"] = {"String", "invoice"};
  attributes["blob"] = {"Binary", std::string("\x00\xFF\x01", 3)};
  EXPECT_EQ(SqsAttributesMd5(attributes), "47d8c7e4ab9003e402d30e7e096d0261");
  attributes["kind"].value = "invoicf";
  EXPECT_NE(SqsAttributesMd5(attributes), "47d8c7e4ab9003e402d30e7e096d0261");
  EXPECT_EQ(SqsAttributesMd5({}), "");
}

TEST(ParseSqsQueueUrl, AcceptsTheGuideFormAndCustomEndpoints) {
  auto aws = ParseSqsQueueUrl(
      "https://sqs.eu-west-1.amazonaws.com/123456789012/invoice-generation-queue", false, "X");
  ASSERT_TRUE(aws) << aws.error().ToString();
  EXPECT_EQ(aws->region, "eu-west-1");
  EXPECT_EQ(aws->account_id, "123456789012");
  EXPECT_EQ(aws->name, "invoice-generation-queue");
  auto local = ParseSqsQueueUrl("http://127.0.0.1:9324/000000000000/q", true, "X");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->name, "q");
  EXPECT_FALSE(ParseSqsQueueUrl("http://127.0.0.1:9324/000000000000/q", false, "X"));
  // The guide's placeholder "account" is not an account id.
  auto placeholder =
      ParseSqsQueueUrl("https://sqs.us-east-1.amazonaws.com/account/invoice-generation-queue",
                       false, "SQS_REGULAR_QUEUE_URL");
  ASSERT_FALSE(placeholder);
  EXPECT_EQ(placeholder.error().field, "SQS_REGULAR_QUEUE_URL");
  EXPECT_FALSE(
      ParseSqsQueueUrl("https://sqs.us-east-1.amazonaws.com/123456789012/bad name", false, "X"));
  EXPECT_FALSE(ParseSqsQueueUrl("ftp://x/1/q", true, "X"));
}


}  // namespace
}  // namespace postline::aws
