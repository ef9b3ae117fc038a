"""Shared helpers for postline's end-to-end tests.

The tests run the real `postline` binary against a real SMTP server
(tests/peers/smtp_server.py on aiosmtpd) and check what arrives with Python's
`email` package. Run with Debian's /usr/bin/python3.
"""

import email
import email.policy
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

SOURCE_DIR = os.environ.get(
    "POSTLINE_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
POSTLINE = os.environ.get("POSTLINE_BIN", os.path.join(SOURCE_DIR, "build", "src", "app", "postline"))
SMTP_SERVER = os.path.join(SOURCE_DIR, "tests", "peers", "smtp_server.py")
PYTHON = "/usr/bin/python3"


class SmtpServer:
    """tests/peers/smtp_server.py on 127.0.0.1 and a free port."""

    def __init__(self, maildir, *args):
        self.maildir = maildir
        os.makedirs(maildir, exist_ok=True)
        self.proc = subprocess.Popen(
            [PYTHON, SMTP_SERVER, "--host", "127.0.0.1", "--port", "0", "--maildir", maildir, *args],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("smtp_server.py did not start")
        self.port = json.loads(line)["port"]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def messages(self):
        """Accepted messages in arrival order: (seq, envelope dict, parsed message)."""
        out = []
        for name in os.listdir(self.maildir):
            if not name.endswith(".eml"):
                continue
            seq = int(name[:-4])
            with open(os.path.join(self.maildir, name), "rb") as f:
                raw = f.read()
            try:
                with open(os.path.join(self.maildir, f"{seq}.json")) as f:
                    env = json.load(f)
            except (FileNotFoundError, json.JSONDecodeError):
                continue  # the server is still writing this one; it shows up next time
            out.append((seq, env, raw))
        out.sort(key=lambda m: m[0])
        return out


def poison_bodies():
    """Queue bodies another producer may write (a Python producer on SQS writes
    any integer): numbers beyond double range in known and unknown fields, and
    nesting 100,000 deep. Each is refused by the envelope reader."""
    head = ('{"v":1,"id":"01JPOISON%d","from":"billing@example.com","to":"x@example.com",'
            '"subject":"poison","text":"x",')
    return [
        (head % 0 + '"priority":1e400}').encode(),
        (head % 1 + '"priority":-1e309}').encode(),
        (head % 2 + '"priority":' + "9" * 400 + "}").encode(),
        (head % 3 + '"producer_seq":1' + "0" * 400 + "}").encode(),
        (head % 4 + '"headers":' + "[" * 100000 + "]" * 100000 + "}").encode(),
        ('{"to":' + "[" * 100000 + "1" + "]" * 100000 + "}").encode(),
    ]


def rewrite_queued_bodies(data_dir, bodies):
    """Replaces the bodies of the oldest len(bodies) messages in the embedded
    queue's database (queue.db) by `bodies`, MD5 included: what a producer that
    writes to the queue directly leaves there."""
    db = sqlite3.connect(os.path.join(data_dir, "queue.db"))
    with db:
        rows = db.execute("SELECT seq FROM messages ORDER BY seq LIMIT ?", (len(bodies),)).fetchall()
        assert len(rows) == len(bodies), rows
        for (seq,), body in zip(rows, bodies):
            db.execute("UPDATE message_bodies SET body = ? WHERE seq = ?", (body, seq))
            db.execute("UPDATE messages SET md5 = ? WHERE seq = ?",
                       (hashlib.md5(body).hexdigest(), seq))
    db.close()


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


class PostlineTestCase(unittest.TestCase):
    """A fresh data directory per test, and helpers to run postline in it."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="postline-e2e-")
        self.data_dir = os.path.join(self.tmp, "var")
        self.servers = []
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.tmp,
            "POSTLINE_DATA_DIR": self.data_dir,
            "POSTLINE_LOG_LEVEL": "info",
        }

    def tearDown(self):
        for s in self.servers:
            s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def smtp(self, *args):
        server = SmtpServer(os.path.join(self.tmp, f"mail{len(self.servers)}"), *args)
        self.servers.append(server)
        self.env.update({
            "EMAIL_PROVIDER": "smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(server.port),
            "POSTLINE_SMTP_TLS": "none",
        })
        return server

    def run_postline(self, *args, input=None, env=None, timeout=120, check=True):
        proc = subprocess.run([POSTLINE, *args], input=input, capture_output=True,
                              env={**self.env, **(env or {})}, cwd=self.tmp, timeout=timeout)
        if check and proc.returncode != 0:
            self.fail(f"postline {' '.join(args)} exited {proc.returncode}:\n"
                      f"{proc.stderr.decode(errors='replace')}")
        return proc

    def write(self, name, content):
        path = os.path.join(self.tmp, name)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(path, mode) as f:
            f.write(content)
        return path

    def queues(self):
        out = self.run_postline("queues", "--json").stdout
        return {q["queue"]: q for q in json.loads(out)}

    def run_worker(self, *args, env=None, timeout=300):
        """Runs `postline worker --until-empty`; returns the JSON log events."""
        proc = self.run_postline("worker", "--until-empty", "--wait-time", "1", *args,
                                 env=env, timeout=timeout)
        return [json.loads(line) for line in proc.stderr.decode().splitlines() if line.startswith("{")]
