// The admin web UI in a real headless Chromium: Debian's /usr/bin/chromium, driven by
// playwright-core, against the real `kurir serve` and the real `kurir emulator`.
//
// One scenario, in the order an administrator works: sign in, look at the screens, override a
// user's setting and reset it, switch language, run Test connection with a wrong client secret
// and read the AADSTS7000215 explanation. A screenshot of each main page is saved under
// test-artifacts/screenshots/ for people to look at.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
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
const profileDir = mkdtempSync(join(tmpdir(), 'kurir-ui-chromium-'));
const env = { ...process.env, KURIR_DATA_DIR: dataDir };
delete env.KURIR_MASTER_KEY;
delete env.KURIR_LANG;
let emulator, server, context, page, emu, base;

function kurir(args, input, extraEnv = {}) {
  return execFileSync(KURIR, args, { env: { ...env, ...extraEnv }, input: input ?? '', encoding: 'utf8' });
}

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
    'auth_flow=client-secret', `authority=${emu.base_url}`, `ca_file=${emu.ca_path}`, `client_secret_expires=${soon}`]);
  kurir(['settings', 'set', '--secret-env', 'client_secret=WRONG'], '', { WRONG: WRONG_SECRET });
  kurir(['users', 'add', 'ANNA', '--email', 'anna@kurirdemo.onmicrosoft.com']);
  kurir(['users', 'add', 'WEBSHOP', '--email', 'webshop@kurirdemo.onmicrosoft.com']);
  kurir(['settings', 'set', '--user', 'WEBSHOP', 'auth_flow=username-password', 'exchange_username=webshop@kurirdemo.onmicrosoft.com']);
  kurir(['accounts', 'add', 'Monitor-till-Monitor', '--type', 'monitor-to-monitor', '--mailbox', 'm2m@kurirdemo.onmicrosoft.com']);
  kurir(['settings', 'set', '--webshop', 'method=according-to-user-settings']);

  ({ child: server, info: { listen: base } } = await startJson(['serve', '--listen', '127.0.0.1:0']));

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
  const flow = page.locator('table.readonly tr[data-key="auth_flow"]');
  assert.equal(await flow.getAttribute('data-source'), 'user');
  await shot('webshop');
});

test('log out', async () => {
  await page.goto(`${base}/`);
  await page.click('#logout');
  await page.waitForURL(/\/login$/);
  await page.goto(`${base}/system`);
  assert.match(page.url(), /\/login\?next=/);
});
