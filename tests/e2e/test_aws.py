"""End to end on AWS's protocols: QUEUE_PROVIDER=sqs and EMAIL_PROVIDER=ses.

Every AWS request goes through tests/peers/aws_peers.mjs: a proxy that checks
the SigV4 signature of each request with the AWS SDK for JavaScript's signer
(@smithy/signature-v4) and forwards it to the SQS emulator (local-aws-sqs) or
the SES emulator (aws-ses-v2-local). A wrongly signed request fails there.
tests/peers/sqs_client.mjs is an independent client (@aws-sdk/client-sqs).
"""

import base64
import collections
import json
import os
import subprocess
import unittest
import urllib.request

from harness import POSTLINE, SOURCE_DIR, PostlineTestCase, parse
from test_pipeline import make_pdf

PEERS_DIR = os.path.join(SOURCE_DIR, "tests", "peers")
ACCESS_KEY_ID = "AKIDPOSTLINETEST"
SECRET_ACCESS_KEY = "postline/test/secret/key"


class AwsPeers:
    """aws_peers.mjs on 127.0.0.1 and free ports."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            ["node", os.path.join(PEERS_DIR, "aws_peers.mjs"), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("aws_peers.mjs did not start: " + self.proc.stderr.read())
        info = json.loads(line)
        self.endpoint = info["endpoint"]
        self.ses = info.get("ses")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        for f in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            f.close()

    def get(self, path, base=None):
        with urllib.request.urlopen((base or self.endpoint) + path, timeout=10) as r:
            return json.loads(r.read())

    def post(self, path, body):
        req = urllib.request.Request(self.endpoint + path, data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.read()

    def counts(self):
        return self.get("/__peers/counts")

    def ses_emails(self):
        return self.get("/store", base=self.ses)["emails"]


class AwsTestCase(PostlineTestCase):

    def start_peers(self, *args, session_token=None):
        peers = AwsPeers(*args, *(["--session-token", session_token] if session_token else []))
        self.addCleanup(peers.stop)
        self.peers = peers
        self.env.update({
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "AWS_ENDPOINT": peers.endpoint,
        })
        if session_token:
            self.env["AWS_SESSION_TOKEN"] = session_token
        return peers

    def create_queues(self, *flags):
        out = self.run_postline("queues", "create", *flags).stdout.decode()
        urls = dict(line.split("=", 1) for line in out.splitlines() if line.startswith("SQS_"))
        return urls

    def use_sqs(self):
        self.env.update(self.create_queues())
        self.env["QUEUE_PROVIDER"] = "sqs"

    def sdk(self, command, queue_url, input=None):
        proc = subprocess.run(
            ["node", os.path.join(PEERS_DIR, "sqs_client.mjs"), self.peers.endpoint, command, queue_url],
            input=input, capture_output=True, text=True, timeout=60,
            env={"PATH": os.environ.get("PATH", ""), "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
                 "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY, "AWS_REGION": "us-east-1"})
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return json.loads(proc.stdout)

    def envelope(self, i, priority=5, pdf_path=None):
        e = {
            "from": "Kokoka Billing <billing@kokoka.example>",
            "to": f"Anna Müller {i} <anna{i}@example.com>",
            "subject": f"Rechnung {i}" if priority > 3 else f"Reset your password {i}",
            "text": f"Hello {i}\n",
            "priority": priority,
        }
        if pdf_path:
            e["attachments"] = [{"filename": f"invoice-{i}.pdf", "content_type": "application/pdf",
                                 "path": pdf_path}]
        return e


class SqsQueuesTest(AwsTestCase):

    def test_queues_create_is_idempotent_with_the_guide_attributes(self):
        self.start_peers("--sqs")
        first = self.create_queues()
        second = self.create_queues()
        self.assertEqual(first, second)
        self.assertTrue(first["SQS_REGULAR_QUEUE_URL"].endswith("/invoice-generation-queue"))
        self.assertTrue(first["SQS_PRIORITY_QUEUE_URL"].endswith("/priority-emails-queue"))
        for url in first.values():
            attrs = self.sdk("attributes", url)  # read by the AWS SDK, not by us
            self.assertEqual(attrs["VisibilityTimeout"], "300")
            self.assertEqual(attrs["MessageRetentionPeriod"], "345600")
            self.assertEqual(attrs["DelaySeconds"], "0")
            self.assertEqual(attrs["MaximumMessageSize"], "262144")
            self.assertEqual(attrs["ReceiveMessageWaitTimeSeconds"], "0")
            policy = json.loads(attrs["RedrivePolicy"])
            self.assertTrue(policy["deadLetterTargetArn"].endswith(url.rsplit("/", 1)[1] + "-dlq"))
            self.assertEqual(int(policy["maxReceiveCount"]), 1000)  # POSTLINE_MAX_RECEIVE_COUNT
        # The operator's .env then works without creating anything.
        self.env.update(first)
        self.env["QUEUE_PROVIDER"] = "sqs"
        self.assertEqual(self.queues()["invoice-generation-queue"]["available"], 0)

    def test_missing_queue_is_named(self):
        self.start_peers("--sqs")
        self.env.update({
            "QUEUE_PROVIDER": "sqs",
            "SQS_REGULAR_QUEUE_URL": self.peers.endpoint + "/123456789012/invoice-generation-queue",
            "SQS_PRIORITY_QUEUE_URL": self.peers.endpoint + "/123456789012/priority-emails-queue",
        })
        proc = self.run_postline("send", "--to", "a@example.com", "--subject", "s", "--text", "t",
                                 check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("QueueDoesNotExist", proc.stderr.decode())

    def test_wrong_secret_is_refused_by_the_signature_check(self):
        self.start_peers("--sqs")
        proc = self.run_postline("queues", "create", env={"AWS_SECRET_ACCESS_KEY": "wrong"}, check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("SignatureDoesNotMatch", proc.stderr.decode())

    def test_session_token_is_signed(self):
        self.start_peers("--sqs", session_token="FQoGZXIvYXdzEJr//token+/=")
        self.assertIn("SQS_REGULAR_QUEUE_URL", self.create_queues())
        # Without the token the proxy refuses: it must be in SignedHeaders.
        env = {k: v for k, v in self.env.items() if k != "AWS_SESSION_TOKEN"}
        proc = subprocess.run([POSTLINE, "queues", "create"], capture_output=True, env=env,
                              cwd=self.tmp, timeout=60)
        self.assertNotEqual(proc.returncode, 0)

    def test_credentials_from_the_shared_files(self):
        self.start_peers("--sqs")
        del self.env["AWS_ACCESS_KEY_ID"]
        del self.env["AWS_SECRET_ACCESS_KEY"]
        os.makedirs(os.path.join(self.tmp, ".aws"))
        self.write(".aws/credentials",
                   f"[billing]\naws_access_key_id = {ACCESS_KEY_ID}\n"
                   f"aws_secret_access_key = {SECRET_ACCESS_KEY}\n")
        self.env["AWS_PROFILE"] = "billing"
        self.env["AWS_EC2_METADATA_DISABLED"] = "true"
        self.assertIn("SQS_REGULAR_QUEUE_URL", self.create_queues())

    def test_health_names_each_denied_action(self):
        self.start_peers("--sqs", "--ses")
        self.use_sqs()
        self.env["EMAIL_PROVIDER"] = "ses"
        ok = self.run_postline("health")
        self.assertEqual(json.loads(ok.stdout)["aws"]["missing_permissions"], [])
        self.peers.post("/__peers/deny", ["sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                                          "ses:SendEmail"])
        proc = self.run_postline("health", check=False)
        self.assertEqual(proc.returncode, 1)
        report = json.loads(proc.stdout)
        self.assertEqual(report["status"], "unhealthy")
        missing = collections.Counter(m["action"] for m in report["aws"]["missing_permissions"])
        # Each SQS action once per queue, SES once.
        self.assertEqual(missing, {"sqs:DeleteMessage": 2, "sqs:ChangeMessageVisibility": 2,
                                   "ses:SendEmail": 1})
        for m in report["aws"]["missing_permissions"]:
            self.assertIn("AccessDenied", m["detail"])

    def test_policy_lists_the_queue_arns_and_actions(self):
        self.start_peers("--sqs")
        self.use_sqs()
        self.env["EMAIL_PROVIDER"] = "ses"
        policy = json.loads(self.run_postline("aws", "policy").stdout)
        sqs, ses = policy["Statement"][0], policy["Statement"][1]
        self.assertEqual(set(sqs["Action"]), {
            "sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl", "sqs:ChangeMessageVisibility"})
        self.assertIn("arn:aws:sqs:us-east-1:123456789012:invoice-generation-queue", sqs["Resource"])
        self.assertIn("arn:aws:sqs:us-east-1:123456789012:priority-emails-queue-dlq", sqs["Resource"])
        self.assertEqual(set(ses["Action"]), {"ses:SendRawEmail", "ses:SendEmail"})


class SqsPipelineTest(AwsTestCase):

    def test_core_flow_on_sqs_to_smtp(self):
        self.start_peers("--sqs")
        self.use_sqs()
        server = self.smtp()
        pdfs = {}
        lines = []
        for i in range(30):
            pdfs[i] = make_pdf(20 * 1024, seed=i)
            path = self.write(f"doc{i}.pdf", pdfs[i])
            lines.append(json.dumps(self.envelope(i, 1 if i % 5 == 0 else 5, path)))
        self.write("batch.jsonl", "\n".join(lines) + "\n")
        self.run_postline("send", "--jsonl", "batch.jsonl")
        q = self.queues()
        self.assertEqual(q["priority-emails-queue"]["available"], 6)
        self.assertEqual(q["invoice-generation-queue"]["available"], 24)
        self.run_worker()
        got = server.messages()
        self.assertEqual(len(got), 30)
        subjects = collections.Counter(parse(raw)["Subject"] for _, _, raw in got)
        self.assertTrue(all(n == 1 for n in subjects.values()), subjects)
        for _, _, raw in got:
            msg = parse(raw)
            i = int(msg["To"].addresses[0].username[len("anna"):])
            (part,) = [p for p in msg.iter_attachments()]
            self.assertEqual(part.get_content(), pdfs[i])
        q = self.queues()
        for name in ("priority-emails-queue", "invoice-generation-queue"):
            self.assertEqual(q[name]["available"] + q[name]["in_flight"], 0)

    def test_core_flow_on_sqs_to_ses(self):
        self.start_peers("--sqs", "--ses")
        self.use_sqs()
        self.env["EMAIL_PROVIDER"] = "ses"
        pdf = make_pdf(100 * 1024, seed=7)
        path = self.write("invoice.pdf", pdf)
        self.write("e.json", json.dumps(self.envelope(1, 5, path)))
        self.run_postline("send", "e.json")
        self.run_worker()
        emails = self.peers.ses_emails()
        self.assertEqual(len(emails), 1)
        self.assertEqual(emails[0]["subject"], "Rechnung 1")
        (attachment,) = emails[0]["attachments"]
        self.assertEqual(base64.b64decode(attachment["content"]), pdf)
        self.assertEqual(self.peers.counts().get("ses:SendEmail"), 1)

    def test_ses_throttling_keeps_the_message_queued(self):
        self.start_peers("--sqs", "--ses")
        self.use_sqs()
        self.env.update({"EMAIL_PROVIDER": "ses", "POSTLINE_RETRY_MIN": "1", "POSTLINE_RETRY_MAX": "1"})
        # Three throttled answers use up one send's attempts (aws.h retries 3
        # times); the message must stay queued and go out on a later receive.
        self.peers.post("/__peers/fault", {"action": "ses:SendEmail", "status": 429,
                                           "code": "TooManyRequestsException", "count": 3})
        self.run_postline("send", "--from", "billing@kokoka.example", "--to", "a@example.com",
                          "--subject", "throttled", "--text", "t")
        self.run_worker()
        emails = self.peers.ses_emails()
        self.assertEqual([e["subject"] for e in emails], ["throttled"])
        self.assertEqual(self.peers.counts()["ses:SendEmail"], 4)

    def test_ses_rejection_is_permanent_and_goes_to_the_dlq(self):
        self.start_peers("--sqs", "--ses")
        self.use_sqs()
        self.env["EMAIL_PROVIDER"] = "ses"
        self.peers.post("/__peers/fault", {"action": "ses:SendEmail", "status": 400,
                                           "code": "MessageRejected", "count": 1})
        self.run_postline("send", "--from", "billing@kokoka.example", "--to", "a@example.com",
                          "--subject", "rejected", "--text", "t")
        self.run_worker()
        self.assertEqual(self.peers.ses_emails(), [])
        self.assertEqual(self.queues()["invoice-generation-queue"]["dlq_depth"], 1)

    def test_ses_sending_paused_turns_health_red_and_keeps_mail_queued(self):
        self.start_peers("--sqs", "--ses", "--ses-paused")
        self.use_sqs()
        self.env["EMAIL_PROVIDER"] = "ses"
        proc = self.run_postline("health", check=False)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("ses_sending_paused", json.loads(proc.stdout)["transport"]["error"])
        self.peers.post("/__peers/fault", {"action": "ses:SendEmail", "status": 400,
                                           "code": "SendingPausedException", "count": 1})
        self.run_postline("send", "--from", "billing@kokoka.example", "--to", "a@example.com",
                          "--subject", "paused", "--text", "t")
        self.env.update({"POSTLINE_RETRY_MIN": "1", "POSTLINE_RETRY_MAX": "1"})
        self.run_worker()
        # Transient: not dead-lettered; delivered on the next receive.
        self.assertEqual([e["subject"] for e in self.peers.ses_emails()], ["paused"])
        self.assertEqual(self.queues()["invoice-generation-queue"]["dlq_depth"], 0)

    def test_independent_sdk_client_both_ways(self):
        """A message we send, the AWS SDK reads (it checks both MD5s); a message
        the SDK sends, our worker delivers."""
        self.start_peers("--sqs", "--ses")
        self.use_sqs()
        self.env["EMAIL_PROVIDER"] = "ses"
        self.run_postline("send", "--from", "billing@kokoka.example", "--to", "zoe@example.com",
                          "--subject", "Grüße über SQS", "--text", "t", "--priority", "2")
        url = self.env["SQS_PRIORITY_QUEUE_URL"]
        (message,) = self.sdk("receive", url)
        attrs = message["MessageAttributes"]
        self.assertEqual(attrs["postline-priority"], {"DataType": "Number", "StringValue": "2"})
        self.assertEqual(len(attrs["postline-envelope-id"]["StringValue"]), 26)
        self.assertIn("Grüße über SQS", message["Body"])
        # Back through the SDK: our worker receives it and delivers it.
        self.sdk("send", url, input=json.dumps({"body": message["Body"], "attributes": {
            k: {"DataType": v["DataType"], "StringValue": v["StringValue"]} for k, v in attrs.items()}}))
        self.run_worker()
        self.assertEqual([e["subject"] for e in self.peers.ses_emails()], ["Grüße über SQS"])


class LargeEmailTest(AwsTestCase):

    def test_2mb_pdf_goes_through_the_blob_store_and_the_blob_is_gone_afterwards(self):
        # Embedded mode: the guide's queues (MaximumMessageSize 262144), blobs
        # in POSTLINE_BLOB_DIR.
        blobs = os.path.join(self.data_dir, "blobs")
        self.env["POSTLINE_BLOB_DIR"] = blobs
        server = self.smtp()
        pdf = make_pdf(2 * 1024 * 1024, seed=2)
        path = self.write("big.pdf", pdf)
        self.write("e.json", json.dumps(self.envelope(3, 5, path)))
        self.run_postline("send", "e.json")
        self.assertEqual(len(os.listdir(blobs)), 1)
        self.assertGreater(os.path.getsize(os.path.join(blobs, os.listdir(blobs)[0])), 2 * 1024 * 1024)
        self.run_worker()
        (got,) = server.messages()
        (part,) = list(parse(got[2]).iter_attachments())
        self.assertEqual(part.get_content(), pdf)
        self.assertEqual(os.listdir(blobs), [])

    def test_2mb_pdf_on_sqs_goes_through_s3_and_the_object_is_gone_afterwards(self):
        self.start_peers("--sqs", "--ses", "--s3", "postline-test-blobs")
        self.use_sqs()
        self.env.update({"EMAIL_PROVIDER": "ses", "POSTLINE_BLOB_BUCKET": "postline-test-blobs"})
        pdf = make_pdf(2 * 1024 * 1024, seed=5)
        path = self.write("big.pdf", pdf)
        self.write("e.json", json.dumps(self.envelope(5, 5, path)))
        self.run_postline("send", "e.json")
        keys = self.peers.get("/__peers/s3-list/postline-test-blobs")
        self.assertEqual(len(keys), 1)
        self.assertTrue(keys[0].startswith("postline-blobs/"))
        self.run_worker()
        (sent,) = self.peers.ses_emails()
        (attachment,) = sent["attachments"]
        self.assertEqual(base64.b64decode(attachment["content"]), pdf)
        self.assertEqual(self.peers.get("/__peers/s3-list/postline-test-blobs"), [])

    def test_large_email_on_sqs_without_a_bucket_is_refused(self):
        self.start_peers("--sqs")
        self.use_sqs()
        path = self.write("big.pdf", make_pdf(400 * 1024, seed=3))
        self.write("e.json", json.dumps(self.envelope(4, 5, path)))
        proc = self.run_postline("send", "e.json", check=False)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("MessageTooLong", proc.stderr.decode())


class SqsScaleTest(AwsTestCase):

    def test_three_workers_deliver_each_email_exactly_once(self):
        count = int(os.environ.get("POSTLINE_AWS_SCALE_COUNT", "3000"))
        self.start_peers("--sqs")
        self.use_sqs()
        server = self.smtp()
        lines = [json.dumps(self.envelope(i, 1 if i % 10 == 0 else 5)) for i in range(count)]
        self.write("batch.jsonl", "\n".join(lines) + "\n")
        self.run_postline("send", "--jsonl", "batch.jsonl", timeout=300)
        # Each worker logs to a file: a pipe read one worker after another
        # would stall the others once their pipe buffer is full.
        logs = [os.path.join(self.tmp, f"worker{i}.log") for i in range(3)]
        workers = []
        for path in logs:
            with open(path, "wb") as log:
                workers.append(subprocess.Popen(
                    [POSTLINE, "worker", "--until-empty", "--wait-time", "1"], env=self.env,
                    cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=log))
        sent_by = []
        for w, path in zip(workers, logs):
            w.wait(timeout=600)
            with open(path, "rb") as f:
                err = f.read()
            self.assertEqual(w.returncode, 0, err[-2000:])
            events = [json.loads(l) for l in err.decode().splitlines() if l.startswith("{")]
            sent_by.append(sum(1 for e in events if e.get("event") == "sent"))
        got = server.messages()
        subjects = collections.Counter(parse(raw)["Subject"] for _, _, raw in got)
        self.assertEqual(len(subjects), count)
        self.assertEqual(max(subjects.values()), 1, [s for s, n in subjects.items() if n > 1][:5])
        self.assertEqual(sum(sent_by), count)
        # Every worker took part.
        self.assertTrue(all(n > 0 for n in sent_by), sent_by)


if __name__ == "__main__":
    unittest.main()
