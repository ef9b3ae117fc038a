#!/usr/bin/env node
// A small client of postline's HTTP API, using Node's built-in fetch only.
//
//   node api_client.mjs --base http://127.0.0.1:8080 --dir UBL_DIR --count 50 \
//        --to fallback@example.com [--token T] [--timeout 120]
//
// E-mails --count UBL invoices from --dir (cycling through the files) with
// POST /v1/invoices:email; an invoice without a buyer e-mail (422, field
// "to") is sent again with ?to=<--to>. Then polls GET /v1/emails/{id} until
// every e-mail is sent or dead, or --timeout seconds pass. Prints one JSON
// object: {"queued": [...], "failed": [...], "states": {id: state}, "sent": n}.
import { readdir, readFile } from "node:fs/promises";
import { basename, join } from "node:path";

function parseArgs(argv) {
  const args = { count: 50, timeout: 120, concurrency: 4 };
  for (let i = 2; i < argv.length; i += 2) args[argv[i].replace(/^--/, "")] = argv[i + 1];
  for (const k of ["count", "timeout", "concurrency"]) args[k] = Number(args[k]);
  if (!args.base || !args.dir || !args.to) {
    throw new Error("usage: api_client.mjs --base URL --dir UBL_DIR --to ADDRESS [--count N]");
  }
  return args;
}

async function listXml(dir) {
  const out = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith(".xml")) out.push(join(entry.path ?? dir, entry.name));
  }
  return out.sort();
}

async function main() {
  const args = parseArgs(process.argv);
  const headers = args.token ? { Authorization: `Bearer ${args.token}` } : {};
  const files = await listXml(args.dir);
  if (files.length === 0) throw new Error(`no .xml files under ${args.dir}`);

  const queued = [];
  const failed = [];
  const post = async (file, round, xml, to) => {
    const url = new URL("/v1/invoices:email", args.base);
    if (to) url.searchParams.append("to", to);
    const res = await fetch(url, {
      method: "POST",
      headers: {
        ...headers,
        "Content-Type": "application/xml",
        "Idempotency-Key": `${basename(file)}#${round}`,
      },
      body: xml,
    });
    return { status: res.status, body: await res.json() };
  };

  // --count invoices, --concurrency requests at a time.
  let next = 0;
  const worker = async () => {
    while (next < args.count) {
      const i = next++;
      const file = files[i % files.length];
      const round = Math.floor(i / files.length);
      const xml = await readFile(file);
      let r = await post(file, round, xml, null);
      if (r.status === 422 && r.body.error?.field === "to") r = await post(file, round, xml, args.to);
      if (r.status === 202) {
        queued.push({ file: basename(file), id: r.body.id, queue: r.body.queue, invoice: r.body.invoice });
      } else {
        failed.push({ file: basename(file), status: r.status, error: r.body.error });
      }
    }
  };
  await Promise.all(Array.from({ length: args.concurrency }, worker));

  // Poll every e-mail to a final state.
  const states = {};
  const deadline = Date.now() + args.timeout * 1000;
  let pending = queued.map((q) => q.id);
  while (pending.length > 0 && Date.now() < deadline) {
    const still = [];
    for (const id of pending) {
      const res = await fetch(new URL(`/v1/emails/${id}`, args.base), { headers });
      const body = await res.json();
      states[id] = res.status === 200 ? body.state : `http_${res.status}`;
      if (states[id] !== "sent" && states[id] !== "dead") still.push(id);
    }
    pending = still;
    if (pending.length > 0) await new Promise((r) => setTimeout(r, 250));
  }
  const sent = Object.values(states).filter((s) => s === "sent").length;
  process.stdout.write(JSON.stringify({ queued, failed, states, sent }) + "\n");
}

main().catch((e) => {
  process.stderr.write(`api_client: ${e.stack || e}\n`);
  process.exit(1);
});
