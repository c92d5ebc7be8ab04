// The admin web UI in a real headless Chromium: Debian's /usr/bin/chromium, driven by
// playwright-core, against the real `kurir serve` and the real `kurir emulator`.
//
// One scenario, in the order an administrator works: sign in, look at the screens, override a
// user's setting and reset it, switch language, run Test connection with a wrong client secret
// and read the AADSTS7000215 explanation; then the mail itself: the outbox with a message that
// failed for good (the wrong secret), incoming mail really taken in from the emulator's Graph
// mailbox (a Monitor-to-Monitor order with XML and PDF, and a message quarantined for having no
// XML), the import queue, account health, and Retry/Cancel. A screenshot of each main page is
// saved under test-artifacts/screenshots/ for people to look at.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync, writeFileSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '..', '..');
const KURIR = process.env.KURIR_BIN || join(ROOT, 'target', 'debug', 'kurir');
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-artifacts', 'screenshots');
const PASSWORD = 'correct horse battery staple';
const WRONG_SECRET = 'kUr~8Q.wrong_SecretValue-7fJ2xLw9pZ4tN6vB1mC3';

for (const [what, path, fix] of [
  ['the kurir binary', KURIR, 'run `cargo build -p kurir` or set KURIR_BIN'],
  ['Chromium', CHROMIUM, 'run scripts/ui-env (installs Debian\'s chromium)'],
]) {
  if (!existsSync(path)) throw new Error(`${what} is missing at ${path}: ${fix}`);
}

const dataDir = mkdtempSync(join(tmpdir(), 'kurir-ui-'));
const mailDir = mkdtempSync(join(tmpdir(), 'kurir-ui-mail-'));
const profileDir = mkdtempSync(join(tmpdir(), 'kurir-ui-chromium-'));
// The server's zone is Stockholm's: the UI shows times in it, with the zone named (CET/CEST).
const env = { ...process.env, KURIR_DATA_DIR: dataDir, TZ: 'Europe/Stockholm' };
delete env.KURIR_MASTER_KEY;
delete env.KURIR_LANG;
let emulator, server, context, page, emu, base;

function kurir(args, input, extraEnv = {}) {
  // stderr is kept out of the test output; a failure's error message carries it.
  return execFileSync(KURIR, args, {
    env: { ...env, ...extraEnv }, input: input ?? '', encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'],
  });
}

// Two messages for the Monitor-to-Monitor mailbox: an order with its XML and PDF, and one
// without XML, which the Monitor-to-Monitor handler quarantines.
const ORDER_EML = `From: Order Desk <orders@leverantor.example>
To: m2m@kurirdemo.onmicrosoft.com
Subject: Order 4711 från Leverantör AB
Date: Mon, 01 Jun 2026 09:30:00 +0200
Message-ID: <order-4711@leverantor.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

Order 4711 bifogas.
--b1
Content-Type: application/xml; name="order-4711.xml"
Content-Disposition: attachment; filename="order-4711.xml"

<?xml version="1.0"?><Order><Number>4711</Number></Order>
--b1
Content-Type: application/pdf; name="order-4711.pdf"
Content-Disposition: attachment; filename="order-4711.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQKJcTl8uXrp/Og0MTGCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCnRyYWlsZXIKPDwvUm9vdCAxIDAgUj4+CiUlRU9GCg==
--b1--
`;
const NO_XML_EML = `From: someone@spam.example
To: m2m@kurirdemo.onmicrosoft.com
Subject: Hej, kolla detta
Date: Mon, 01 Jun 2026 09:45:00 +0200
Message-ID: <hello-1@spam.example>
Content-Type: text/plain; charset=utf-8

Ingen XML här.
`;

