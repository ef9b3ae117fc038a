#!/usr/bin/python3
"""SQS requests per delivered e-mail, and per queue per hour while idle.

Counts every request at the SigV4-checking proxy (tests/peers/aws_peers.mjs)
in front of the local-aws-sqs emulator while `postline worker` delivers
COUNT e-mails to a local SMTP server (tests/peers/smtp_server.py), then while
it idles for IDLE seconds. Not a test: it prints the figures.

Usage: bench/sqs_requests.py BUILD_DIR [COUNT=1000] [IDLE=120] [STALL=0]
       (POSTLINE_CONCURRENCY in the environment: the worker's senders, default 4;
       STALL: seconds the SMTP server waits before each 250, for a slower server)
Targets: <= 0.35 requests per e-mail; <= 180 ReceiveMessage per queue per hour idle.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PEERS = os.path.join(ROOT, "tests", "peers")


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    idle = int(sys.argv[3]) if len(sys.argv) > 3 else 120
    stall = sys.argv[4] if len(sys.argv) > 4 else "0"
    postline = os.path.abspath(os.path.join(build, "src", "app", "postline"))
    tmp = tempfile.mkdtemp(prefix="postline-sqs-bench-")
    peers = subprocess.Popen(["node", os.path.join(PEERS, "aws_peers.mjs"), "--sqs"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    endpoint = json.loads(peers.stdout.readline())["endpoint"]
    smtp = subprocess.Popen(["/usr/bin/python3", os.path.join(PEERS, "smtp_server.py"), "--host",
                             "127.0.0.1", "--port", "0", "--maildir", os.path.join(tmp, "mail")]
                            + (["--stall-before-250", stall] if float(stall) > 0 else []),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    smtp_port = json.loads(smtp.stdout.readline())["port"]
    env = {"PATH": os.environ["PATH"], "HOME": tmp, "POSTLINE_DATA_DIR": os.path.join(tmp, "var"),
           "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDPOSTLINETEST",
           "AWS_SECRET_ACCESS_KEY": "postline/test/secret/key", "AWS_ENDPOINT": endpoint,
           "EMAIL_PROVIDER": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port),
           "POSTLINE_SMTP_TLS": "none", "POSTLINE_LOG_LEVEL": "warn",
           "POSTLINE_CONCURRENCY": os.environ.get("POSTLINE_CONCURRENCY", "4")}

    def counts():
        with urllib.request.urlopen(endpoint + "/__peers/counts") as r:
            return json.loads(r.read())

    def reset():
        urllib.request.urlopen(urllib.request.Request(endpoint + "/__peers/counts/reset",
                                                      data=b"", method="POST")).read()

    try:
        out = subprocess.run([postline, "queues", "create"], env=env, check=True,
                             capture_output=True, text=True).stdout
        env.update(dict(l.split("=", 1) for l in out.splitlines() if l.startswith("SQS_")))
        env["QUEUE_PROVIDER"] = "sqs"
        with open(os.path.join(tmp, "batch.jsonl"), "w") as f:
            for i in range(count):
                f.write(json.dumps({"from": "billing@kokoka.example", "to": f"r{i}@example.com",
                                    "subject": f"Invoice {i}", "text": "hello",
                                    "priority": 1 if i % 10 == 0 else 5}) + "\n")
        subprocess.run([postline, "send", "--jsonl", "batch.jsonl"], env=env, cwd=tmp, check=True,
                       capture_output=True)
        # One worker delivers everything, then idles; requests are counted at
        # the proxy (the worker is the only client meanwhile).
        maildir = os.path.join(tmp, "mail")
        reset()
        start = time.time()
        worker = subprocess.Popen([postline, "worker"], env=env, cwd=tmp,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while sum(1 for n in os.listdir(maildir) if n.endswith(".eml")) < count:
            if time.time() - start > 600:
                raise RuntimeError("not delivered within 600 s")
            time.sleep(0.2)
        busy_s = time.time() - start
        time.sleep(2)  # the last deletes
        busy = counts()
        total = sum(busy.values())
        print(f"delivered {count} e-mails in {busy_s:.1f} s "
              f"(POSTLINE_CONCURRENCY={env['POSTLINE_CONCURRENCY']}, SMTP stall {stall} s)")
        print(f"SQS requests while delivering: {total} = {total / count:.3f} per e-mail (target <= 0.35)")
        for k, v in sorted(busy.items()):
            print(f"  {k:32} {v:6}  {v / count:.3f}/e-mail")

        reset()
        time.sleep(idle)
        quiet = counts()
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
        receives = quiet.get("sqs:ReceiveMessage", 0)
        per_queue_hour = receives / 2 * 3600 / idle
        print(f"idle {idle} s: {sum(quiet.values())} requests, ReceiveMessage {receives} "
              f"= {per_queue_hour:.0f} per queue per hour (target <= 180)")
        for k, v in sorted(quiet.items()):
            print(f"  {k:32} {v:6}")
    finally:
        for p in (peers, smtp):
            p.terminate()
            p.wait(timeout=10)


if __name__ == "__main__":
    main()
