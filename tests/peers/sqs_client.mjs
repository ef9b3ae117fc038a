// An independent SQS client for the end-to-end tests: the AWS SDK for
// JavaScript (@aws-sdk/client-sqs), which also verifies MD5OfBody and
// MD5OfMessageAttributes of what it receives.
//
// Usage (credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY):
//   node sqs_client.mjs ENDPOINT receive QUEUE_URL      → JSON of up to 10 messages (deleted)
//   node sqs_client.mjs ENDPOINT send QUEUE_URL         ← stdin: {"body": ..., "attributes": {...}}
//   node sqs_client.mjs ENDPOINT attributes QUEUE_URL   → the queue's attributes as JSON
import {
  SQSClient, ReceiveMessageCommand, DeleteMessageCommand, SendMessageCommand,
  GetQueueAttributesCommand,
} from "@aws-sdk/client-sqs";

const [endpoint, command, queueUrl] = process.argv.slice(2);
const client = new SQSClient({ endpoint, region: process.env.AWS_REGION || "us-east-1" });

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString();
}

if (command === "receive") {
  const out = await client.send(new ReceiveMessageCommand({
    QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 2,
    MessageAttributeNames: ["All"], MessageSystemAttributeNames: ["All"],
  }));
  const messages = out.Messages ?? [];
  for (const m of messages) {
    await client.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }));
  }
  process.stdout.write(JSON.stringify(messages) + "\n");
} else if (command === "send") {
  const input = JSON.parse(await readStdin());
  const out = await client.send(new SendMessageCommand({
    QueueUrl: queueUrl, MessageBody: input.body, MessageAttributes: input.attributes,
  }));
  process.stdout.write(JSON.stringify({ MessageId: out.MessageId }) + "\n");
} else if (command === "attributes") {
  const out = await client.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ["All"] }));
  process.stdout.write(JSON.stringify(out.Attributes) + "\n");
} else {
  process.stderr.write(`unknown command ${command}\n`);
  process.exit(64);
}
