// AWS test peers for postline's tests: an SQS emulator (local-aws-sqs, or
// fauxqs), an SES emulator (aws-ses-v2-local), an S3 emulator (fauxqs), and in front of them a proxy that checks
// every request's SigV4 signature with the AWS SDK for JavaScript's signer
// (@smithy/signature-v4) before forwarding it. The emulators check no
// signatures; the proxy is what makes a wrongly signed request fail.
//
// Usage: node aws_peers.mjs [--sqs] [--sqs-emulator local-aws-sqs|fauxqs] [--ses] [--s3 BUCKET]... [--ses-paused] [--session-token TOKEN]
//                           [--deny sqs:DeleteMessage,ses:SendEmail] [--port N]
//                           [--host ADDR]   (the proxy's address; default 127.0.0.1)
//                           [--keep-running] (do not stop when stdin closes; for containers)
//   --sqs-emulator picks the SQS emulator behind the proxy (default
//   local-aws-sqs; fauxqs for the behaviours local-aws-sqs gets wrong, e.g.
//   its PurgeQueue takes a fixed 60 s).
// Prints one JSON line on stdout once listening:
//   {"endpoint":"http://127.0.0.1:P","sqs":"http://127.0.0.1:Q","ses":"http://127.0.0.1:R"}
// and runs until SIGTERM/SIGINT or (without --keep-running) stdin closes.
//
// Credentials the proxy accepts: access key AKIDPOSTLINETEST, secret
// postline/test/secret/key (and the session token when --session-token is
// given: then a request without a signed X-Amz-Security-Token fails).
//
// Routing: by the service in the signature's credential scope (sqs → the SQS
// emulator, ses → the SES emulator). The IAM action of each request
// (sqs:<X-Amz-Target action>, ses:SendEmail for POST /v2/email/outbound-emails)
// is counted; denied actions get AccessDenied (HTTP 403) without reaching the
// emulator.
//
// Control endpoints (unsigned, on the proxy):
//   GET  /__peers/counts         {"sqs:ReceiveMessage": 12, ...}
//   POST /__peers/counts/reset
//   POST /__peers/deny           body: ["sqs:DeleteMessage", ...] (replaces the list)
//   POST /__peers/fault          body: {"action":"ses:SendEmail","status":400,"code":"X","count":1}
//                                answers the next `count` requests of the action with that error
//   GET  /__peers/rejected       number of requests refused for their signature
//   GET  /__peers/s3-list/BUCKET the object keys in BUCKET (with --s3 BUCKET)
import http from "node:http";
import { createHash, createHmac } from "node:crypto";
import { SignatureV4 } from "@smithy/signature-v4";
import { createSqsServer } from "local-aws-sqs";
import { startFauxqs } from "fauxqs";
import sesModule from "aws-ses-v2-local";
const sesServer = sesModule.default ?? sesModule;

export const ACCESS_KEY_ID = "AKIDPOSTLINETEST";
export const SECRET_ACCESS_KEY = "postline/test/secret/key";

// A SHA-256 for the signer built on node:crypto (the interface @smithy expects).
class Sha256 {
  constructor(secret) {
    this.hash = secret ? createHmac("sha256", secret) : createHash("sha256");
  }
  update(data) {
    this.hash.update(typeof data === "string" ? Buffer.from(data) : data);
  }
  async digest() {
    return new Uint8Array(this.hash.digest());
  }
}

function parseArgs(argv) {
  const args = { sqs: false, sqsEmulator: "local-aws-sqs", ses: false, sessionToken: "", deny: [], port: 0, host: "127.0.0.1", s3Buckets: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--sqs") args.sqs = true;
    else if (a === "--sqs-emulator") args.sqsEmulator = argv[++i];
    else if (a === "--ses") args.ses = true;
    else if (a === "--session-token") args.sessionToken = argv[++i];
    else if (a === "--deny") args.deny = argv[++i].split(",").filter(Boolean);
    else if (a === "--port") args.port = Number(argv[++i]);
    else if (a === "--ses-paused") args.sesPaused = true;
    else if (a === "--host") args.host = argv[++i];
    else if (a === "--keep-running") args.keepRunning = true;
    else if (a === "--s3") args.s3Buckets.push(argv[++i]);
    else throw new Error(`unknown argument ${a}`);
  }
  if (!["local-aws-sqs", "fauxqs"].includes(args.sqsEmulator)) {
    throw new Error(`--sqs-emulator: ${args.sqsEmulator} is not local-aws-sqs or fauxqs`);
  }
  return args;
}

function listenPort(server) {
  return server.address().port;
}

// Parses "AWS4-HMAC-SHA256 Credential=AKID/20260101/us-east-1/sqs/aws4_request,
// SignedHeaders=a;b, Signature=hex".
function parseAuthorization(value) {
  const m = /^AWS4-HMAC-SHA256 Credential=([^,]+),\s*SignedHeaders=([^,]+),\s*Signature=([0-9a-f]+)$/.exec(
    value || "",
  );
  if (!m) return null;
  const [accessKeyId, date, region, service] = m[1].split("/");
  return { accessKeyId, date, region, service, signedHeaders: m[2].split(";"), signature: m[3] };
}

function amzDateToDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || "");
  if (!m) return null;
  return new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
}

async function verify(req, body, sessionToken) {
  const auth = parseAuthorization(req.headers["authorization"]);
  if (!auth) return { code: "MissingAuthenticationToken", message: "no SigV4 Authorization header" };
  if (auth.accessKeyId !== ACCESS_KEY_ID) {
    return { code: "InvalidClientTokenId", message: `unknown access key ${auth.accessKeyId}` };
  }
  const date = amzDateToDate(req.headers["x-amz-date"]);
  if (!date || Math.abs(Date.now() - date.getTime()) > 15 * 60 * 1000) {
    return { code: "SignatureDoesNotMatch", message: "X-Amz-Date missing or more than 15 minutes off" };
  }
  if (sessionToken && !auth.signedHeaders.includes("x-amz-security-token")) {
    return { code: "IncompleteSignature", message: "x-amz-security-token is not in SignedHeaders" };
  }
  const url = new URL(req.url, "http://placeholder");
  const headers = {};
  for (const name of auth.signedHeaders) {
    const v = req.headers[name];
    if (v === undefined) return { code: "SignatureDoesNotMatch", message: `signed header ${name} absent` };
    headers[name] = Array.isArray(v) ? v.join(",") : v;
  }
  const query = {};
  for (const [k, v] of url.searchParams) query[k] = v;
  const signer = new SignatureV4({
    service: auth.service,
    region: auth.region,
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET_ACCESS_KEY, sessionToken: sessionToken || undefined },
    sha256: Sha256,
    applyChecksum: false,
    uriEscapePath: auth.service !== "s3",
  });
  const signed = await signer.sign(
    { method: req.method, protocol: "http:", hostname: headers.host, path: url.pathname, query, headers, body },
    { signingDate: date, signableHeaders: new Set(auth.signedHeaders), unsignableHeaders: new Set() },
  );
  const expected = parseAuthorization(signed.headers["authorization"]);
  if (!expected || expected.signature !== auth.signature ||
      expected.signedHeaders.join(";") !== auth.signedHeaders.join(";")) {
    return { code: "SignatureDoesNotMatch", message: "The request signature we calculated does not match the signature you provided" };
  }
  return null;
}

function actionOf(service, req) {
  if (service === "sqs") {
    const target = req.headers["x-amz-target"] || "";
    return "sqs:" + (target.split(".")[1] || "Unknown");
  }
  if (service === "ses") {
    if (req.method === "POST" && req.url.startsWith("/v2/email/outbound-emails")) return "ses:SendEmail";
    if (req.method === "GET" && req.url.startsWith("/v2/email/account")) return "ses:GetAccount";
    return "ses:Other";
  }
  return `${service}:${req.method}`;
}