/** Starts a kurir subcommand that prints one JSON line once it is ready. */
function startJson(args) {
  return new Promise((resolveP, reject) => {
    const child = spawn(KURIR, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('exit', (code) => reject(new Error(`kurir ${args.join(' ')} exited ${code}: ${stderr}`)));
    createInterface({ input: child.stdout }).once('line', (line) => resolveP({ child, info: JSON.parse(line) }));
  });
}

function stop(child) {
  if (child && child.exitCode === null) child.kill('SIGTERM');
}

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** The row of a setting on a subject page. */
const row = (key) => page.locator(`tr#row-${key}`);

before(async () => {
  // The emulator, and the seed's scenario configured against it with a WRONG client secret.
  ({ child: emulator, info: emu } = await startJson(['emulator']));
  kurir(['admin', 'users', 'add', 'admin', '--password-stdin'], PASSWORD);
  const soon = new Date(Date.now() + 12 * 86400e3).toISOString().slice(0, 10);
  kurir(['settings', 'set', 'method=exchange-online', `client_id=${emu.client_id}`, `tenant_id=${emu.tenant_id}`,
    'auth_flow=client-secret', 'allow_custom_endpoints=true', `authority=${emu.base_url}`, `graph_endpoint=${emu.base_url}`, `ca_file=${emu.ca_path}`,
    `client_secret_expires=${soon}`]);
  kurir(['settings', 'set', '--secret-env', 'client_secret=WRONG'], '', { WRONG: WRONG_SECRET });
  kurir(['users', 'add', 'ANNA', '--email', 'anna@kurirdemo.onmicrosoft.com']);
  kurir(['users', 'add', 'WEBSHOP', '--email', 'webshop@kurirdemo.onmicrosoft.com']);
  kurir(['settings', 'set', '--user', 'WEBSHOP', 'auth_flow=username-password', 'exchange_username=webshop@kurirdemo.onmicrosoft.com']);
  kurir(['accounts', 'add', 'Monitor-till-Monitor', '--type', 'monitor-to-monitor', '--mailbox', 'm2m@kurirdemo.onmicrosoft.com']);
  kurir(['settings', 'set', '--webshop', 'method=according-to-user-settings']);

  // Mail, with the real commands: Monitor-till-Monitor reads the emulator's M2M mailbox over
  // Graph with the right secret (set on the account); Leverantörsfakturor inherits the wrong one
  // and fails. ANNA's first message fails for good on the wrong secret; the second stays queued.
  kurir(['settings', 'set', '--account', 'Monitor-till-Monitor', 'protocol=graph']);
  kurir(['settings', 'set', '--account', 'Monitor-till-Monitor', '--secret-env', 'client_secret=GOOD'], '', { GOOD: emu.client_secret });
  kurir(['accounts', 'add', 'Leverantörsfakturor', '--type', 'supplier-invoices', '--mailbox', 'm2m@kurirdemo.onmicrosoft.com',
    'protocol=graph', 'source_folder=Leverantorer']);
  writeFileSync(join(mailDir, 'order.eml'), ORDER_EML);
  writeFileSync(join(mailDir, 'no-xml.eml'), NO_XML_EML);
  kurir(['emulator', 'put-mail', '--state-dir', emu.state_dir, '--mailbox', 'm2m@kurirdemo.onmicrosoft.com',
    join(mailDir, 'order.eml'), join(mailDir, 'no-xml.eml')]);
  kurir(['fetch', '--account', 'Monitor-till-Monitor']);
  assert.throws(() => kurir(['fetch', '--account', 'Leverantörsfakturor']), /AADSTS7000215/);
  kurir(['send', '--as', 'ANNA', '--to', 'kund@example.com', '--subject', 'Faktura 1001']);
  kurir(['outbox', 'run', '--until-empty']);
  kurir(['send', '--as', 'ANNA', '--to', 'kund@example.com', '--subject', 'Orderbekräftelse 1002']);

  // No intake or outbox workers in the server: the states seeded above stay put while we look.
  ({ child: server, info: { listen: base } } = await startJson(['serve', '--listen', '127.0.0.1:0', '--no-intake', '--no-outbox']));

  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    locale: 'sv-SE',
  });
  page = context.pages()[0] ?? await context.newPage();
  page.setDefaultTimeout(15000);
});

