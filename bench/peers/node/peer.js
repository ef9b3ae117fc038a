// The peer postline is measured against in scripts/bench: the same job done
// the way a Node.js team typically builds it — BullMQ on Redis for the queue,
// Nodemailer with pooled SMTP connections for delivery, PDFKit for the
// invoice PDF. Written to each library's documented recommendations: pooled
// SMTP, addBulk for bulk enqueue, removeOnComplete so Redis does not grow,
// no debug logging.
//
// Modes (all options --key value):
//   invoices --redis-port P --invoice FILE --count N [--priority-every K] [--render-once 1]
//   worker   --redis-port P --smtp-port S --concurrency C [--until N]
//   backlog  --redis-port P --count N
//   priority --redis-port P --count N --interval-ms MS --out FILE
//   render   --invoice FILE --iterations N
//   enqueue  --redis-port P --count N --batch B
'use strict';

const fs = require('node:fs');
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');
const nodemailer = require('nodemailer');
const PDFDocument = require('pdfkit');

const QUEUE = 'emails';
const FONT = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf';
const FONT_BOLD = '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf';
const FROM = '"Grundschule Große Straße" <kasse@school.example.com>';

function parseArgs() {
  const [mode, ...rest] = process.argv.slice(2);
  const opts = {};
  for (let i = 0; i + 1 < rest.length; i += 2) opts[rest[i].replace(/^--/, '')] = rest[i + 1];
  return { mode, opts };
}

function connection(opts) {
  // Workers need maxRetriesPerRequest: null (BullMQ documentation).
  return new IORedis({ host: '127.0.0.1', port: Number(opts['redis-port']), maxRetriesPerRequest: null });
}

function newQueue(opts) {
  return new Queue(QUEUE, {
    connection: connection(opts),
    defaultJobOptions: {
      removeOnComplete: true,
      removeOnFail: 1000,
      attempts: 10,
      backoff: { type: 'exponential', delay: 15000 },
    },
  });
}

// ---------------------------------------------------------------- invoice PDF

const fontCache = {};
function font(path) {
  if (!fontCache[path]) fontCache[path] = fs.readFileSync(path);
  return fontCache[path];
}

function cents(decimal) {
  return Math.round(Number(decimal) * 100);
}

// Lines, VAT breakdown and totals as the postline reader computes them
// (per-line net rounded to cents, VAT per rate group).
function computeTotals(invoice) {
  const lines = invoice.lines.map((l) => ({ ...l, net: Math.round(Number(l.quantity) * cents(l.unit_price)) }));
  const groups = new Map();
  for (const l of lines) {
    const key = `${l.tax_category}/${l.tax_rate}`;
    const g = groups.get(key) || { category: l.tax_category, rate: Number(l.tax_rate), taxable: 0 };
    g.taxable += l.net;
    groups.set(key, g);
  }
  for (const a of invoice.allowances || []) {
    const key = `${a.tax_category}/${a.tax_rate}`;
    const g = groups.get(key) || { category: a.tax_category, rate: Number(a.tax_rate), taxable: 0 };
    g.taxable -= cents(a.amount);
    groups.set(key, g);
  }
  let net = 0;
  let tax = 0;
  for (const g of groups.values()) {
    g.tax = Math.round((g.taxable * g.rate) / 100);
    net += g.taxable;
    tax += g.tax;
  }
  return { lines, groups: [...groups.values()], net, tax, total: net + tax };
}

