// `kurir demo` as a newcomer meets it, in a real headless Chromium (Debian's /usr/bin/chromium
// driven by playwright-core): start the demo, sign in with the login it prints, and watch mail
// come in (Monitor-to-Monitor orders into the import queue, a reply quarantined) and go out (the
// webshop's and ANNA's messages sent through Graph). Screenshots under
// test-artifacts/screenshots/demo-*.png.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '..', '..');
const KURIR = process.env.KURIR_BIN || join(ROOT, 'target', 'debug', 'kurir');
const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-artifacts', 'screenshots');

for (const [what, path, fix] of [
  ['the kurir binary', KURIR, 'run `cargo build -p kurir` or set KURIR_BIN'],
  ['Chromium', CHROMIUM, 'run scripts/ui-env (installs Debian\'s chromium)'],
]) {
  if (!existsSync(path)) throw new Error(`${what} is missing at ${path}: ${fix}`);
}

const dataDir = mkdtempSync(join(tmpdir(), 'kurir-ui-demo-'));
const profileDir = mkdtempSync(join(tmpdir(), 'kurir-ui-demo-chromium-'));
let demo, info, context, page;

async function shot(name) {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

/** Reloads `path` until `check()` holds (the demo's mail arrives every few seconds). */
async function until(path, check, what, seconds = 45) {
  const end = Date.now() + seconds * 1000;
  for (;;) {
    await page.goto(`${info.listen}${path}`);
    if (await check()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what} on ${path}`);
    await page.waitForTimeout(1000);
  }
}

before(async () => {
  const env = { ...process.env, KURIR_DATA_DIR: dataDir };
  delete env.KURIR_MASTER_KEY;
  delete env.KURIR_LANG;
  // Mail every 2 s so the test sees the flow quickly.
  demo = spawn(KURIR, ['demo', '--listen', '127.0.0.1:0', '--every', '2'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  demo.stderr.on('data', (d) => { stderr += d; });
  info = await new Promise((ok, fail) => {
    demo.on('exit', (code) => fail(new Error(`kurir demo exited ${code}: ${stderr}`)));
    createInterface({ input: demo.stdout }).once('line', (line) => ok(JSON.parse(line)));
  });
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
  if (demo && demo.exitCode === null) demo.kill('SIGTERM');
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(profileDir, { recursive: true, force: true });
});

test('the demo prints a login that signs in, and the seed\'s settings are there', async () => {
  assert.equal(info.demo, true);
  assert.equal(info.admin.username, 'admin');
  await page.goto(`${info.listen}/`);
  await page.fill('#username', info.admin.username);
  await page.fill('#password', info.admin.password);
  await page.click('#login');
  await page.waitForURL(`${info.listen}/`);
  await shot('demo-overview');
  // The demo points Kurir at the emulator, so the server switch is on and every page says so.
  assert.match(await page.locator('#custom-endpoints').textContent(), /allow_custom_endpoints/);
  await page.goto(`${info.listen}/users`);
  const users = await page.locator('main').textContent();
  assert.match(users, /ANNA/);
  assert.match(users, /WEBSHOP/);
  await page.goto(`${info.listen}/webshop`);
  assert.match(await page.locator('main').textContent(), /Enligt användarinställningar/);
});

test('mail comes in: orders taken in, the reply without XML quarantined, documents queued for the ERP', async () => {
  const stored = page.locator('table#messages tbody tr[data-status="stored"]');
  await until('/incoming', async () => (await stored.count()) >= 3, 'three stored messages');
  assert.ok(await page.locator('table#messages tbody tr[data-status="quarantined"]').count() >= 1,
    'the reply without an XML document is quarantined');
  assert.match(await page.locator('table#messages').textContent(), /order-\d+\.xml/);
  await shot('demo-incoming');
  await page.goto(`${info.listen}/incoming/imports`);
  assert.match(await page.locator('main').textContent(), /order-\d+\.xml/);
  await shot('demo-imports');
});

test('mail goes out: the webshop (WEBSHOP) and ANNA send through Graph', async () => {
  const sent = (user) => page.locator('table#outbox tbody tr[data-state="sent"]', { hasText: user });
  await until('/outbox', async () => (await sent('WEBSHOP').count()) >= 1 && (await sent('ANNA').count()) >= 1,
    'a sent message from WEBSHOP and from ANNA');
  await shot('demo-outbox');
  // And more keeps coming: the counts grow while the admin watches.
  const before = await page.locator('table#outbox tbody tr').count();
  await until('/outbox', async () => (await page.locator('table#outbox tbody tr').count()) > before, 'more outgoing mail');
  await page.goto(`${info.listen}/health`);
  assert.equal(await page.locator('#account-health tr.failing').count(), 0, 'no account failing');
  await shot('demo-health');
});