after(async () => {
  await context?.close();
  stop(server);
  stop(emulator);
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(mailDir, { recursive: true, force: true });
  rmSync(profileDir, { recursive: true, force: true });
});

test('sign in (Swedish by default) and see the overview with its alarm', async () => {
  await page.goto(`${base}/system`);
  assert.match(page.url(), /\/login\?next=%2Fsystem$/);
  assert.equal(await page.locator('h1').textContent(), 'Logga in i Kurir');
  await page.fill('#username', 'admin');
  await page.fill('#password', 'not the password');
  await page.click('#login');
  await page.locator('#login-error').waitFor();
  await shot('login');
  await page.fill('#username', 'admin');
  await page.fill('#password', PASSWORD);
  await page.click('#login');
  await page.waitForURL(`${base}/system`);
  assert.equal(await page.locator('h1').textContent(), 'Systeminställningar');
  await page.goto(`${base}/`);
  assert.equal(await page.locator('h1').textContent(), 'Översikt');
  const alarm = await page.locator('#alarms').textContent();
  assert.match(alarm, /Klienthemligheten går ut/);
  await shot('overview');
});

test('system settings show the seed labels; the secret is write-only and masked', async () => {
  await page.goto(`${base}/system`);
  assert.equal(await row('client_id').locator('label').textContent(), 'Program-ID (klient)');
  assert.equal(await row('tenant_id').locator('label').textContent(), 'Katalog-ID (klientorganisation)');
  assert.equal(await row('auth_flow').locator('label').textContent(), 'Autentiseringsflöde');
  assert.equal(await row('method').locator('label').textContent(), 'Metod för e-post');
  const secret = row('client_secret');
  assert.equal(await secret.locator('input').getAttribute('type'), 'password');
  assert.equal(await secret.locator('input').inputValue(), '');
  assert.match(await secret.locator('.effective').textContent(), /^••••1mC3 /);
  assert.ok(!(await page.content()).includes(WRONG_SECRET), 'the secret is never in the page');
  await shot('system');
});

test('a user override changes the source from system to user; reset inherits again', async () => {
  await page.goto(`${base}/users`);
  await shot('users');
  await page.click('table.list a:text-is("ANNA")');
  await page.waitForURL(`${base}/users/ANNA`);
  const tenant = row('tenant_id');
  assert.equal(await tenant.getAttribute('data-source'), 'system');
  assert.match(await tenant.locator('.src').textContent(), /Ärvt från Systeminställningar/);
  assert.equal(await tenant.locator('input').getAttribute('placeholder'), emu.tenant_id);

  await tenant.locator('input').fill('72f988bf-86f1-41af-91ab-2d7cd011db47');
  await page.locator('button.save').first().click();
  await page.locator('#saved').waitFor();
  assert.equal(await row('tenant_id').getAttribute('data-source'), 'user');
  assert.match(await row('tenant_id').locator('.src').textContent(), /Satt här \(användare\)/);
  assert.equal(await row('tenant_id').locator('.effective').textContent(), '72f988bf-86f1-41af-91ab-2d7cd011db47');
  await shot('user-override');

  await row('tenant_id').locator('button.reset').click();
  await page.locator('#saved').waitFor();
  assert.equal(await row('tenant_id').getAttribute('data-source'), 'system');
  assert.match(await row('tenant_id').locator('.src').textContent(), /Ärvt från Systeminställningar/);
  assert.equal(await row('tenant_id').locator('button.reset').count(), 0);
});

