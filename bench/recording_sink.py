#!/usr/bin/python3
"""SMTP sink that records when each probe message arrived.

smtp-sink cannot timestamp single messages, so the priority-lane latency run
uses this sink (aiosmtpd, no TLS, no AUTH). For every message whose Subject is
"prio-<n>" it records "<n> <arrival time, ns since the epoch>" — taken when
the message's data is complete, just before the 250 reply — and counts all
other messages. Each record is appended to --out (flushed) as it arrives;
on SIGTERM a last line "# others <count>" is written and the sink exits.

Usage: recording_sink.py --port PORT --out FILE
"""
import argparse
import asyncio
import re
import signal
import time

from aiosmtpd.smtp import SMTP

PROBE = re.compile(rb"^Subject: prio-(\d+)\r?$", re.MULTILINE)


class Recorder:
    def __init__(self, out):
        self.out = out
        self.others = 0

    async def handle_DATA(self, server, session, envelope):
        now = time.time_ns()
        head = envelope.original_content or envelope.content
        end = head.find(b"\r\n\r\n")
        match = PROBE.search(head, 0, end if end >= 0 else len(head))
        if match:
            self.out.write(f"{int(match.group(1))} {now}\n")
            self.out.flush()
        else:
            self.others += 1
        return "250 OK"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    out = open(args.out, "w")
    recorder = Recorder(out)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(
            lambda: SMTP(recorder, decode_data=False, enable_SMTPUTF8=True,
                         data_size_limit=0, auth_require_tls=False),
            "127.0.0.1", args.port))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.run_until_complete(stop.wait())
    server.close()
    out.write(f"# others {recorder.others}\n")
    out.close()


if __name__ == "__main__":
    main()