function renderPdf(invoice) {
  return new Promise((resolve, reject) => {
    const money = new Intl.NumberFormat('de-DE', { style: 'currency', currency: invoice.currency });
    const fmt = (c) => money.format(c / 100);
    const doc = new PDFDocument({ size: 'A4', margin: 50, info: { Title: `Rechnung ${invoice.number}` } });
    const chunks = [];
    doc.on('data', (c) => chunks.push(c));
    doc.on('end', () => resolve(Buffer.concat(chunks)));
    doc.on('error', reject);
    doc.registerFont('Body', font(FONT));
    doc.registerFont('Bold', font(FONT_BOLD));
    const t = computeTotals(invoice);
    const s = invoice.seller;
    const b = invoice.buyer;

    doc.font('Bold').fontSize(14).text(s.name, 50, 50);
    doc.font('Body').fontSize(9).text([...(s.address_lines || []), `${s.postcode || ''} ${s.city || ''}`, s.email || ''].join('\n'));
    if (s.tax_id) doc.text(`USt-IdNr. ${s.tax_id}`);
    doc.moveDown();
    doc.fontSize(10).text([b.name, ...(b.address_lines || []), `${b.postcode || ''} ${b.city || ''}`].join('\n'));
    doc.moveDown();
    doc.font('Bold').fontSize(16).text(`Rechnung ${invoice.number}`);
    doc.font('Body').fontSize(10).text(`Rechnungsdatum ${invoice.issue_date}    Fällig am ${invoice.due_date || ''}`);
    if (invoice.student) doc.text(`Schüler/in: ${invoice.student}  Klasse ${invoice.class || ''}  ${invoice.term || ''}`);
    doc.moveDown();

    const cols = [50, 300, 350, 420, 480];
    const header = (y) => {
      doc.font('Bold').fontSize(9);
      ['Beschreibung', 'Menge', 'Einzelpreis', 'USt.', 'Betrag'].forEach((h, i) => doc.text(h, cols[i], y, { width: i ? 60 : 240 }));
      doc.font('Body');
      return y + 16;
    };
    let y = header(doc.y);
    for (const l of t.lines) {
      const height = doc.heightOfString(l.description, { width: 240 });
      if (y + height > doc.page.height - 120) {
        doc.addPage();
        y = header(50);
      }
      doc.text(l.description, cols[0], y, { width: 240 });
      doc.text(String(l.quantity), cols[1], y, { width: 45, align: 'right' });
      doc.text(fmt(cents(l.unit_price)), cols[2], y, { width: 60, align: 'right' });
      doc.text(`${l.tax_rate} %`, cols[3], y, { width: 50, align: 'right' });
      doc.text(fmt(l.net), cols[4], y, { width: 65, align: 'right' });
      y += Math.max(height, 12) + 4;
    }
    if (y > doc.page.height - 200) {
      doc.addPage();
      y = 50;
    }
    y += 8;
    doc.text(`Summe netto ${fmt(t.net)}`, 300, y, { width: 245, align: 'right' });
    for (const g of t.groups) {
      y += 14;
      doc.text(`USt. ${g.category} ${g.rate} % auf ${fmt(g.taxable)}: ${fmt(g.tax)}`, 250, y, { width: 295, align: 'right' });
    }
    y += 16;
    doc.font('Bold').text(`Zu zahlen ${fmt(t.total)}`, 300, y, { width: 245, align: 'right' });
    doc.font('Body').moveDown(2);
    const p = invoice.payment || {};
    doc.text(`${invoice.payment_terms || ''}\nIBAN ${p.iban || ''}  BIC ${p.bic || ''}\nVerwendungszweck: ${p.reference || invoice.number}`, 50);
    doc.text(`Online bezahlen: http://localhost:3000/invoices/${encodeURIComponent(invoice.number)}/pay`, { link: `http://localhost:3000/invoices/${encodeURIComponent(invoice.number)}/pay` });
    doc.end();
  });
}

function invoiceMail(invoice, pdf, priority) {
  const total = computeTotals(invoice).total;
  const amount = new Intl.NumberFormat('de-DE', { style: 'currency', currency: invoice.currency }).format(total / 100);
  const link = `http://localhost:3000/invoices/${encodeURIComponent(invoice.number)}/pay`;
  return {
    to: `"${invoice.buyer.name}" <${invoice.buyer.email}>`,
    subject: `Rechnung ${invoice.number} von ${invoice.seller.name}`,
    text: `Guten Tag ${invoice.buyer.name},\n\nanbei Ihre Rechnung ${invoice.number} über ${amount}, fällig am ${invoice.due_date}.\nOnline bezahlen: ${link}\n\n${invoice.seller.name}\n`,
    html: `<p>Guten Tag ${invoice.buyer.name},</p><p>anbei Ihre Rechnung <b>${invoice.number}</b> über ${amount}, fällig am ${invoice.due_date}.</p><p><a href="${link}">Online bezahlen</a></p><p>${invoice.seller.name}</p>`,
    filename: `${invoice.number.replace(/[^A-Za-z0-9._-]/g, '_')}.pdf`,
    pdf: pdf.toString('base64'),
    priority,
  };
}

function smallMail(subject) {
  return {
    to: '"Zoë Müller" <zoe.mueller@example.com>',
    subject,
    text: 'Hallo Zoë,\n\nbitte bestätigen Sie Ihre E-Mail-Adresse: http://localhost:3000/verify?token=4f2a9c0e7b1d4e8f9a3c5b7d1e2f3a4b\n\nFörderverein Grundschule Große Straße e. V.\n',
  };
}

// ---------------------------------------------------------------- modes