test('a refused value is shown beside its field and nothing changes', async () => {
  await page.goto(`${base}/users/ANNA`);
  await row('tenant_id').locator('input').fill('common');
  await page.locator('button.save').first().click();
  await page.locator('#form-error').waitFor();
  assert.ok((await row('tenant_id').locator('.field-error').textContent()).length > 10);
  await page.goto(`${base}/users/ANNA`);
  assert.equal(await row('tenant_id').getAttribute('data-source'), 'system');
});

test('switch language to English, and it sticks', async () => {
  await page.goto(`${base}/users/ANNA`);
  await page.click('#lang-switch');
  await page.waitForURL(/lang=en/);
  assert.equal(await page.locator('html').getAttribute('lang'), 'en');
  assert.equal(await page.locator('h1').textContent(), 'User ANNA');
  assert.equal(await row('client_id').locator('label').textContent(), 'Application (client) ID');
  assert.match(await row('tenant_id').locator('.src').textContent(), /Inherited from System settings/);
  await page.goto(`${base}/system`);
  assert.equal(await page.locator('h1').textContent(), 'System settings');
});

test('Test connection against the emulator explains AADSTS7000215 in the UI language', async () => {
  await page.goto(`${base}/users/ANNA`);
  await page.click('#test-connection');
  const report = page.locator('#check-report');
  await report.waitFor();
  const token = report.locator('li[data-step="token"]');
  assert.equal(await report.locator('li[data-step="settings"]').getAttribute('data-status'), 'ok');
  assert.equal(await token.getAttribute('data-status'), 'failed');
  const text = await token.textContent();
  assert.match(text, /AADSTS7000215/);
  assert.match(text, /secret/i);
  assert.match(text, /Fix:/);
  assert.equal(await report.locator('li[data-step="mailbox"]').getAttribute('data-status'), 'not-run');
  assert.ok(!(await page.content()).includes(WRONG_SECRET));
  await shot('test-connection-en');

  await page.goto(`${base}/users/ANNA?lang=sv`);
  await page.click('#test-connection');
  await page.locator('#check-report').waitFor();
  const sv = await page.locator('li[data-step="token"]').textContent();
  assert.match(sv, /AADSTS7000215/);
  assert.match(sv, /Åtgärd:/);
  assert.match(sv, /hemlighet/i);
  await shot('test-connection-sv');
});

test('incoming-mail accounts and the webshop (according to user settings)', async () => {
  await page.goto(`${base}/accounts`);
  assert.equal(await page.locator('h1').textContent(), 'Inställningar för inkommande e-post');
  await shot('accounts');
  await page.click('table.list a:text-is("Monitor-till-Monitor")');
  await page.waitForURL(`${base}/accounts/Monitor-till-Monitor`);
  assert.equal(await row('mailbox').getAttribute('data-source'), 'account');
  assert.equal(await row('client_id').getAttribute('data-source'), 'system');
  await shot('account');
  await page.goto(`${base}/webshop`);
  assert.equal(await page.locator('h1').textContent(), 'Webbshop Administration');
  assert.match(await page.locator('.sends-as').textContent(), /WEBSHOP/);
  assert.equal(await page.locator('select#v-method').inputValue(), 'according-to-user-settings');
  // The seed's words, not the stored code (#16.7).
  assert.equal((await page.locator('select#v-method option:checked').textContent()).trim(),
    'Enligt användarinställningar i Monitor G5');
  assert.equal((await page.locator('select#v-method option[value="exchange-online"]').textContent()).trim(),
    'Serverbaserat, via Microsoft Exchange Online');
  const flow = page.locator('table.readonly tr[data-key="auth_flow"]');
  assert.equal(await flow.getAttribute('data-source'), 'user');
  await shot('webshop');
});

/** The outbox row of a subject. */
const outboxRow = (subject) => page.locator('table#outbox tbody tr', { has: page.locator(`a.subject:text-is("${subject}")`) });

