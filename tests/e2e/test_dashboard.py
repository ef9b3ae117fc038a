"""The web dashboard in a real browser (Debian's Chromium via playwright-core).

`postline serve` runs the API, the dashboard and the worker against aiosmtpd,
which refuses RCPT TO bad@… with 550. The test queues e-mails — one of them
to bad@ with a hostile subject and an invoice PDF — and lets the browser:
log in, read the counts, the waiting e-mail, the dead letter, its reply and
its preview; then the SMTP server is restarted on the same port without the
refusal (the recipient's server was fixed), the browser redrives the dead
letter and watches its e-mail page until it reads "sent".

Screenshots of every page land in <build>/dashboard-screenshots (or
$POSTLINE_SCREENSHOT_DIR).
"""

import json
import os
import socket
import subprocess
import time
import unittest
import urllib.request
import base64
from datetime import datetime, timedelta, timezone

from harness import POSTLINE, SOURCE_DIR, PostlineTestCase, SmtpServer

BROWSER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboard_browser.mjs")
PLAYWRIGHT = os.path.join(SOURCE_DIR, "tests", "peers", "node_modules", "playwright-core")
CHROMIUM = "/usr/bin/chromium"
TOKEN = "dashboard-test-token-7c1e"
HOSTILE_SUBJECT = "<script>alert(1)</script> Invoice 2026-0042"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def screenshot_dir():
    path = os.environ.get("POSTLINE_SCREENSHOT_DIR")
    if not path:
        path = os.path.join(os.path.dirname(os.path.abspath(POSTLINE)), "..", "..",
                            "dashboard-screenshots")
    path = os.path.abspath(path)
    os.makedirs(path, exist_ok=True)
    return path


