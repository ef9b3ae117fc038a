// Drives the postline dashboard in Debian's Chromium with playwright-core.
// Run by test_dashboard.py, once per phase:
//
//   node dashboard_browser.mjs inspect   log in, read the queues, messages,
//                                        dead letters, one dead letter and its
//                                        preview (checks the counts and that a
//                                        hostile subject renders as text)
//   node dashboard_browser.mjs redrive   redrive the dead letter and watch its
//                                        e-mail page until it reads "sent"
//
// Environment: DASHBOARD_URL (http://127.0.0.1:PORT), DASHBOARD_TOKEN (empty:
// no login), SCREENSHOT_DIR, DASHBOARD_EXPECT (JSON with what the test
// queued: sent, dead, queued, subject of the dead letter, its recipient).
// Prints one JSON line with what it saw; exits 1 with the reason on failure.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const peers = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', 'peers');
const { chromium } = require(path.join(peers, 'node_modules', 'playwright-core'));

const phase = process.argv[2];
const base = process.env.DASHBOARD_URL;
const token = process.env.DASHBOARD_TOKEN || '';
const shots = process.env.SCREENSHOT_DIR;
const expected = JSON.parse(process.env.DASHBOARD_EXPECT || '{}');
const seen = { phase };

function check(condition, message) {
  if (!condition) throw new Error(message);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(shots, `dashboard-${name}.png`), fullPage: true });
}

async function login(page) {
  await page.goto(`${base}/`);
  if (token) {
    check(new URL(page.url()).pathname === '/login', `expected the login form, got ${page.url()}`);
    await page.fill('#token', 'not-the-token');
    await page.click('form.login button');
    check((await page.textContent('.flash.error')).includes('not the API token'),
          'a wrong token must be refused');
    await page.fill('#token', token);
    await page.click('form.login button');
  }
  check(new URL(page.url()).pathname === '/', `login should land on /, got ${page.url()}`);
}

async function figure(page, queue, name) {
  return (await page.textContent(`[data-queue="${queue}"] dd.${name}`)).trim();
}

async function inspect(context, page) {
  await login(page);
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'postline_session');
  check(session && session.httpOnly && session.sameSite === 'Strict',
        `session cookie must be HttpOnly and SameSite=Strict: ${JSON.stringify(session)}`);
  seen.cookie = { httpOnly: session.httpOnly, sameSite: session.sameSite, secure: session.secure };

  // Queues: the counts the test produced.
  seen.regular_sent = Number(await figure(page, 'invoice-generation-queue', 'sent'));
  seen.priority_sent = Number(await figure(page, 'priority-emails-queue', 'sent'));
  seen.regular_failed = Number(await figure(page, 'invoice-generation-queue', 'failed'));
  seen.dlq_available = Number(await figure(page, 'invoice-generation-queue-dlq', 'available'));
  seen.regular_delayed = Number(await figure(page, 'invoice-generation-queue', 'delayed'));
  check(seen.regular_sent + seen.priority_sent === expected.sent,
        `sent in the last hour: ${seen.regular_sent}+${seen.priority_sent}, expected ${expected.sent}`);
  check(seen.dlq_available === expected.dead, `DLQ holds ${seen.dlq_available}, expected ${expected.dead}`);
  check(seen.regular_failed === expected.dead, `failed: ${seen.regular_failed}, expected ${expected.dead}`);
  check(seen.regular_delayed === expected.queued, `delayed: ${seen.regular_delayed}, expected ${expected.queued}`);
  check(await page.locator('svg.chart').count() === 2, 'one throughput chart per lane');
  check(await page.locator('.alarm-mark').count() === 0, 'no queue is over the alarm');
  await shot(page, 'queues');

  // Messages: the scheduled and the retrying e-mail, from the status store.
  await page.click('nav a[href="/messages"]');
  const rows = page.locator('table.messages tbody tr');
  seen.messages = await rows.count();
  check(seen.messages === expected.waiting, `messages listed: ${seen.messages}, expected ${expected.waiting}`);
  const scheduled = rows.filter({ hasText: expected.queued_subject });
  check(await scheduled.count() === 1, 'the scheduled e-mail is listed');
  check((await scheduled.locator('.state').textContent()).trim() === 'queued', 'scheduled: queued');
  const retrying = rows.filter({ hasText: expected.retrying_subject });
  check(await retrying.count() === 1, 'the retrying e-mail is listed');
  seen.retrying_state = (await retrying.locator('.state').textContent()).trim();
  check(['retrying', 'sending'].includes(seen.retrying_state), `retrying state ${seen.retrying_state}`);
  await shot(page, 'messages');

  // Dead letters: the hostile subject is text, not markup.
  await page.click('nav a[href="/dead-letters"]');
  const row = page.locator('section#invoice-generation-queue-dlq table.dead-letters tbody tr');
  check(await row.count() === expected.dead, `dead letters listed: ${await row.count()}`);
  seen.dead_subject = (await row.first().locator('td.subject').textContent()).trim();
  check(seen.dead_subject === expected.dead_subject,
        `subject must render as text: ${JSON.stringify(seen.dead_subject)}`);
  check(await page.locator('td.subject script').count() === 0, 'no script element from a subject');
  seen.reason = (await row.first().locator('.reason').textContent()).trim();
  check(seen.reason === 'permanent', `reason ${seen.reason}`);
  seen.envelope_id = await row.first().getAttribute('data-envelope');
  // Server-rendered: the HTML as sent (no script run) has the row, escaped.
  const raw = await (await page.request.get(`${base}/dead-letters`)).text();
  check(raw.includes('&lt;script&gt;alert(1)&lt;/script&gt; Invoice'), 'the page is rendered on the server, escaped');
  check(!raw.includes('<script>alert(1)'), 'no raw script from the subject in the HTML');
  await shot(page, 'dead-letters');

  // One dead letter.
  await row.first().locator('td a').first().click();
  seen.reply_code = (await page.textContent('dd.reply-code')).trim();
  seen.reply = (await page.textContent('dd.reply')).trim();
  check(seen.reply_code === '550', `reply code ${seen.reply_code}`);
  check(seen.reply.includes(expected.dead_to.split('@')[0]), `reply names the recipient: ${seen.reply}`);
  await shot(page, 'dead-letter');

  // Its preview: headers, text, the HTML part in a sandboxed frame, the PDF.
  await page.click('a.button:has-text("Preview")');
  const frame = page.locator('iframe.html-part');
  check(await frame.getAttribute('sandbox') === '', 'the HTML part is framed with sandbox=""');
  const headers = await page.textContent('table.headers');
  check(headers.includes('Message-ID') && headers.includes('Subject'), 'headers listed');
  const pdf = page.locator('ul.attachments a');
  check(await pdf.count() === 1, 'the PDF attachment is listed');
  const href = await pdf.getAttribute('href');
  const response = await page.request.get(`${base}${href}`);
  check(response.headers()['content-type'] === 'application/pdf', 'the attachment is served as PDF');
  check((await response.body()).subarray(0, 5).toString() === '%PDF-', 'the attachment is a PDF');
  const html = await page.request.get(`${base}${await frame.getAttribute('src')}`);
  check(html.headers()['content-security-policy'].startsWith('sandbox'), 'HTML part carries CSP sandbox');
  await page.waitForTimeout(200);  // let the frame paint for the screenshot
  await shot(page, 'preview');

  // Phone width: nothing wider than the screen.
  const phone = await context.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(`${base}/`);
  seen.phone_overflow = await phone.evaluate(
      () => document.documentElement.scrollWidth - window.innerWidth);
  check(seen.phone_overflow <= 0, `the queues page is ${seen.phone_overflow}px wider than a phone`);
  await shot(phone, 'queues-phone');
}