test('the outbox: a failed message with its explanation, a queued one; filter; switch to Swedish', async () => {
  await page.goto(`${base}/outbox?lang=en`);
  assert.equal(await page.locator('h1').textContent(), 'Outbox');
  const failed = outboxRow('Faktura 1001');
  assert.equal(await failed.getAttribute('data-state'), 'failed');
  assert.equal(await failed.locator('.state').textContent(), 'Failed');
  assert.match(await failed.textContent(), /ANNA/);
  assert.match(await failed.textContent(), /kund@example\.com/);
  assert.match(await failed.locator('.last-error').textContent(), /AADSTS7000215/);
  assert.equal(await failed.locator('button.retry').count(), 1);
  const queued = outboxRow('Orderbekräftelse 1002');
  assert.equal(await queued.getAttribute('data-state'), 'queued');
  assert.match(await page.locator('#alarms').textContent(), /User ANNA: 1 outgoing message failed/);

  await page.click('#lang-switch');
  await page.waitForURL(/lang=sv/);
  assert.equal(await page.locator('h1').textContent(), 'Utkorg');
  assert.equal(await page.locator('table#outbox thead th').nth(2).textContent(), 'Avsändande användare');
  assert.equal(await outboxRow('Faktura 1001').locator('.state').textContent(), 'Misslyckades');
  assert.match(await page.locator('#alarms').textContent(), /Användare ANNA: 1 utgående meddelande misslyckades/);
  await shot('outbox');

  await page.selectOption('#f-state', 'failed');
  await page.click('#filter');
  await page.waitForURL(/state=failed/);
  assert.equal(await page.locator('table#outbox tbody tr').count(), 1);
  assert.equal(await page.locator('#f-state').inputValue(), 'failed');
});

test('incoming mail: the list, one message with its attachments, import queue and raw .eml', async () => {
  await page.goto(`${base}/incoming`);
  assert.equal(await page.locator('h1').textContent(), 'Inkommande e-post');
  const rows = page.locator('table#messages tbody tr');
  assert.equal(await rows.count(), 2);
  const order = page.locator('table#messages tbody tr[data-status="stored"]');
  assert.equal(await order.locator('a.subject').textContent(), 'Order 4711 från Leverantör AB');
  assert.match(await order.locator('.attachments').textContent(), /order-4711\.xml, order-4711\.pdf/);
  assert.equal(await page.locator('tr[data-status="quarantined"] .status').textContent(), 'I karantän');
  await shot('incoming');

  await order.locator('a.subject').click();
  await page.waitForURL(/\/incoming\/\d+$/);
  assert.match(await page.locator('h1').textContent(), /^Inkommande meddelande \d+$/);
  assert.equal(await page.locator('#status').textContent(), 'Lagrat');
  assert.match(await page.locator('#attachments').textContent(), /order-4711\.pdf/);
  assert.equal(await page.locator('#imports tbody tr').count(), 2);
  assert.match(await page.locator('#imports').textContent(), /Klar för import/);
  await shot('incoming-message');

  // The raw message is a download for the signed-in admin (the browser's own cookies).
  const href = await page.locator('#download').getAttribute('href');
  const r = await context.request.get(`${base}${href}`);
  assert.equal(r.status(), 200);
  assert.equal(r.headers()['content-type'], 'message/rfc822');
  assert.match(r.headers()['content-disposition'], /attachment; filename="message-\d+\.eml"/);
  assert.match(await r.text(), /Message-ID: <order-4711@leverantor\.example>/);

  await page.goto(`${base}/incoming`);
  await page.click('#imports-link');
  await page.waitForURL(`${base}/incoming/imports`);
  assert.equal(await page.locator('h1').textContent(), 'Importkö');
  assert.equal(await page.locator('table#imports tr[data-kind="xml"]').count(), 1);
  assert.equal(await page.locator('table#imports tr[data-kind="pdf"]').count(), 1);
  await shot('imports');
});

