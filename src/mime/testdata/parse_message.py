"""Parses an RFC 5322 message file with Python's email package
(policy=default) and prints what it found as JSON on stdout.

Usage: /usr/bin/python3 parse_message.py MESSAGE_FILE
"""
import base64
import email
import email.policy
import json
import sys


def mailboxes(header):
    if header is None:
        return None
    return [{"name": a.display_name, "email": a.addr_spec} for a in header.addresses]


def main():
    with open(sys.argv[1], "rb") as f:
        msg = email.message_from_binary_file(f, policy=email.policy.default)
    defects = [type(d).__name__ for d in msg.defects]
    parts = []
    for part in msg.walk():
        defects += [type(d).__name__ for d in part.defects]
        parts.append(part.get_content_type())
    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    attachments = []
    for part in msg.iter_attachments():
        attachments.append({
            "filename": part.get_filename(),
            "content_type": part.get_content_type(),
            "content_base64": base64.b64encode(part.get_payload(decode=True)).decode("ascii"),
        })
    out = {
        "subject": str(msg["subject"]) if msg["subject"] is not None else None,
        "from": mailboxes(msg["from"]),
        "to": mailboxes(msg["to"]),
        "cc": mailboxes(msg["cc"]),
        "reply_to": mailboxes(msg["reply-to"]),
        "message_id": str(msg["message-id"]),
        "date": msg["date"].datetime.isoformat() if msg["date"] is not None else None,
        "header_names": [name for name in msg.keys()],
        "headers": [[name, str(value)] for name, value in msg.items()],
        "content_type": msg.get_content_type(),
        "parts": parts,
        "text": plain.get_content() if plain is not None else None,
        "html": html.get_content() if html is not None else None,
        "attachments": attachments,
        "defects": defects,
    }
    json.dump(out, sys.stdout, ensure_ascii=True)


if __name__ == "__main__":
    main()
