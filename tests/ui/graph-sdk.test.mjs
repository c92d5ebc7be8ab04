// Microsoft's Graph SDK for JavaScript (@microsoft/microsoft-graph-client, pinned in package.json)
// against the real `kurir emulator`, configured as against Microsoft (the token only for the Graph
// host): its LargeFileUploadTask uploads a 5 MB attachment to a draft through an upload session on
// another host, with no token, and the draft is then sent and arrives with the attachment.
//
// (The Python SDK's LargeFileUploadTask cannot finish an Outlook attachment upload: it reads
// Outlook's single-offset nextExpectedRanges as "start-end" — upstream
// https://github.com/microsoftgraph/msgraph-sdk-python-core/issues/691; the JavaScript one reads
// both, as Microsoft documents them.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const KURIR = process.env.KURIR_BIN;
const HERE = dirname(fileURLToPath(import.meta.url));
let emulator, emu, stateDir;

before(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'kurir-graph-sdk-'));
  emulator = spawn(KURIR, ['emulator', '--listen', '127.0.0.1:0', '--state-dir', stateDir],
    { stdio: ['ignore', 'pipe', 'pipe'] });
  emu = await new Promise((resolveP, reject) => {
    let stderr = '';
    emulator.stderr.on('data', (d) => { stderr += d; });
    emulator.on('exit', (code) => reject(new Error(`kurir emulator exited ${code}: ${stderr}`)));
    createInterface({ input: emulator.stdout }).once('line', (line) => resolveP(JSON.parse(line)));
  });
});

after(() => {
  if (emulator && emulator.exitCode === null) emulator.kill('SIGTERM');
  rmSync(stateDir, { recursive: true, force: true });
});

test('LargeFileUploadTask uploads 5 MB to a draft on the upload host without the token, then it is sent', () => {
  // Node reads extra CAs only at start: the SDK runs in a child with the emulator's CA.
  const run = spawnSync(process.execPath, [join(HERE, 'graph-sdk-upload.mjs')], {
    cwd: HERE,
    env: { ...process.env, NODE_EXTRA_CA_CERTS: emu.ca_path, KURIR_EMULATOR: JSON.stringify(emu) },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
  const seen = JSON.parse(run.stdout.trim().split('\n').pop());
  assert.equal(seen.graphHost, '127.0.0.1');
  assert.notEqual(seen.uploadHost, seen.graphHost, 'the upload URL is on a host of its own');
  assert.match(seen.location, /\/attachments\//, 'the last chunk answered with Location');
  assert.equal(seen.delivered, 1);
  assert.equal(seen.hasAttachments, true);
  assert.deepEqual(seen.attachment, { name: 'drawing.bin', size: 5 * 1024 * 1024 });
});
