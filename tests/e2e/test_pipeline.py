"""End to end: `postline send` → SQLite queue → `postline worker` → SMTP (aiosmtpd)."""

import json
import os
import random
import signal
import subprocess
import time
import unittest

from harness import POSTLINE, PostlineTestCase, parse


def make_pdf(size, seed):
    """A valid PDF whose page content stream is padded to about `size` bytes."""
    rnd = random.Random(seed)
    filler = bytes(rnd.getrandbits(8) for _ in range(size))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
        b"<< /Length %d >>\nstream\n" % len(filler) + filler + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


class PipelineTest(PostlineTestCase):

    def envelope(self, i, priority, pdf_path):
        return {
            "from": "Kokoka Billing <billing@kokoka.example>",
            "to": [{"name": f"Müller, Anna {i}", "email": f"anna{i}@example.com"}],
            "cc": f"\"Doe, Jane (Billing)\" <jane{i}@example.com>",
            "subject": f"Rechnung {i} – Überfällig" if priority > 3 else f"Reset your password {i}",
            "text": f"Hello {i},\nyour document is attached.\n",
            "html": f"<p>Hello {i},</p><p>your document is attached.</p>",
            "attachments": [{"filename": f"Faktura_Żółć_{i}.pdf", "content_type": "application/pdf",
                             "path": pdf_path}],
            "priority": priority,
        }

    def test_200_emails_each_arrive_once_priority_first(self):
        server = self.smtp()
        pdfs = {}
        sent = {}
        # 180 regular and 20 priority-1 e-mails, interleaved, each queued with
        # its own `postline send`.
        for i in range(200):
            priority = 1 if i % 10 == 7 else 5
            pdfs[i] = make_pdf(30 * 1024, seed=i)
            pdf_path = self.write(f"doc{i}.pdf", pdfs[i])
            env_path = self.write(f"mail{i}.json", json.dumps(self.envelope(i, priority, pdf_path)))
            out = json.loads(self.run_postline("send", env_path).stdout)
            sent[out["id"]] = (i, priority)
        q = self.queues()
        self.assertEqual(q["priority-emails-queue"]["available"], 20)
        self.assertEqual(q["invoice-generation-queue"]["available"], 180)

        events = self.run_worker("--concurrency", "4")
        self.assertEqual(sum(1 for e in events if e["event"] == "sent"), 200)
        for e in events:
            if e["event"] in ("sent", "retry", "dead", "duplicate"):
                self.assertIn("envelope_id", e)

        arrived = server.messages()
        self.assertEqual(len(arrived), 200)
        seen_ids = set()
        order = []
        for seq, env, raw in arrived:
            msg = parse(raw)
            mid = msg["Message-ID"].strip("<>")
            envelope_id = mid.split("@")[0]
            self.assertIn(envelope_id, sent)
            self.assertNotIn(envelope_id, seen_ids, "delivered twice")
            seen_ids.add(envelope_id)
            i, priority = sent[envelope_id]
            order.append(priority)
            expect = self.envelope(i, priority, "")
            self.assertEqual(msg["Subject"], expect["subject"])
            self.assertEqual(msg["From"].addresses[0].display_name, "Kokoka Billing")
            to = msg["To"].addresses
            self.assertEqual(len(to), 1)
            self.assertEqual(to[0].display_name, f"Müller, Anna {i}")
            self.assertEqual(to[0].addr_spec, f"anna{i}@example.com")
            cc = msg["Cc"].addresses
            self.assertEqual([(a.display_name, a.addr_spec) for a in cc],
                             [("Doe, Jane (Billing)", f"jane{i}@example.com")])
            self.assertEqual(sorted(env["rcpt_tos"]),
                             sorted([f"anna{i}@example.com", f"jane{i}@example.com"]))
            self.assertEqual(msg.get_body(("plain",)).get_content().replace("\r\n", "\n"),
                             expect["text"])
            atts = list(msg.iter_attachments())
            self.assertEqual(len(atts), 1)
            self.assertEqual(atts[0].get_filename(), f"Faktura_Żółć_{i}.pdf")
            self.assertEqual(atts[0].get_content_type(), "application/pdf")
            self.assertEqual(atts[0].get_content(), pdfs[i])
        self.assertEqual(seen_ids, set(sent))
        # Priority before the regular backlog drained: all 20 priority e-mails
        # arrive before the last regular one, and (four senders, each taking
        # priority work first) within the first 20 + 2 × 4 arrivals.
        last_priority = max(k for k, p in enumerate(order) if p == 1)
        last_regular = max(k for k, p in enumerate(order) if p == 5)
        self.assertLess(last_priority, last_regular)
        self.assertLess(last_priority, 28, f"arrival order of priorities: {order}")
        q = self.queues()
        for name in ("priority-emails-queue", "invoice-generation-queue"):
            self.assertEqual(q[name]["available"], 0)
            self.assertEqual(q[name]["in_flight"], 0)
            self.assertEqual(q[name]["dlq_depth"], 0)
        self.assertEqual(q["priority-emails-queue"]["sent"], 20)
        self.assertEqual(q["invoice-generation-queue"]["sent"], 180)

    def test_priority_overtakes_a_running_backlog(self):
        # A slow server (50 ms per message) and a backlog of 150 invoices; the
        # password resets are queued while the worker is busy with it.
        server = self.smtp("--stall-before-250", "0.05")
        lines = [json.dumps({"from": "billing@kokoka.example", "to": f"r{i}@example.com",
                             "subject": f"Invoice {i}", "text": "x", "priority": 5})
                 for i in range(150)]
        self.run_postline("send", "--jsonl", self.write("bulk.jsonl", "\n".join(lines)))
        worker = subprocess.Popen([POSTLINE, "worker", "--until-empty", "--wait-time", "1",
                                   "--concurrency", "2"], env=self.env, cwd=self.tmp,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while len(server.messages()) < 20 and time.time() < deadline:
                time.sleep(0.05)
            for i in range(5):
                self.run_postline("send", "--to", f"reset{i}@example.com", "--subject",
                                  f"Reset {i}", "--text", "reset link", "--priority", "1")
            self.assertEqual(worker.wait(timeout=120), 0)
        finally:
            if worker.poll() is None:
                worker.kill()
        subjects = [parse(raw)["Subject"] for _, _, raw in server.messages()]
        self.assertEqual(len(subjects), 155)
        last_reset = max(k for k, s in enumerate(subjects) if s.startswith("Reset"))
        # The resets go out long before the remaining ~130 invoices.
        self.assertLess(last_reset, len(subjects) - 100, subjects)

    def test_451_is_retried_and_delivered(self):
        server = self.smtp("--fail-data", "451:1")
        self.run_postline("send", "--to", "alice@example.com", "--subject", "Invoice 1",
                          "--text", "hello")
        events = self.run_worker(env={"POSTLINE_RETRY_MIN": "1", "POSTLINE_RETRY_MAX": "1"})
        kinds = [e["event"] for e in events if e["event"] in ("retry", "sent", "dead")]
        self.assertEqual(kinds, ["retry", "sent"])
        retry = next(e for e in events if e["event"] == "retry")
        self.assertEqual(retry["reply_code"], 451)
        sent = next(e for e in events if e["event"] == "sent")
        self.assertEqual(sent["attempts"], 2)
        self.assertEqual(len(server.messages()), 1)

    def test_550_goes_to_the_dlq_with_the_reply(self):
        server = self.smtp("--reject-rcpt", "bad@=550")
        self.run_postline("send", "--to", "bad@example.com", "--subject", "Invoice 2",
                          "--text", "hello")
        events = self.run_worker()
        dead = [e for e in events if e["event"] == "dead"]
        self.assertEqual(len(dead), 1)
        self.assertEqual(dead[0]["reason"], "permanent")
        self.assertEqual(dead[0]["reply_code"], 550)
        self.assertIn("no such user", dead[0]["reply"])
        self.assertEqual(server.messages(), [])
        q = self.queues()
        self.assertEqual(q["invoice-generation-queue"]["dlq_depth"], 1)
        self.assertEqual(q["invoice-generation-queue"]["available"], 0)

    def test_partial_recipients_are_delivered_and_rejects_reported(self):
        server = self.smtp("--reject-rcpt", "bad@=550")
        self.run_postline("send", "--to", "good@example.com", "--to", "bad@example.com",
                          "--subject", "Invoice 3", "--text", "hello")
        events = self.run_worker()
        sent = [e for e in events if e["event"] == "sent"]
        self.assertEqual(len(sent), 1)
        self.assertEqual(len(sent[0]["rejected"]), 1)
        self.assertIn("bad@example.com", sent[0]["rejected"][0])
        arrived = server.messages()
        self.assertEqual(len(arrived), 1)
        self.assertEqual(arrived[0][1]["rcpt_tos"], ["good@example.com"])

    def test_max_receive_count_moves_to_the_dlq(self):
        self.smtp("--fail-data", "451:1000")
        self.run_postline("send", "--to", "alice@example.com", "--subject", "Invoice 4",
                          "--text", "hello", env={"POSTLINE_MAX_RECEIVE_COUNT": "2"})
        events = self.run_worker(env={"POSTLINE_RETRY_MIN": "1", "POSTLINE_RETRY_MAX": "1",
                                      "POSTLINE_MAX_RECEIVE_COUNT": "2"})
        self.assertEqual(sum(1 for e in events if e["event"] == "retry"), 2)
        self.assertFalse(any(e["event"] == "sent" for e in events))
        q = self.queues()
        self.assertEqual(q["invoice-generation-queue"]["dlq_depth"], 1)
        self.assertEqual(q["invoice-generation-queue"]["available"], 0)

    def test_redelivered_duplicate_is_not_sent_twice(self):
        # Deliver once, then put the very same envelope (same id) on the queue
        # again, as a lost DeleteMessage would: the sent log suppresses it.
        server = self.smtp()
        env_path = self.write("m.json", json.dumps({
            "id": "01JDUPL1CATE0000000000000A", "from": "billing@kokoka.example",
            "to": "alice@example.com", "subject": "Once", "text": "only once"}))
        self.run_postline("send", env_path)
        self.run_worker()
        self.run_postline("send", env_path)
        events = self.run_worker()
        self.assertEqual([e["event"] for e in events if e["event"] in ("sent", "duplicate")],
                         ["duplicate"])
        self.assertEqual(len(server.messages()), 1)

    def test_idempotency_key_queues_once(self):
        server = self.smtp()
        env_path = self.write("reset.json", json.dumps({
            "from": "accounts@kokoka.example", "to": "alice@example.com",
            "subject": "Reset your password", "text": "link", "priority": 1,
            "idempotency_key": "password-reset-42"}))
        first = json.loads(self.run_postline("send", env_path).stdout)
        again = json.loads(self.run_postline("send", env_path).stdout)
        self.assertEqual(again["id"], first["id"])
        self.assertTrue(again["replayed"])
        self.assertEqual(self.queues()["priority-emails-queue"]["available"], 1)
        self.run_worker()
        self.assertEqual(len(server.messages()), 1)

    def test_idempotency_keys_in_jsonl_queue_once(self):
        server = self.smtp()
        lines = [json.dumps({"from": "billing@kokoka.example", "to": f"c{i}@example.com",
                             "subject": f"Invoice {i}", "text": "attached",
                             "idempotency_key": f"invoice-{i}"}) for i in range(3)]
        lines.append(json.dumps({"from": "billing@kokoka.example", "to": "c0@example.com",
                                 "subject": "Invoice 0 again", "text": "attached",
                                 "idempotency_key": "invoice-0"}))
        lines.append(json.dumps({"from": "billing@kokoka.example", "to": "x@example.com",
                                 "subject": "No key", "text": "attached"}))
        path = self.write("invoices.jsonl", "\n".join(lines) + "\n")
        first = json.loads(self.run_postline("send", "--jsonl", path).stdout)
        self.assertEqual(first, {"queued": 4, "replayed": 1})
        again = json.loads(self.run_postline("send", "--jsonl", path).stdout)
        self.assertEqual(again, {"queued": 1, "replayed": 4})
        self.run_worker()
        subjects = sorted(str(parse(raw)["Subject"]) for _, _, raw in server.messages())
        self.assertEqual(subjects, ["Invoice 0", "Invoice 1", "Invoice 2", "No key", "No key"])

    def test_sigterm_finishes_and_releases(self):
        server = self.smtp("--stall-before-250", "0.2")
        lines = [json.dumps({"from": "billing@kokoka.example", "to": f"r{i}@example.com",
                             "subject": f"Invoice {i}", "text": "x"}) for i in range(40)]
        self.run_postline("send", "--jsonl", self.write("bulk.jsonl", "\n".join(lines)))
        worker = subprocess.Popen([POSTLINE, "worker", "--concurrency", "4"], env=self.env,
                                  cwd=self.tmp, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while len(server.messages()) < 4 and time.time() < deadline:
            time.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=30)
        self.assertEqual(worker.returncode, 0)
        delivered = len(server.messages())
        self.assertLess(delivered, 40)
        q = self.queues()
        regular = q["invoice-generation-queue"]
        # Nothing stays invisible: what was received and not sent was released.
        self.assertEqual(regular["in_flight"], 0)
        self.assertEqual(regular["available"], 40 - delivered)
        stopped = [json.loads(l) for l in err.decode().splitlines() if '"worker_stopped"' in l]
        self.assertEqual(len(stopped), 1)


class BadInputTest(PostlineTestCase):
    """Every bad input: one line naming the field, a distinct exit code, nothing queued."""

    def assert_nothing_queued(self):
        q = self.queues()
        for name in ("priority-emails-queue", "invoice-generation-queue"):
            self.assertEqual(q[name]["available"] + q[name]["delayed"], 0)

    def expect_failure(self, args, code, field, input=None, env=None):
        proc = self.run_postline(*args, input=input, env=env, check=False)
        self.assertEqual(proc.returncode, code, proc.stderr)
        err = proc.stderr.decode()
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertIn(field, err)
        return err

    def test_header_injection_in_subject(self):
        self.expect_failure(["send", "--to", "bob@example.com", "--subject",
                             "Invoice 42\r\nBcc: eve@example.net", "--text", "x"], 65, "subject")
        self.assert_nothing_queued()

    def test_header_injection_in_recipient(self):
        self.expect_failure(["send", "--to", "bob@example.com\r\nRCPT TO:<eve@example.net>",
                             "--subject", "x", "--text", "x"], 65, "to")
        self.assert_nothing_queued()

    def test_invalid_address(self):
        self.expect_failure(["send", "--to", "not-an-address", "--subject", "x", "--text", "x"],
                            65, "to")
        self.assert_nothing_queued()

    def test_bad_priority(self):
        self.expect_failure(["send", "--to", "bob@example.com", "--subject", "x", "--text", "x",
                             "--priority", "11"], 65, "priority")
        self.assert_nothing_queued()

    def test_malformed_json(self):
        self.expect_failure(["send", "-"], 65, "malformed_json", input=b'{"to": ')
        self.assert_nothing_queued()

    def test_numbers_beyond_double_range_and_deep_nesting_exit_65_naming_the_field(self):
        """`"priority":1e400` aborted the CLI (exit 134, "terminate called … number
        overflow"); nesting 60,000 deep overflowed the stack. Every way in
        (send FILE, send -, send --jsonl) answers exit 65 with one line naming
        the field, and nothing is queued."""
        head = '{"to": "bob@example.com", "subject": "x", "text": "x", '
        digits = "9" * 400
        cases = [
            (head + '"priority": 1e400}', "priority: number 1e400 is out of range"),
            (head + '"priority": 1e309}', "priority: number 1e309 is out of range"),
            (head + '"priority": -1e400}', "priority: number -1e400 is out of range"),
            (head + '"priority": ' + digits + "}", "priority: number 999"),
            (head + '"producer_seq": -1' + "0" * 400 + "}", "producer_seq: number -100"),
            (head + '"attachments": [{"filename": "a", "size": 2e308}]}',
             "attachments[0].size: number 2e308"),
            ('{"a":' * 60000 + "1" + "}" * 60000, "json_too_deep"),
            (head + '"headers": ' + '{"X":' * 100000 + '"v"' + "}" * 100000 + "}",
             "json_too_deep"),
            (head.replace('"to": "bob@example.com", ', "") + '"to": ' + "[" * 100000 + "]" * 100000
             + "}", "json_too_deep"),
        ]
        for body, expected in cases:
            path = self.write("bad.json", body)
            good = json.dumps({"from": "billing@example.com", "to": "ann@example.com",
                               "subject": "ok", "text": "ok"})
            jsonl = self.write("bad.jsonl", good + "\n" + body + "\n")
            for args, input, prefix in ((["send", path], None, ""),
                                        (["send", "-"], body.encode(), ""),
                                        (["send", "--jsonl", jsonl], None, "line 2: ")):
                with self.subTest(args=args[:2], expected=expected):
                    err = self.expect_failure(args, 65, expected, input=input)
                    self.assertNotIn("terminate called", err)
                    self.assertIn(prefix, err)
                    if expected == "json_too_deep":
                        self.assertIn("deeper than 32 levels", err)
        self.assert_nothing_queued()

    def test_unreadable_attachment(self):
        self.expect_failure(["send", "--to", "bob@example.com", "--subject", "x", "--text", "x",
                             "--attach", "/nonexistent/invoice.pdf"], 66, "attachments[0]")
        self.assert_nothing_queued()

    def test_oversize_message(self):
        # Above the queue's 256 KiB the body goes to the blob folder; above the
        # envelope's 25 MiB budget it is refused.
        big = self.write("big.bin", os.urandom(26 * 1024 * 1024))
        self.expect_failure(["send", "--to", "bob@example.com", "--subject", "x", "--text", "x",
                             "--attach", big], 65, "too_large")
        self.assert_nothing_queued()

    def test_large_attachment_goes_through_the_blob_folder(self):
        server = self.smtp()
        pdf = os.urandom(600 * 1024)
        path = self.write("big.pdf", pdf)
        self.run_postline("send", "--to", "bob@example.com", "--subject", "Large", "--text", "x",
                          "--attach", path)
        blobs = os.path.join(self.data_dir, "blobs")
        self.assertEqual(len(os.listdir(blobs)), 1)
        self.run_worker()
        arrived = server.messages()
        self.assertEqual(len(arrived), 1)
        att = next(parse(arrived[0][2]).iter_attachments())
        self.assertEqual(att.get_content(), pdf)
        self.assertEqual(os.listdir(blobs), [])  # deleted once sent

    def test_bad_env_value(self):
        self.write(".env", "SMTP_PORT=seventy\n")
        err = self.expect_failure(["send", "--to", "bob@example.com", "--text", "x"], 2, "SMTP_PORT")
        self.assertIn("1–65535", err)
        os.remove(os.path.join(self.tmp, ".env"))
        self.assert_nothing_queued()

    def test_bad_line_in_jsonl_queues_nothing(self):
        good = json.dumps({"from": "a@example.com", "to": "b@example.com", "text": "x"})
        bad = json.dumps({"from": "a@example.com", "to": "b@example.com", "text": "x",
                          "priority": 0})
        self.expect_failure(["send", "--jsonl", self.write("b.jsonl", f"{good}\n{bad}\n")], 65,
                            "line 2")
        self.assert_nothing_queued()

    def test_config_check(self):
        ok = self.run_postline("config", "check", env={"SMTP_PASSWORD": "hunter2"})
        self.assertIn("QUEUE_PROVIDER=sqlite", ok.stdout.decode())
        self.assertIn("EMAIL_PROVIDER=file", ok.stdout.decode())
        self.assertNotIn("hunter2", ok.stdout.decode())
        bad = self.run_postline("config", "check", env={"QUEUE_PROVIDER": "kafka",
                                                        "POSTLINE_CONCURRENCY": "-1"}, check=False)
        self.assertEqual(bad.returncode, 2)
        self.assertIn("QUEUE_PROVIDER", bad.stderr.decode())
        self.assertIn("POSTLINE_CONCURRENCY", bad.stderr.decode())

    def test_health(self):
        server = self.smtp()
        ok = self.run_postline("health")
        doc = json.loads(ok.stdout)
        self.assertEqual(doc["status"], "ok")
        self.assertTrue(doc["transport"]["ok"])
        server.stop()
        bad = self.run_postline("health", check=False)
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(json.loads(bad.stdout)["status"], "unhealthy")


if __name__ == "__main__":
    unittest.main()