async function redrive(context, page) {
  await login(page);
  await page.click('nav a[href="/dead-letters"]');
  const row = page.locator(`tr[data-envelope="${expected.envelope_id}"]`);
  await row.locator('input[type=checkbox]').check();
  await page.click('section#invoice-generation-queue-dlq button[value="redrive"]');
  seen.flash = (await page.textContent('.flash')).trim();
  check(seen.flash.startsWith('Redrove 1 dead letter'), `flash: ${seen.flash}`);
  check(await page.locator(`tr[data-envelope="${expected.envelope_id}"]`).count() === 0,
        'the redriven letter left the DLQ');
  await shot(page, 'redriven');

  // Watch the e-mail until the worker has sent it.
  const states = [];
  for (let i = 0; i < 120; i++) {
    await page.goto(`${base}/emails/${expected.envelope_id}`);
    const state = (await page.textContent('#current-state')).trim();
    if (states[states.length - 1] !== state) states.push(state);
    if (state === 'sent') break;
    await page.waitForTimeout(500);
  }
  seen.states = states;
  check(states[states.length - 1] === 'sent', `the e-mail did not reach sent: ${states.join(' → ')}`);
  check((await page.textContent('dl.sent-record')).includes('250'), 'the sent record shows the reply');
  await shot(page, 'email');

  await page.goto(`${base}/sent?q=${encodeURIComponent(expected.dead_to)}`);
  const result = page.locator('table.sent tbody tr');
  check(await result.count() === 1, `search by recipient finds one e-mail, got ${await result.count()}`);
  check((await result.first().locator('.state').textContent()).trim() === 'sent', 'search shows sent');
  await shot(page, 'sent');

  // A forged cross-site POST is refused (no CSRF token, foreign Origin).
  const forged = await page.request.post(`${base}/dead-letters/action`, {
    form: { queue: 'invoice-generation-queue-dlq', action: 'delete-all', confirm: 'yes' },
    headers: { Origin: 'http://evil.example' },
  });
  seen.forged_status = forged.status();
  check(forged.status() === 403, `a forged POST must be 403, got ${forged.status()}`);
}

const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'postline-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 860 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync',
           '--disable-quic'],
  });
  const page = context.pages()[0] || await context.newPage();
  const dialogs = [];
  page.on('dialog', async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  if (phase === 'inspect') await inspect(context, page);
  else if (phase === 'redrive') await redrive(context, page);
  else throw new Error(`unknown phase ${phase}`);
  check(dialogs.length === 0, `a page opened a dialog: ${dialogs.join(', ')}`);
  console.log(JSON.stringify({ ok: true, ...seen }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e && e.stack || e), ...seen }));
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
