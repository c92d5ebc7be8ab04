// Run by graph-sdk.test.mjs with NODE_EXTRA_CA_CERTS set to the emulator's CA (Node reads it only
// at start) and the emulator's JSON line in KURIR_EMULATOR. Prints one JSON line with what it saw.
import { Client, FileUpload, LargeFileUploadTask } from '@microsoft/microsoft-graph-client';

const emu = JSON.parse(process.env.KURIR_EMULATOR);
const graphHost = new URL(emu.base_url).hostname;
const sender = `megan.bowen@${emu.tenant_domain}`;
const to = `m2m@${emu.tenant_domain}`;

// Client credentials, as an app gets its token from Entra ID.
const form = new URLSearchParams({
  grant_type: 'client_credentials', client_id: emu.client_id, client_secret: emu.client_secret,
  scope: 'https://graph.microsoft.com/.default',
});
const tokenResponse = await fetch(`${emu.authority}/oauth2/v2.0/token`, { method: 'POST', body: form });
const { access_token: token } = await tokenResponse.json();

// Configured as against Microsoft: the SDK attaches the token to Graph hosts only — here the
// emulator's (customHosts), so not to the upload URL, which Microsoft serves from another host
// (and which answers 401 to a request that carries one: the upload succeeding proves none went).
const client = Client.initWithMiddleware({
  baseUrl: `${emu.base_url}/`,
  defaultVersion: 'v1.0',
  customHosts: new Set([graphHost]),
  authProvider: { getAccessToken: async () => token },
  fetchOptions: {},
});

const subject = `JS SDK large ${Date.now()}`;
const draft = await client.api(`/users/${sender}/messages`).post({
  subject, body: { contentType: 'text', content: 'Drawing attached.' },
  toRecipients: [{ emailAddress: { address: to } }],
});
const data = Buffer.alloc(5 * 1024 * 1024);
for (let i = 0; i < data.length; i++) data[i] = (i * 7) % 251;
const session = await LargeFileUploadTask.createUploadSession(
  client, `${emu.base_url}/v1.0/users/${sender}/messages/${draft.id}/attachments/createUploadSession`,
  { AttachmentItem: { attachmentType: 'file', name: 'drawing.bin', size: data.length } });
const task = new LargeFileUploadTask(client, new FileUpload(data, 'drawing.bin', data.length), session,
  { rangeSize: 10 * 320 * 1024 });
const result = await task.upload();
await client.api(`/users/${sender}/messages/${draft.id}/send`).post({});

// What arrived, read through the SDK too.
const inbox = await client.api(`/users/${to}/mailFolders/inbox/messages`)
  .filter(`subject eq '${subject}'`).select('subject,hasAttachments').get();
const got = inbox.value[0];
const attachments = await client.api(`/users/${to}/messages/${got.id}/attachments`).get();
console.log(JSON.stringify({
  uploadHost: new URL(session.url).hostname,
  graphHost,
  location: result.location ?? null,
  delivered: inbox.value.length,
  hasAttachments: got.hasAttachments,
  attachment: { name: attachments.value[0].name, size: attachments.value[0].size },
}));