function sendError(res, service, status, code, message) {
  if (service === "sqs") {
    res.writeHead(status, {
      "content-type": "application/x-amz-json-1.0",
      "x-amzn-query-error": `${code};Sender`,
    });
    res.end(JSON.stringify({ __type: `com.amazonaws.sqs#${code}`, message }));
  } else {
    res.writeHead(status, { "content-type": "application/json", "x-amzn-errortype": code });
    res.end(JSON.stringify({ message }));
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const upstream = {};
  const servers = [];
  let fauxqs = null;
  const startFauxqsOnce = async () => {
    // fauxqs serves SQS and S3 on one port; it listens on every interface,
    // we address it as 127.0.0.1 only.
    if (!fauxqs) {
      fauxqs = await startFauxqs({ port: 0, logger: false, init: { buckets: args.s3Buckets } });
      servers.push(fauxqs);
    }
    return fauxqs;
  };
  if (args.sqs && args.sqsEmulator === "fauxqs") {
    upstream.sqs = (await startFauxqsOnce()).port;
  } else if (args.sqs) {
    const sqs = await createSqsServer({ port: 0, hostname: "127.0.0.1", emulateQueueCreationLifecycle: false });
    servers.push(sqs);
    upstream.sqs = listenPort(sqs);
  }
  if (args.ses) {
    // What GET /v2/email/account (GetAccount) answers.
    process.env.AWS_SES_ACCOUNT = JSON.stringify({
      DedicatedIpAutoWarmupEnabled: false,
      Details: { AdditionalContactEmailAddresses: [], ContactLanguage: "EN", MailType: "TRANSACTIONAL",
        ReviewDetails: { CaseId: "none", Status: "GRANTED" }, UseCaseDescription: "tests", WebsiteURL: "http://localhost" },
      EnforcementStatus: "HEALTHY", ProductionAccessEnabled: true, SendingEnabled: !args.sesPaused,
      SendQuota: { Max24HourSend: 50000, MaxSendRate: 14, SentLast24Hours: 0 },
      SuppressionAttributes: { SuppressedReasons: [] },
    });
    const ses = await sesServer({ host: "127.0.0.1", port: 0 });
    servers.push(ses);
    upstream.ses = listenPort(ses);
  }
  if (args.s3Buckets.length) {
    // S3 is path-style here.
    upstream.s3 = (await startFauxqsOnce()).port;
  }
  let deny = new Set(args.deny);
  // Injected faults: action → {status, code, count} answered instead of forwarding.
  let faults = {};
  let counts = {};
  let rejected = 0;

  const proxy = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      const body = Buffer.concat(chunks);
      try {
        if (req.url.startsWith("/__peers/")) {
          if (req.url === "/__peers/counts" && req.method === "GET") {
            res.writeHead(200, { "content-type": "application/json" });
            return res.end(JSON.stringify(counts));
          }
          if (req.url === "/__peers/counts/reset") {
            counts = {};
            res.writeHead(200);
            return res.end("{}");
          }
          if (req.url === "/__peers/deny") {
            deny = new Set(JSON.parse(body.toString() || "[]"));
            res.writeHead(200);
            return res.end("{}");
          }
          if (req.url === "/__peers/fault") {
            const f = JSON.parse(body.toString());
            faults[f.action] = { status: f.status, code: f.code, count: f.count ?? 1e9 };
            res.writeHead(200);
            return res.end("{}");
          }
          if (req.url.startsWith("/__peers/s3-list/") && upstream.s3) {
            // The bucket's object keys (unsigned ListObjectsV2 straight to the emulator).
            const bucket = req.url.slice("/__peers/s3-list/".length);
            const xml = await new Promise((resolve, reject) => {
              http.get({ host: "127.0.0.1", port: upstream.s3, path: `/${bucket}?list-type=2` }, (r) => {
                const parts = [];
                r.on("data", (c) => parts.push(c));
                r.on("end", () => resolve(Buffer.concat(parts).toString()));
              }).on("error", reject);
            });
            const keys = [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
            res.writeHead(200, { "content-type": "application/json" });
            return res.end(JSON.stringify(keys));
          }
          if (req.url === "/__peers/rejected") {
            res.writeHead(200, { "content-type": "application/json" });
            return res.end(JSON.stringify(rejected));
          }
          res.writeHead(404);
          return res.end();
        }
        const auth = parseAuthorization(req.headers["authorization"]);
        const service = auth ? auth.service : "unknown";
        const problem = await verify(req, body, args.sessionToken);
        if (problem) {
          rejected++;
          process.stderr.write(`aws_peers: refused ${req.method} ${req.url}: ${problem.code}: ${problem.message}\n`);
          return sendError(res, service, 403, problem.code, problem.message);
        }
        const action = actionOf(service, req);
        counts[action] = (counts[action] || 0) + 1;
        if (deny.has(action)) {
          return sendError(res, service, 403, "AccessDenied",
            `User: arn:aws:iam::123456789012:user/postline is not authorized to perform: ${action}`);
        }
        const fault = faults[action];
        if (fault && fault.count > 0) {
          fault.count--;
          return sendError(res, service, fault.status, fault.code, `injected ${fault.code}`);
        }
        const port = upstream[service];
        if (!port) return sendError(res, service, 400, "UnknownService", `no emulator for ${service}`);
        const headers = { ...req.headers, host: `127.0.0.1:${port}`, "content-length": String(body.length) };
        delete headers["transfer-encoding"];
        const forward = http.request({ host: "127.0.0.1", port, method: req.method, path: req.url, headers }, (up) => {
          res.writeHead(up.statusCode, up.headers);
          up.pipe(res);
        });
        forward.on("error", (e) => sendError(res, service, 502, "BadGateway", String(e)));
        // A client that gives up on a long poll closes its connection: drop the upstream request too.
        res.on("close", () => forward.destroy());
        forward.end(body);
      } catch (e) {
        process.stderr.write(`aws_peers: ${e.stack}\n`);
        if (!res.headersSent) sendError(res, "unknown", 500, "InternalError", String(e));
      }
    });
  });
  proxy.keepAliveTimeout = 60000;
  await new Promise((resolve) => proxy.listen(args.port, args.host, resolve));
  const out = { endpoint: `http://127.0.0.1:${listenPort(proxy)}` };
  if (upstream.sqs) out.sqs = `http://127.0.0.1:${upstream.sqs}`;
  if (upstream.ses) out.ses = `http://127.0.0.1:${upstream.ses}`;
  process.stdout.write(JSON.stringify(out) + "\n");

  const shutdown = () => process.exit(0);
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
  if (!args.keepRunning) {
    process.stdin.on("end", shutdown);
    process.stdin.resume();
  }
}

main().catch((e) => {
  process.stderr.write(`aws_peers: ${e.stack}\n`);
  process.exit(1);
});