test('quarantine: the message without XML, with the reason, and its raw download', async () => {
  await page.goto(`${base}/quarantine`);
  assert.equal(await page.locator('h1').textContent(), 'Karantän');
  const rows = page.locator('table#messages tbody tr');
  assert.equal(await rows.count(), 1);
  assert.equal(await rows.locator('a.subject').textContent(), 'Hej, kolla detta');
  // The reason in the UI's language (stored in English, shown in Swedish here).
  assert.match(await rows.locator('.reason').textContent(), /måste innehålla ett XML-affärsdokument/);
  const r = await context.request.get(`${base}${await rows.locator('a.raw').getAttribute('href')}`);
  assert.equal(r.status(), 200);
  assert.match(await r.text(), /Ingen XML här/);
  await shot('quarantine');
});

test('account health: last success, the failing account explained, messages in 24 h, failing sender', async () => {
  await page.goto(`${base}/health`);
  assert.equal(await page.locator('h1').textContent(), 'Kontohälsa');
  const m2m = page.locator('tr[data-account="Monitor-till-Monitor"]');
  assert.equal(await m2m.getAttribute('class'), 'healthy');
  // In the server's time zone (Europe/Stockholm here), with the zone named.
  assert.match(await m2m.locator('.last-success').textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T/);
  assert.equal((await m2m.locator('.last-24h').textContent()).trim(), '1 / 1');
  const bad = page.locator('tr[data-account="Leverantörsfakturor"]');
  assert.equal(await bad.getAttribute('class'), 'failing');
  assert.match(await bad.locator('.last-success').textContent(), /^aldrig/);
  assert.match(await bad.locator('.last-error').textContent(), /AADSTS7000215.*secret/s);
  const anna = page.locator('#sender-health tr[data-user="ANNA"]');
  assert.equal(await anna.locator('.failed').textContent(), '1');
  assert.equal(await anna.locator('.waiting').textContent(), '1');
  // What each account's mail takes up (retention's work).
  const storage = page.locator('#storage tr[data-storage-account="Monitor-till-Monitor"]');
  assert.equal(await storage.locator('.messages').textContent(), '2');
  assert.equal(await storage.locator('.originals').textContent(), '2');
  assert.equal(await storage.locator('.quarantine-open').textContent(), '1');
  assert.match(await storage.locator('.imports').textContent(), /^2 \(/);
  await shot('health');
});

test('an outgoing message: headers and the error explained, never the secret; Retry and Cancel', async () => {
  await page.goto(`${base}/outbox`);
  await outboxRow('Faktura 1001').locator('a.subject').click();
  await page.waitForURL(/\/outbox\/\d+$/);
  assert.equal(await page.locator('#state').textContent(), 'Misslyckades');
  assert.equal(await page.locator('#attempts').textContent(), '1');
  assert.match(await page.locator('#last-error').textContent(), /AADSTS7000215/);
  assert.match(await page.locator('#last-error').textContent(), /Certificates & secrets/);
  assert.match(await page.locator('#headers').textContent(), /SubjectFaktura 1001/);
  assert.ok(!(await page.content()).includes(WRONG_SECRET), 'the secret is never in the page');
  await shot('outbox-message');

  await page.click('#retry');
  await page.locator('#flash').waitFor();
  assert.match(page.url(), /done=retried/);
  assert.equal(await page.locator('#state').textContent(), 'I kö');
  assert.equal(await page.locator('#attempts').textContent(), '0');
  assert.equal(await page.locator('#message').getAttribute('data-state'), 'queued');

  await page.goto(`${base}/outbox`);
  await outboxRow('Orderbekräftelse 1002').locator('button.cancel').click();
  await page.waitForURL(/done=cancelled/);
  assert.equal(await page.locator('#state').textContent(), 'Avbrutet');
  assert.equal(await page.locator('#retry').count(), 0);
  await page.goto(`${base}/outbox`);
  assert.equal(await outboxRow('Orderbekräftelse 1002').getAttribute('data-state'), 'cancelled');
  assert.equal(await outboxRow('Faktura 1001').getAttribute('data-state'), 'queued');
  // Nothing failed any more: the alarm is gone.
  assert.doesNotMatch((await page.locator('#alarms').textContent()) ?? '', /utgående/);
});

test('quarantine actions: mark handled, forward, reprocess after a type change, delete; audited, both languages', async () => {
  // A second message without XML, to delete.
  writeFileSync(join(mailDir, 'no-xml-2.eml'), NO_XML_EML.replace('hello-1@', 'hello-2@').replace('kolla detta', 'ta bort mig'));
  kurir(['emulator', 'put-mail', '--state-dir', emu.state_dir, '--mailbox', 'm2m@kurirdemo.onmicrosoft.com',
    join(mailDir, 'no-xml-2.eml')]);
  kurir(['fetch', '--account', 'Monitor-till-Monitor']);
  kurir(['settings', 'set', 'default_sender=kurir@kurirdemo.onmicrosoft.com']);

  await page.goto(`${base}/quarantine?lang=sv`);
  await page.locator('table#messages tr:has(a.subject:text-is("Hej, kolla detta")) a.subject').click();
  await page.waitForURL(/\/incoming\/\d+/);
  const url = page.url().replace(/\?.*$/, '');
  assert.equal(await page.locator('#quarantine-actions').count(), 1);
  assert.equal(await page.locator('h2:text-is("Åtgärder")').count(), 1);
  assert.match(await page.locator('#reason').textContent(), /måste innehålla ett XML-affärsdokument/);

  // Mark handled: a note is required by the form, and kept.
  await page.fill('#note', 'Avsändaren kontaktad');
  await page.click('#mark-handled');
  await page.waitForURL(/done=marked_handled/);
  assert.equal(await page.locator('#flash').textContent(), 'Meddelandet är markerat som hanterat.');
  assert.match(await page.locator('#handled').textContent(), /admin:admin: Avsändaren kontaktad/);

  // Forward: queued in the outbox, sent as Kurir itself.
  await page.fill('#forward-to', 'kund@example.com');
  await page.click('#forward');
  await page.waitForURL(/done=forwarded/);
  assert.match(await page.locator('#flash').textContent(), /vidarebefordrat/);
  await shot('quarantine-actions');

  // In English: reprocess while the type is still Monitor-to-Monitor: still quarantined.
  await page.goto(`${url}?lang=en`);
  assert.equal(await page.locator('h2:text-is("Actions")').count(), 1);
  assert.match(await page.locator('#reason').textContent(), /must carry an XML business document/);
  await page.click('#reprocess');
  await page.waitForURL(/done=still_quarantined/);
  assert.match(await page.locator('#flash').textContent(), /stays in quarantine/);
  // After the account's type was changed: taken in; the actions are gone.
  kurir(['settings', 'set', '--account', 'Monitor-till-Monitor', 'type=general']);
  await page.click('#reprocess');
  await page.waitForURL(/done=stored/);
  assert.match(await page.locator('#flash').textContent(), /reprocessed and taken in/);
  assert.equal(await page.locator('#status').textContent(), 'Stored');
  assert.equal(await page.locator('#quarantine-actions').count(), 0);
  const audit = await page.locator('#audit tbody tr').allTextContents();
  assert.equal(audit.length, 4, audit.join(' | '));
  assert.match(audit[0], /admin:admin.*Reprocessed.*taken in by general/);
  assert.match(audit[2], /Forwarded.*to kund@example\.com/);
  assert.match(audit[3], /Marked handled.*Avsändaren kontaktad/);
  await shot('quarantine-audit-en');
  const outbox = JSON.parse(kurir(['outbox', 'list', '--json']));
  assert.ok(outbox.some((m) => m.subject === 'Fwd: Hej, kolla detta' && m.sender_user === ':system'), JSON.stringify(outbox));

  // Delete: only with the box ticked.
  await page.goto(`${base}/quarantine?lang=sv`);
  await page.locator('table#messages tr:has(a.subject:text-is("Hej, ta bort mig")) a.subject').click();
  await page.waitForURL(/\/incoming\/\d+/);
  await page.check('#delete-confirm');
  await page.click('#delete');
  await page.waitForURL(/\/quarantine\?done=deleted/);
  assert.equal(await page.locator('#flash').textContent(), 'Meddelandet är borttaget.');
  assert.equal(await page.locator('table#messages tr:has-text("ta bort mig")').count(), 0);
});

test('the Entra set-up wizard: refused in Swedish for a user without the role, done in English for the admin', async () => {
  // The emulator's hook approves a device code as the user would at the verification page.
  const approve = (code, username) => new Promise((ok, fail) => {
    const body = JSON.stringify({ user_code: code, username });
    const req = httpsRequest(`${emu.base_url}/_emulator/devicecode/approve`, {
      method: 'POST', ca: readFileSync(emu.ca_path), headers: { 'content-type': 'application/json' },
    }, (res) => { res.resume(); res.on('end', () => (res.statusCode < 300 ? ok() : fail(new Error(`approve: ${res.statusCode}`)))); });
    req.on('error', fail);
    req.end(body);
  });
  const run = async (username) => {
    await page.click('#setup-start');
    const code = page.locator('#user-code');
    await code.waitFor({ timeout: 20000 });
    await approve((await code.textContent()).trim(), username);
    await page.locator('#setup-job[data-state="done"], #setup-job[data-state="failed"]').waitFor({ timeout: 60000 });
  };

  await page.goto(`${base}/setup?lang=sv`);
  assert.equal(await page.locator('h1').textContent(), 'Konfigurera Microsoft Entra ID');
  assert.equal(await page.locator('#tenant').inputValue(), emu.tenant_id);
  assert.ok(await page.locator('#c-certificate').isChecked(), 'a certificate is the default');
  await shot('setup-form-sv');
  await run('adele.vance@kurirdemo.onmicrosoft.com');
  const refused = await page.locator('#setup-failed').textContent();
  assert.match(refused, /Konfigurationen stoppades/);
  assert.match(refused, /får inte registrera appar/);
  assert.match(refused, /Application Administrator/);
  await shot('setup-refused-sv');

  await page.goto(`${base}/setup?lang=en`);
  assert.equal(await page.locator('h1').textContent(), 'Set up Microsoft Entra ID');
  await page.fill('#mailboxes', 'm2m@kurirdemo.onmicrosoft.com');
  await run('admin@kurirdemo.onmicrosoft.com');
  assert.match(await page.locator('#setup-done').textContent(), /Entra ID is set up/);
  assert.match(await page.locator('#signed-in').textContent(), /admin@kurirdemo/);
  const facts = await page.locator('#setup-facts').textContent();
  assert.match(facts, /Client ID/);
  assert.match(facts, /Mail\.ReadWrite, Mail\.Send/);
  assert.match(facts, /certificate [0-9a-f-]{36}/);
  assert.ok(!(await page.content()).includes('PRIVATE KEY'), 'the private key is never shown');
  assert.match(await page.locator('#setup-powershell').textContent(), /New-ServicePrincipal -AppId [0-9a-f-]{36}/);
  assert.equal(await page.locator('#check-report li[data-step="token"]').getAttribute('data-status'), 'ok');
  await shot('setup-done-en');
  // The system settings now name the new app and its certificate.
  const shown = kurir(['settings', 'show']);
  assert.match(shown, /auth_flow\s+certificate/);
});

test('log out', async () => {
  await page.goto(`${base}/`);
  await page.click('#logout');
  await page.waitForURL(/\/login$/);
  await page.goto(`${base}/system`);
  assert.match(page.url(), /\/login\?next=/);
});