class DashboardBrowserTest(PostlineTestCase):
    def setUp(self):
        super().setUp()
        for need, what in ((CHROMIUM, "Debian's chromium"),
                           (PLAYWRIGHT, "tests/peers/node_modules/playwright-core")):
            if not os.path.exists(need):
                self.fail(f"{what} is missing ({need}); run scripts/bootstrap")
        self.serve = None

    def tearDown(self):
        self.stop_serve()
        super().tearDown()

    # --- postline serve ---------------------------------------------------

    def start_serve(self):
        self.serve_log = open(os.path.join(self.tmp, "serve.log"), "w")
        env = {**self.env,
               "POSTLINE_API_TOKEN": TOKEN,
               "POSTLINE_RETRY_MIN": "3",
               "POSTLINE_RETRY_MAX": "6",
               "POSTLINE_MAX_RECEIVE_COUNT": "1000"}
        self.serve = subprocess.Popen([POSTLINE, "serve", "--listen", "127.0.0.1:0"], env=env,
                                      cwd=self.tmp, stdout=subprocess.PIPE, stderr=self.serve_log,
                                      text=True)
        line = self.serve.stdout.readline()
        if not line:
            self.fail("postline serve did not start:\n" + self.read_serve_log())
        self.port = json.loads(line)["port"]

    def enqueue(self, envelope):
        """POST /v1/emails, as the invoicing system does; returns the envelope id."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/v1/emails", data=json.dumps(envelope).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            self.assertEqual(response.status, 202)
            return json.loads(response.read())["id"]

    def read_serve_log(self):
        self.serve_log.flush()
        with open(os.path.join(self.tmp, "serve.log")) as f:
            return f.read()[-4000:]

    def stop_serve(self):
        if self.serve and self.serve.poll() is None:
            self.serve.terminate()
            try:
                self.serve.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.serve.kill()
                self.serve.wait()
        if self.serve:
            self.serve_log.close()
            self.serve.stdout.close()

    def browser(self, phase, expect):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.tmp,
               "DASHBOARD_URL": f"http://127.0.0.1:{self.port}", "DASHBOARD_TOKEN": TOKEN,
               "SCREENSHOT_DIR": self.shots, "DASHBOARD_EXPECT": json.dumps(expect)}
        proc = subprocess.run(["node", BROWSER_SCRIPT, phase], env=env, capture_output=True,
                              text=True, timeout=150)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
        result = json.loads(lines[-1]) if lines else {}
        if proc.returncode != 0 or not result.get("ok"):
            self.fail(f"browser phase {phase} failed: {result.get('error') or proc.stderr[-3000:]}\n"
                      f"saw: {json.dumps(result)}\nserve log:\n{self.read_serve_log()}")
        return result

    def api_status(self, envelope_id):
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/v1/emails/{envelope_id}",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def wait_for(self, what, predicate, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.3)
        self.fail(f"timed out waiting for {what}\nserve log:\n{self.read_serve_log()}")

    # --- the test -----------------------------------------------------------

    def test_inspect_and_redrive_a_dead_letter_in_the_browser(self):
        self.shots = screenshot_dir()
        smtp = self.smtp("--reject-rcpt", "bad@=550", "--reject-rcpt", "busy@=451")
        self.start_serve()

        pdf_path = os.path.join(self.tmp, "invoice.pdf")
        self.run_postline("invoice", "render",
                          os.path.join(SOURCE_DIR, "examples", "schulgeld-de.json"), "-o", pdf_path)
        with open(pdf_path, "rb") as f:
            pdf = {"filename": "Rechnung-2026-0042.pdf", "content_type": "application/pdf",
                   "content_base64": base64.b64encode(f.read()).decode()}
        sender = "Billing <billing@school.example>"
        self.enqueue({"from": sender, "to": "Zoë Müller <zoe@example.com>", "priority": 1,
                      "subject": "Reset your password", "text": "Open the link."})
        self.enqueue({"from": sender, "to": "parent@example.com", "subject": "Invoice 2026-0041",
                      "text": "Your invoice is attached.", "attachments": [pdf]})
        self.enqueue({"from": sender, "to": "Bad Address <bad@example.com>",
                      "subject": HOSTILE_SUBJECT, "text": "Your invoice is attached.",
                      "html": "<p>Your invoice <b>2026-0042</b> is attached.</p>"
                              "<script>alert(2)</script>",
                      "attachments": [pdf]})
        busy = self.enqueue({"from": sender, "to": "busy@example.com",
                             "subject": "Invoice 2026-0044", "text": "Retried."})
        later = (datetime.now(timezone.utc) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.enqueue({"from": sender, "to": "later@example.com",
                      "subject": "Invoice 2026-0043 (scheduled)", "text": "Scheduled.",
                      "send_at": later})

        # The worker inside `serve` delivers two and dead-letters one.
        self.wait_for("two deliveries", lambda: len(smtp.messages()) == 2)
        self.wait_for("a retry", lambda: self.api_status(busy).get("attempts", 0) >= 1 and
                      self.api_status(busy).get("state") in ("retrying", "sending"))
        self.wait_for("the dead letter",
                      lambda: self.queues()["invoice-generation-queue"]["dlq_depth"] == 1)

        expect = {"sent": 2, "dead": 1, "queued": 1, "waiting": 2,
                  "queued_subject": "Invoice 2026-0043 (scheduled)",
                  "retrying_subject": "Invoice 2026-0044",
                  "dead_subject": HOSTILE_SUBJECT, "dead_to": "bad@example.com"}
        seen = self.browser("inspect", expect)
        self.assertEqual(seen["dead_subject"], HOSTILE_SUBJECT)
        self.assertEqual(seen["reply_code"], "550")
        self.assertFalse(seen["cookie"]["secure"], "loopback: no Secure attribute")

        # The recipient's server is fixed: same port, no refusal.
        port = smtp.port
        smtp.stop()
        fixed = SmtpServer(os.path.join(self.tmp, "mail-fixed"), "--port", str(port))
        self.servers.append(fixed)

        expect["envelope_id"] = seen["envelope_id"]
        seen = self.browser("redrive", expect)
        self.assertEqual(seen["states"][-1], "sent")
        self.assertEqual(seen["forged_status"], 403)

        recipients = [env["rcpt_tos"] for _, env, _ in fixed.messages()]
        self.assertIn(["bad@example.com"], recipients)
        self.assertEqual(self.queues()["invoice-generation-queue"]["dlq_depth"], 0)
        for name in ("queues", "queues-phone", "messages", "dead-letters", "dead-letter", "preview",
                     "redriven", "email", "sent"):
            self.assertTrue(os.path.getsize(os.path.join(self.shots, f"dashboard-{name}.png")) > 1000)


if __name__ == "__main__":
    unittest.main()
