"""Invoices end to end: UBL 2.1 and our JSON → `postline invoice send` → worker → SMTP."""

import glob
import json
import os
import subprocess
import unittest

from harness import SOURCE_DIR, PostlineTestCase, parse

UBL_DIR = os.environ.get("POSTLINE_UBL_DIR", os.path.join(SOURCE_DIR, "..", "shared", "data", "ubl"))
UBL_FILES = sorted(glob.glob(os.path.join(UBL_DIR, "*", "*.xml")))
EXAMPLES = sorted(glob.glob(os.path.join(SOURCE_DIR, "examples", "*.json")))


class InvoiceTest(PostlineTestCase):

    def render(self, path, fmt="pdf"):
        out = os.path.join(self.tmp, "render." + fmt)
        self.run_postline("invoice", "render", path, "-o", out, "--format", fmt)
        with open(out, "rb") as f:
            return f.read()

    def pdftotext(self, pdf_bytes):
        path = self.write("check.pdf", pdf_bytes)
        return subprocess.run(["pdftotext", "-layout", path, "-"], capture_output=True,
                              check=True).stdout.decode()

    def test_every_ubl_invoice_arrives_once_with_the_rendered_pdf(self):
        if not UBL_FILES:
            self.skipTest(f"UBL invoices not found under {UBL_DIR}")
        server = self.smtp()
        self.env["FRONTEND_URL"] = "https://billing.example.com"
        # Invoices without a buyer e-mail get an explicit recipient.
        ids = {}
        for path in UBL_FILES:
            proc = self.run_postline("invoice", "send", path, check=False)
            if proc.returncode != 0:
                self.assertIn(b"missing_recipient", proc.stderr)
                proc = self.run_postline("invoice", "send", path, "--to",
                                         "Accounts Payable <ap@example.com>")
            line = json.loads(proc.stdout.decode().splitlines()[0])
            self.assertEqual(line["queue"], "invoice-generation-queue")  # priority 5
            ids[line["id"]] = path
        self.assertEqual(len(ids), len(UBL_FILES))

        events = self.run_worker("--concurrency", "4")
        self.assertEqual(sum(1 for e in events if e["event"] == "sent"), len(UBL_FILES))

        arrived = server.messages()
        self.assertEqual(len(arrived), len(UBL_FILES))
        seen = set()
        for _, _, raw in arrived:
            msg = parse(raw)
            envelope_id = msg["Message-ID"].strip("<>").split("@")[0]
            self.assertIn(envelope_id, ids)
            self.assertNotIn(envelope_id, seen)
            seen.add(envelope_id)
            path = ids[envelope_id]
            pdfs = [a for a in msg.iter_attachments() if a.get_content_type() == "application/pdf"]
            self.assertEqual(len(pdfs), 1, path)
            self.assertTrue(pdfs[0].get_filename().endswith(".pdf"))
            self.assertEqual(pdfs[0].get_content(), self.render(path),
                             f"{path}: attachment differs from `postline invoice render`")
            self.assertTrue(msg.get_body(("plain",)).get_content().strip(), path)
            self.assertTrue(msg.get_body(("html",)).get_content().strip(), path)

    def test_examples_render_and_name_their_parties(self):
        if not EXAMPLES:
            self.fail("examples/*.json missing")
        for path in EXAMPLES:
            with open(path) as f:
                doc = json.load(f)
            text = self.pdftotext(self.render(path))
            self.assertIn(doc["number"], text, path)
            # Arabic may come back with spaces between letters; compare without them.
            squeezed = "".join(text.split())
            self.assertIn("".join(doc["buyer"]["name"].split()), squeezed, path)

    def test_render_formats(self):
        path = EXAMPLES[0]
        eml = parse(self.render(path, "eml"))
        self.assertEqual(len([a for a in eml.iter_attachments()
                              if a.get_content_type() == "application/pdf"]), 1)
        html = self.render(path, "html").decode()
        self.assertIn("<table", html)

    def test_bad_invoices_are_named_and_the_others_still_go(self):
        good = EXAMPLES[0]
        broken = self.write("broken.json", '{"number": "X-1", ')
        with open(good) as f:
            doc = json.load(f)
        doc["currency"] = "XYZ"
        bad_currency = self.write("bad-currency.json", json.dumps(doc))
        proc = self.run_postline("invoice", "send", broken, good, bad_currency, check=False)
        self.assertNotEqual(proc.returncode, 0)
        err = proc.stderr.decode()
        self.assertIn("broken.json", err)
        self.assertIn("bad-currency.json", err)
        self.assertIn("currency", err)
        self.assertEqual(len(proc.stdout.decode().splitlines()), 1)  # the good one was queued
        self.assertEqual(self.queues()["invoice-generation-queue"]["available"], 1)


if __name__ == "__main__":
    unittest.main()
