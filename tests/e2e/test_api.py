"""End-to-end tests of the HTTP API: `postline serve` / `postline api` on
127.0.0.1 and a free port, real HTTP clients (Python sockets and http.client,
Node's fetch), the worker delivering to aiosmtpd, promtool on /metrics."""

import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

import yaml

from harness import (POSTLINE, SOURCE_DIR, PostlineTestCase, parse, poison_bodies,
                     rewrite_queued_bodies)

UBL_DIR = os.path.abspath(os.path.join(SOURCE_DIR, "..", "shared", "data", "ubl"))
TOKEN = "s3cret-t0ken-for-tests"
FROM = "Billing <billing@example.com>"


class Server:
    """A running `postline serve|api --listen 127.0.0.1:0`."""

    def __init__(self, case, command="serve", env=None):
        self.stderr_path = os.path.join(case.tmp, f"{command}-{len(case.api_servers)}.log")
        self.stderr = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [POSTLINE, command, "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE,
            stderr=self.stderr, env={**case.env, **(env or {})}, cwd=case.tmp)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            raise RuntimeError(f"postline {command} did not start:\n{self.log()}")
        self.port = json.loads(line)["port"]
        self.token = (env or {}).get("POSTLINE_API_TOKEN")
        self.signalled = False

    def request(self, method, path, body=None, headers=None, token=True, timeout=30):
        """Returns (status, headers dict, body bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        h = dict(headers or {})
        if token and self.token:
            h.setdefault("Authorization", f"Bearer {self.token}")
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=h)
        res = conn.getresponse()
        data = res.read()
        conn.close()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, data

    def json(self, method, path, body=None, **kw):
        status, headers, data = self.request(method, path, body, **kw)
        return status, json.loads(data) if data else None

    def terminate(self):
        """SIGTERM once (a second one means "exit now")."""
        if not self.signalled:
            self.signalled = True
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout=60):
        if self.proc.poll() is None:
            self.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        self.proc.stdout.close()
        return self.proc.returncode

    def log(self):
        if not self.stderr.closed:
            self.stderr.flush()
        with open(self.stderr_path, "rb") as f:
            return f.read().decode(errors="replace")


def envelope(i=0, priority=5, **extra):
    doc = {"to": [f"user{i}@example.com"], "subject": f"Hello {i}", "text": f"Body {i}\n",
           "priority": priority}
    doc.update(extra)
    return doc


class ApiTestCase(PostlineTestCase):
    def setUp(self):
        super().setUp()
        self.api_servers = []
        self.env["POSTLINE_FROM"] = FROM
        self.env["POSTLINE_RETRY_MIN"] = "1"
        self.env["POSTLINE_RETRY_MAX"] = "2"

    def tearDown(self):
        for s in self.api_servers:
            s.stop()
        super().tearDown()

    def server(self, command="serve", env=None):
        s = Server(self, command, env)
        self.api_servers.append(s)
        return s

    def wait_state(self, server, envelope_id, states, timeout=60):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            status, body = server.json("GET", f"/v1/emails/{envelope_id}")
            if status == 200:
                last = body
                if body["state"] in states:
                    return body
            time.sleep(0.1)
        self.fail(f"{envelope_id} did not reach {states}; last: {last}")


class InvoiceDeliveryTest(ApiTestCase):
    def test_node_client_emails_50_ubl_invoices_until_sent(self):
        if not os.path.isdir(UBL_DIR):
            self.skipTest(f"UBL test data not found at {UBL_DIR}")
        if shutil.which("node") is None:
            self.skipTest("node is not installed")
        smtp = self.smtp()
        server = self.server("serve", {"POSTLINE_CONCURRENCY": "4"})
        proc = subprocess.run(
            ["node", os.path.join(os.path.dirname(__file__), "api_client.mjs"),
             "--base", f"http://127.0.0.1:{server.port}", "--dir", UBL_DIR, "--count", "50",
             "--to", "accounts@buyer.example", "--timeout", "150"],
            capture_output=True, text=True, timeout=240)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        result = json.loads(proc.stdout)
        self.assertEqual(result["failed"], [], "every invoice should be accepted")
        self.assertEqual(len(result["queued"]), 50)
        self.assertEqual(len({q["id"] for q in result["queued"]}), 50)
        self.assertEqual(result["sent"], 50, result["states"])
        self.assertTrue(all(q["queue"] == "invoice-generation-queue" for q in result["queued"]))

        messages = smtp.messages()
        self.assertEqual(len(messages), 50)
        for _, env, raw in messages:
            msg = parse(raw)
            pdfs = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
            self.assertEqual(len(pdfs), 1, msg["Subject"])
            self.assertTrue(pdfs[0].get_content().startswith(b"%PDF-"))
        # The status record names recipients, subject and the provider's id.
        some = result["queued"][0]["id"]
        status, body = server.json("GET", f"/v1/emails/{some}")
        self.assertEqual(body["state"], "sent")
        self.assertTrue(body["recipients"])
        self.assertTrue(body["subject"])
        self.assertIsNotNone(body["sent_at"])
        # Counted by the metrics decorator around the worker's observer.
        _, _, metrics = server.request("GET", "/metrics")
        sent = sum(float(v) for v in re.findall(
            r'^postline_emails_sent_total\{[^}]*lane="regular"[^}]*\} (\S+)$',
            metrics.decode(), re.M))
        self.assertEqual(sent, 50)
        self.assertEqual(server.stop(), 0)


class ConcurrencyTest(ApiTestCase):
    SLOW = 150
    FAST = 50

    def test_slow_clients_do_not_block_others(self):
        server = self.server("api")
        body = json.dumps(envelope(0)).encode()
        request = (b"POST /v1/emails HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Connection: close\r\nContent-Length: " + str(len(body)).encode() +
                   b"\r\n\r\n")
        slow_done = []
        slow_status = []
        lock = threading.Lock()
        started = threading.Barrier(self.SLOW + 1, timeout=60)
        fast_done = threading.Event()

        def slow_client():
            s = socket.create_connection(("127.0.0.1", server.port), timeout=60)
            try:
                s.sendall(request)
                started.wait()
                for i in range(len(body) - 1):  # one byte at a time
                    s.sendall(body[i:i + 1])
                    time.sleep(0.02)
                # The last byte only once every fast request was answered.
                fast_done.wait(timeout=90)
                s.sendall(body[-1:])
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
                with lock:
                    slow_status.append(int(data.split(b" ", 2)[1]))
                    slow_done.append(time.monotonic())
            finally:
                s.close()

        threads = [threading.Thread(target=slow_client) for _ in range(self.SLOW)]
        for t in threads:
            t.start()
        started.wait()  # every slow client has sent its header and holds its connection

        fast_status = []
        fast_done_at = []

        def fast_client(i):
            status, body_ = server.json("POST", "/v1/emails", envelope(i + 1))
            with lock:
                fast_status.append(status)
                fast_done_at.append(time.monotonic())

        fast = [threading.Thread(target=fast_client, args=(i,)) for i in range(self.FAST)]
        for t in fast:
            t.start()
        for t in fast:
            t.join(timeout=60)
        with lock:
            slow_finished_before_fast = len(slow_done)
            answered = sorted(fast_status)
        fast_done.set()
        # Every fast request was answered while all slow clients were still
        # sending (they hold their last byte until now).
        self.assertEqual(answered, [202] * self.FAST)
        self.assertEqual(slow_finished_before_fast, 0)
        for t in threads:
            t.join(timeout=120)
        self.assertEqual(sorted(slow_status), [202] * self.SLOW)
        status, q = server.json("GET", "/v1/queues")
        regular = {r["queue"]: r for r in q["queues"]}["invoice-generation-queue"]
        self.assertEqual(regular["available"], self.SLOW + self.FAST)
        self.assertEqual(server.stop(), 0)


class MetricsTest(ApiTestCase):
    def test_promtool_accepts_metrics_and_they_match_queues_json(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool (Debian package prometheus) is not installed")
        server = self.server("api", {"POSTLINE_DEPTH_ALARM": "2"})
        for i in range(3):
            self.assertEqual(server.json("POST", "/v1/emails", envelope(i, priority=5))[0], 202)
        self.assertEqual(server.json("POST", "/v1/emails", envelope(9, priority=1))[0], 202)
        status, headers, data = server.request("GET", "/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        check = subprocess.run([promtool, "check", "metrics"], input=data, capture_output=True,
                               timeout=60)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

        text = data.decode()

        def gauge(name, **labels):
            want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            for line in text.splitlines():
                m = re.match(r"^(\w+)\{([^}]*)\} (\S+)$", line)
                if m and m.group(1) == name and ",".join(sorted(m.group(2).split(","))) == want:
                    return float(m.group(3))
            self.fail(f"{name}{{{want}}} not in /metrics")

        for row in self.queues().values():
            q = row["queue"]
            self.assertEqual(gauge("postline_queue_messages_available", queue=q), row["available"])
            self.assertEqual(gauge("postline_queue_messages_in_flight", queue=q), row["in_flight"])
            self.assertEqual(gauge("postline_queue_messages_delayed", queue=q), row["delayed"])
            self.assertEqual(gauge("postline_queue_oldest_message_age_seconds", queue=q),
                             row["oldest_age_s"])
            self.assertEqual(gauge("postline_dlq_messages", queue=q, dlq=row["dlq"]),
                             row["dlq_depth"])
        self.assertEqual(gauge("postline_queue_messages_available",
                               queue="invoice-generation-queue"), 3)
        self.assertEqual(gauge("postline_queue_messages_available",
                               queue="priority-emails-queue"), 1)
        self.assertIn("postline_queue_depth_alarm_threshold 2", text)
        self.assertIn("postline_send_duration_seconds", text)
        # The regular lane holds 3 > 2: a warning naming the queue.
        alarms = [json.loads(l) for l in server.log().splitlines()
                  if '"queue_depth_alarm"' in l]
        self.assertTrue(alarms)
        self.assertEqual({a["queue"] for a in alarms}, {"invoice-generation-queue"})
        self.assertEqual(alarms[0]["level"], "warning")


class BadInputTest(ApiTestCase):
    def setUp(self):
        super().setUp()
        self.api = self.server("api", {"POSTLINE_API_TOKEN": TOKEN,
                                       "POSTLINE_HTTP_MAX_BODY": "4096"})

    def expect_error(self, status, field, method, path, body=None, headers=None, token=True,
                     code=None):
        got, _, data = self.api.request(method, path, body, headers, token=token)
        self.assertEqual(got, status, data)
        err = json.loads(data)["error"]
        self.assertEqual(err["field"], field, err)
        self.assertTrue(err["message"], err)
        if code:
            self.assertEqual(err["code"], code)
        self.assertNotIn("Traceback", err["message"])
        return err

    def test_each_bad_request_gets_its_4xx_and_nothing_is_queued(self):
        self.expect_error(401, "Authorization", "POST", "/v1/emails", envelope(), token=False)
        self.expect_error(401, "Authorization", "POST", "/v1/emails", envelope(),
                          headers={"Authorization": "Bearer wrong"}, code="unauthorized")
        self.expect_error(401, "Authorization", "GET", "/v1/queues", token=False)
        self.expect_error(400, "body", "POST", "/v1/emails", b'{"to": ["a@example.com"',
                          headers={"Content-Type": "application/json"}, code="malformed_json")
        self.expect_error(415, "Content-Type", "POST", "/v1/emails", json.dumps(envelope()).encode(),
                          headers={"Content-Type": "text/plain"})
        big = envelope(text="x" * 8000)
        self.expect_error(413, "body", "POST", "/v1/emails", big, code="payload_too_large")
        self.expect_error(422, "to[0]", "POST", "/v1/emails", envelope(to=["not an address"]))
        self.expect_error(422, "attachments[0].path", "POST", "/v1/emails",
                          envelope(attachments=[{"filename": "p", "content_type": "text/plain",
                                                 "path": "/etc/passwd"}]),
                          code="attachment_path_refused")
        self.expect_error(422, "subject", "POST", "/v1/emails",
                          envelope(subject="Hi\r\nBcc: victim@example.com"))
        self.expect_error(404, "id", "GET", "/v1/emails/01UNKNOWNID0000000000000000")
        self.expect_error(404, "path", "GET", "/v1/nothing-here")
        self.expect_error(405, "method", "DELETE", "/v1/emails")
        # A bad invoice: the totals it states don't add up.
        with open(os.path.join(SOURCE_DIR, "examples", "schulgeld-de.json")) as f:
            inv = json.load(f)
        inv.pop("number", None)
        err = self.expect_error(422, "/number", "POST", "/v1/invoices:email", inv)
        self.assertIn("number", err["message"])
        self.expect_error(415, "Content-Type", "POST", "/v1/invoices:render", b"<Invoice/>",
                          headers={"Content-Type": "application/pdf"})
        self.expect_error(422, "emails", "POST", "/v1/emails:batch", {"emails": []})
        # A header over 8 KiB.
        status, _, data = self.api.request("GET", "/healthz", headers={"X-Big": "y" * 9000})
        self.assertEqual(status, 431, data)

        # Nothing was queued, and the server still answers.
        status, q = self.api.json("GET", "/v1/queues")
        self.assertEqual(status, 200)
        for row in q["queues"]:
            self.assertEqual(row["available"] + row["in_flight"] + row["delayed"], 0, row)
        self.assertEqual(self.api.json("GET", "/healthz", token=False), (200, {"status": "ok"}))
        self.assertEqual(self.api.json("POST", "/v1/emails", envelope())[0], 202)
        # The token is never logged.
        self.assertNotIn(TOKEN, self.api.log())

    def test_non_loopback_listen_without_token_is_refused(self):
        proc = self.run_postline("api", "--listen", "0.0.0.0:0", check=False, timeout=30)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("POSTLINE_API_TOKEN", proc.stderr.decode())


class HostileBodiesTest(ApiTestCase):
    """Bodies from an attacker's fuzzer: nesting 60,000 deep killed `postline
    serve` (SIGSEGV in the recursive copy of the parsed document), numbers beyond
    double range answered 500, and one poison body on the queue stopped serve
    at start-up."""

    def test_deep_nesting_is_400_and_the_server_still_answers_and_delivers(self):
        server_smtp = self.smtp()
        server = self.server("serve")
        head = '{"to": ["a@example.com"], "subject": "Hi", "text": "x", '
        bodies = [
            ("/v1/emails", '{"a":' * 60000 + "1" + "}" * 60000),
            ("/v1/emails", head + '"headers": ' + '{"X":' * 100000 + '"v"' + "}" * 100000 + "}"),
            ("/v1/emails", '{"subject": "Hi", "text": "x", "to": ' + "[" * 100000 + "]" * 100000
             + "}"),
            ("/v1/emails", head + '"attachments": ' + "[" * 50000 + "]" * 50000 + "}"),
            ("/v1/emails:batch", '{"emails": [' + '{"a":' * 60000 + "1" + "}" * 60000 + "]}"),
        ]
        for path, body in bodies:
            status, _, data = server.request("POST", path, body.encode(),
                                             headers={"Content-Type": "application/json"})
            self.assertEqual(status, 400, data[:300])
            err = json.loads(data)["error"]
            self.assertEqual(err["code"], "json_too_deep")
            self.assertIn("deeper than 32 levels", err["message"])
            self.assertEqual(server.proc.poll(), None, server.log()[-2000:])
        self.assertEqual(server.json("GET", "/healthz"), (200, {"status": "ok"}))
        status, body = server.json("POST", "/v1/emails", envelope(7))
        self.assertEqual(status, 202, body)
        self.wait_state(server, body["id"], {"sent"})
        self.assertEqual(len(server_smtp.messages()), 1)

    def test_numbers_beyond_double_range_are_422_naming_the_field(self):
        server = self.server("api")
        digits = "4" * 400
        head = '{"to": ["a@example.com"], "subject": "Hi", "text": "x", '
        cases = [
            ("/v1/emails", head + '"priority": 1e309}', "priority"),
            ("/v1/emails", head + '"priority": -1e400}', "priority"),
            ("/v1/emails", head + '"priority": ' + digits + "}", "priority"),
            ("/v1/emails", head + '"trace": -' + digits + "}", "trace"),
            ("/v1/emails:batch", '{"emails": [' + head + '"priority": 2}, ' + head
             + '"priority": 1e400}]}', "emails[1].priority"),
        ]
        for path, body, field in cases:
            status, _, data = server.request("POST", path, body.encode(),
                                             headers={"Content-Type": "application/json"})
            self.assertEqual(status, 422, data)
            err = json.loads(data)["error"]
            self.assertEqual((err["code"], err["field"]), ("number_out_of_range", field))
            self.assertTrue(err["message"].startswith(f"{field}: number "), err)
        q = self.queues()
        for row in q.values():
            self.assertEqual(row["available"], 0, row)
        self.assertNotIn("api_handler_exception", server.log())

    def test_serve_starts_with_poison_bodies_queued_and_delivers_the_rest(self):
        smtp = self.smtp()
        poison = poison_bodies()
        lines = [json.dumps({"id": f"01JGOOD{i}", "from": FROM, "to": f"user{i}@example.com",
                             "subject": f"Good {i}", "text": "x"})
                 for i in range(len(poison) + 2)]
        self.run_postline("send", "--jsonl", self.write("mails.jsonl", "\n".join(lines)))
        rewrite_queued_bodies(self.data_dir, poison)
        server = self.server("serve")
        for i in range(len(poison), len(poison) + 2):
            self.wait_state(server, f"01JGOOD{i}", {"sent"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status, q = server.json("GET", "/v1/queues")
            if sum(r["dlq_depth"] for r in q["queues"]) == len(poison):
                break
            time.sleep(0.2)
        self.assertEqual(sum(r["dlq_depth"] for r in q["queues"]), len(poison), q)
        self.assertEqual(server.proc.poll(), None, server.log()[-2000:])
        self.assertEqual(len(smtp.messages()), 2)
        self.assertNotIn("terminate called", server.log())
        self.assertEqual(server.json("GET", "/healthz")[0], 200)


class IdempotencyAndBatchTest(ApiTestCase):
    def test_idempotency_key_returns_the_same_id_and_queues_once(self):
        api = self.server("api")
        s1, b1 = api.json("POST", "/v1/emails", envelope(1), headers={"Idempotency-Key": "ord-1"})
        s2, b2 = api.json("POST", "/v1/emails", envelope(1), headers={"Idempotency-Key": "ord-1"})
        self.assertEqual((s1, s2), (202, 202))
        self.assertEqual(b1["id"], b2["id"])
        self.assertTrue(b2["replayed"])
        self.assertNotIn("replayed", b1)
        # The envelope's own idempotency_key counts too.
        s3, b3 = api.json("POST", "/v1/emails", envelope(2, idempotency_key="ord-2"))
        s4, b4 = api.json("POST", "/v1/emails", envelope(2), headers={"Idempotency-Key": "ord-2"})
        self.assertEqual(b3["id"], b4["id"])
        # Header and envelope disagreeing is refused.
        s5, b5 = api.json("POST", "/v1/emails", envelope(3, idempotency_key="a"),
                          headers={"Idempotency-Key": "b"})
        self.assertEqual(s5, 422)
        self.assertEqual(b5["error"]["field"], "idempotency_key")
        q = self.queues()["invoice-generation-queue"]
        self.assertEqual(q["available"], 2)
        status, st = api.json("GET", f"/v1/emails/{b1['id']}")
        self.assertEqual(st["state"], "queued")
        self.assertEqual(st["idempotency_key"], "ord-1")

    def test_batch_with_one_bad_item_queues_the_others(self):
        api = self.server("api")
        batch = {"emails": [envelope(0, priority=1), envelope(1, to=["bad address"]),
                            envelope(2), envelope(3, idempotency_key="b-3"),
                            envelope(4, idempotency_key="b-3")]}
        status, body = api.json("POST", "/v1/emails:batch", batch)
        self.assertEqual(status, 200, body)
        results = body["results"]
        self.assertEqual([r["index"] for r in results], [0, 1, 2, 3, 4])
        self.assertEqual(results[0]["status"], "queued")
        self.assertEqual(results[0]["queue"], "priority-emails-queue")
        self.assertEqual(results[1]["status"], "rejected")
        self.assertEqual(results[1]["error"]["field"], "emails[1].to[0]")
        self.assertEqual(results[2]["status"], "queued")
        self.assertEqual(results[3]["status"], "queued")
        self.assertTrue(results[4]["replayed"])
        self.assertEqual(results[4]["id"], results[3]["id"])
        self.assertEqual((body["queued"], body["rejected"], body["replayed"]), (3, 1, 1))
        q = self.queues()
        self.assertEqual(q["priority-emails-queue"]["available"], 1)
        self.assertEqual(q["invoice-generation-queue"]["available"], 2)
        too_many = {"emails": [envelope(i) for i in range(501)]}
        status, body = api.json("POST", "/v1/emails:batch", too_many)
        self.assertEqual(status, 422)
        self.assertEqual(body["error"]["field"], "emails")


class StatusAndDlqTest(ApiTestCase):
    def test_dead_letter_is_listed_redriven_and_purged(self):
        self.smtp("--reject-rcpt", "bad@=550")
        server = self.server("serve")
        # Queued by the CLI: its "queued" lands in the same status store.
        cli = self.run_postline("send", "--to", "bad@example.com", "--subject", "Doomed",
                                "--text", "x", "--priority", "2")
        envelope_id = json.loads(cli.stdout)["id"]
        dead = self.wait_state(server, envelope_id, {"dead"})
        self.assertIn("550", dead["last_error"])
        self.assertEqual(dead["recipients"], ["bad@example.com"])
        self.assertEqual(dead["queue"], "priority-emails-queue")
        status, dlq = server.json("GET", "/v1/dlq")
        self.assertEqual(status, 200)
        self.assertEqual([d["id"] for d in dlq["dead"]], [envelope_id])
        self.assertEqual(dlq["dead"][0]["reason"], "permanent")
        depth = {d["dlq"]: d["depth"] for d in dlq["queues"]}
        self.assertEqual(depth["priority-emails-queue-dlq"], 1)

        status, moved = server.json("POST", "/v1/dlq:redrive", {"queue": "priority-emails-queue"})
        self.assertEqual(status, 200, moved)
        self.assertEqual(moved["total"], 1)
        again = self.wait_state(server, envelope_id, {"dead"})  # still refused: dead again
        self.assertGreaterEqual(again["attempts"], 1)
        status, purged = server.json("POST", "/v1/dlq:purge", {"queue": "all"})
        self.assertEqual(status, 200)
        self.assertEqual(purged["purged"]["priority-emails-queue-dlq"], 1)
        self.assertEqual(self.queues()["priority-emails-queue"]["dlq_depth"], 0)
        status, body = server.json("POST", "/v1/dlq:purge", {})
        self.assertEqual(status, 422)
        self.assertEqual(body["error"]["field"], "queue")
        status, ready = server.json("GET", "/readyz")
        self.assertEqual(status, 200, ready)
        self.assertTrue(ready["transport"]["ok"])

    def test_readyz_is_503_when_the_transport_is_unreachable(self):
        # A port nothing listens on.
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        server = self.server("serve", {"EMAIL_PROVIDER": "smtp", "SMTP_HOST": "127.0.0.1",
                                       "SMTP_PORT": str(port), "POSTLINE_SMTP_TLS": "none"})
        status, body = server.json("GET", "/readyz")
        self.assertEqual(status, 503)
        self.assertFalse(body["transport"]["ok"])
        self.assertTrue(body["queues"]["priority-emails-queue"]["ok"])
        self.assertEqual(server.json("GET", "/healthz")[0], 200)


class ShutdownTest(ApiTestCase):
    def test_sigterm_drains_an_inflight_request_and_finishes_the_send(self):
        smtp = self.smtp("--stall-before-250", "2")
        server = self.server("serve")
        status, first = server.json("POST", "/v1/emails", envelope(1, priority=1))
        self.assertEqual(status, 202)
        self.wait_state(server, first["id"], {"sending"})
        # A request whose body is still arriving when SIGTERM comes.
        body = json.dumps(envelope(2)).encode()
        s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        s.sendall(b"POST /v1/emails HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body[:10])
        time.sleep(0.3)
        server.terminate()
        time.sleep(0.3)
        s.sendall(body[10:])
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        s.close()
        self.assertIn(b" 202 ", data.split(b"\r\n", 1)[0])
        self.assertEqual(server.stop(), 0)
        # The send in progress finished before the process exited.
        self.assertEqual(len(smtp.messages()), 1)
        self.assertIn("http_stopped", server.log())


class OpenApiTest(ApiTestCase):
    def test_openapi_yaml_matches_the_route_table(self):
        routes = json.loads(self.run_postline("serve", "--routes").stdout)
        with open(os.path.join(SOURCE_DIR, "docs", "openapi.yaml")) as f:
            spec = yaml.safe_load(f)
        documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops
                      if m in ("get", "post", "put", "patch", "delete")}
        self.assertEqual({(r["method"], r["path"]) for r in routes}, documented)
        for r in routes:
            op = spec["paths"][r["path"]][r["method"].lower()]
            needs_token = op.get("security", spec["security"]) != []
            self.assertEqual(needs_token, r["token"], r)


if __name__ == "__main__":
    unittest.main()