async function invoices(opts) {
  const queue = newQueue(opts);
  const base = JSON.parse(fs.readFileSync(opts.invoice, 'utf8'));
  const count = Number(opts.count);
  const every = Number(opts['priority-every'] || 10);
  const renderOnce = Number(opts['render-once'] || 0) !== 0;
  let firstPdf = null;
  let render = 0n;
  let enqueue = 0n;
  for (let i = 0; i < count; i++) {
    const invoice = { ...base, number: `${base.number}-${i}` };
    const priority = every > 0 && i % every === 0 ? 1 : 5;
    const t0 = process.hrtime.bigint();
    const pdf = renderOnce && firstPdf ? firstPdf : await renderPdf(invoice);
    if (renderOnce) firstPdf = pdf;
    const data = invoiceMail(invoice, pdf, priority);
    const t1 = process.hrtime.bigint();
    await queue.add('invoice', data, { priority });
    enqueue += process.hrtime.bigint() - t1;
    render += t1 - t0;
  }
  await queue.close();
  console.log(JSON.stringify({ render_seconds: Number(render) / 1e9, enqueue_seconds: Number(enqueue) / 1e9 }));
}

async function worker(opts) {
  const concurrency = Number(opts.concurrency);
  const until = Number(opts.until || 0);
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: concurrency,
    maxMessages: Infinity,
    host: '127.0.0.1',
    port: Number(opts['smtp-port']),
    secure: false,
    ignoreTLS: true,
  });
  let done = 0;
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  const w = new Worker(
    QUEUE,
    async (job) => {
      const d = job.data;
      const mail = { from: FROM, to: d.to, subject: d.subject, text: d.text, html: d.html };
      if (d.pdf) mail.attachments = [{ filename: d.filename, content: Buffer.from(d.pdf, 'base64'), contentType: 'application/pdf' }];
      const info = await transport.sendMail(mail);
      return info.messageId;
    },
    { connection: connection(opts), concurrency },
  );
  w.on('completed', () => {
    if (until > 0 && ++done >= until) finish();
  });
  w.on('failed', (job, err) => console.error(`failed ${job && job.id}: ${err.message}`));
  process.on('SIGTERM', finish);
  process.on('SIGINT', finish);
  await finished;
  await w.close();
  transport.close();
  process.exit(0);
}

async function backlog(opts) {
  const queue = newQueue(opts);
  const count = Number(opts.count);
  const t0 = process.hrtime.bigint();
  for (let done = 0; done < count; ) {
    const jobs = [];
    for (; done < count && jobs.length < 1000; done++) jobs.push({ name: 'mail', data: smallMail('regular'), opts: { priority: 5 } });
    await queue.addBulk(jobs);
  }
  await queue.close();
  console.log(JSON.stringify({ seconds: Number(process.hrtime.bigint() - t0) / 1e9 }));
}

async function priority(opts) {
  const queue = newQueue(opts);
  const count = Number(opts.count);
  const interval = Number(opts['interval-ms']);
  const lines = [];
  const start = Date.now();
  for (let i = 0; i < count; i++) {
    const wait = start + i * interval - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const ns = BigInt(Date.now()) * 1000000n + (process.hrtime.bigint() % 1000000n);
    await queue.add('mail', smallMail(`prio-${i}`), { priority: 1 });
    lines.push(`${i} ${ns}`);
  }
  fs.writeFileSync(opts.out, lines.join('\n') + '\n');
  await queue.close();
}

async function render(opts) {
  const invoice = JSON.parse(fs.readFileSync(opts.invoice, 'utf8'));
  const iterations = Number(opts.iterations);
  let pdf = await renderPdf(invoice);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) pdf = await renderPdf(invoice);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6 / iterations;
  console.log(JSON.stringify({ ms_per_render: ms, pdf_bytes: pdf.length }));
}

async function enqueue(opts) {
  const queue = newQueue(opts);
  const count = Number(opts.count);
  const batch = Number(opts.batch);
  await queue.waitUntilReady();
  const t0 = process.hrtime.bigint();
  if (batch <= 1) {
    for (let i = 0; i < count; i++) await queue.add('mail', smallMail('Bitte bestätigen'), { priority: 5 });
  } else {
    for (let done = 0; done < count; ) {
      const jobs = [];
      for (; done < count && jobs.length < batch; done++) jobs.push({ name: 'mail', data: smallMail('Bitte bestätigen'), opts: { priority: 5 } });
      await queue.addBulk(jobs);
    }
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await queue.close();
  console.log(JSON.stringify({ per_second: count / s, seconds: s }));
}

const MODES = { invoices, worker, backlog, priority, render, enqueue };
const { mode, opts } = parseArgs();
if (!MODES[mode]) {
  console.error(`usage: node peer.js ${Object.keys(MODES).join('|')} --key value ...`);
  process.exit(64);
}
MODES[mode](opts).then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
