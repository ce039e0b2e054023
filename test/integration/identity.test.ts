import { X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grant } from '../../src/access/grant-store.ts';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway, type LogLines } from '../setup/gateway.ts';
import { httpsClient, upgradeRequest, type HttpResult } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

// Which certificates may be a partner at all (src/tls/identity.ts), over real TLS: a pin-shaped CN, several CNs,
// a CN in a multi-valued RDN, a CA certificate and a CN with control or invisible characters are refused with
// 401 SLUICE_ERR_CERT_IDENTITY on REST and at the stream upgrade, and never reach the grants or the database.
let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let logs: LogLines;
let owner: CertAndKey; // its fingerprint is granted SLU 3
let pin: string;
const clients: StreamClient[] = [];

const fingerprintHex = (c: CertAndKey) => new X509Certificate(c.certPem).fingerprint256.replace(/:/g, '').toLowerCase();

async function get(who: CertAndKey, path: string): Promise<HttpResult> {
  const c = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: who });
  try {
    return await c.get(`/cityxchange${path}`);
  } finally {
    c.close();
  }
}

const upgrade = (who: CertAndKey) => upgradeRequest({ port: gateway.port, ca: pki.ca.certPem, client: who });

/** Refused as a partner everywhere: REST (/latest and /rows of a granted SLU) and the upgrade, 401 with the reason. */
async function expectRefused(who: CertAndKey, reason: RegExp): Promise<void> {
  for (const path of ['/latest', '/rows?slu_id=3&cnt=5', '/rows?slu_id=1&cnt=5']) {
    const r = await get(who, path);
    expect(r.status, path).toBe(401);
    expect(r.json()).toMatchObject({ statusCode: 401, code: 'SLUICE_ERR_CERT_IDENTITY' });
    expect(r.json<{ message: string }>().message).toMatch(reason);
    expect(r.body).not.toContain('slu_id'); // no data of any kind
  }
  const u = await upgrade(who);
  expect(u.status).toBe(401);
  expect(JSON.parse(u.body)).toMatchObject({ code: 'SLUICE_ERR_CERT_IDENTITY' });
  expect(JSON.parse(u.body).message).toMatch(reason);
  const s = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: who, query: 'slu_id=3' });
  clients.push(s);
  await expect(s.opened).rejects.toThrow('HTTP 401');
}

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  owner = await pki.client('pin-owner');
  pin = fingerprintHex(owner);
  ({ gateway, logs } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0' }, { grantAll: [] }));
  await grant(db.pool, `sha256:${pin}`, 3);
  // Names the refused certificates below would answer to if they were accepted: each refusal must hold even so.
  for (const name of ['limited', 'Müller Energie GmbH', 'x'.repeat(64), 'x'.repeat(65), ' limited', 'limited ', 'lim ited']) await grant(db.pool, name, 1);
  await db.pool.query(`insert into sluice_partner_grant (partner, slu_id) values ('SHA256:' || $1::text, 1)`, [pin]); // by hand: the CLI would make it a pin
  await insertReadings(db.pool, [{ slu_id: 1, v1: 1 }, { slu_id: 3, v1: 3 }]);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

describe('pins and names do not share a namespace', () => {
  it('the pinned certificate reads its SLU', async () => {
    const r = await get(owner, '/latest');
    expect(r.status).toBe(200);
    expect(r.json<Array<{ slu_id: number }>>().map((x) => x.slu_id)).toEqual([3]);
    const u = await upgrade(owner);
    expect(u.status).toBe(101);
  });

  it('a certificate whose CN is "sha256:<fingerprint of another>" gets nothing of that pin: 401 on /latest, /rows and the upgrade', async () => {
    const impostor = await pki.client(`sha256:${pin}`);
    expect(fingerprintHex(impostor)).not.toBe(pin);
    await expectRefused(impostor, /spelled like a certificate pin/);
    expect(logs.some((l) => l.msg === 'refused: certificate cannot identify a partner' && l.fingerprint === new X509Certificate(impostor.certPem).fingerprint256)).toBe(true);
  });

  it('so is any spelling an operator would take for a pin (upper case, AB:CD:… colons)', async () => {
    await expectRefused(await pki.client(`SHA256:${pin}`), /spelled like a certificate pin/);
    await expectRefused(await pki.client(new X509Certificate(owner.certPem).fingerprint256), /spelled like a certificate pin/);
  });
});

describe('exactly one CN, alone in its RDN', () => {
  it('refuses two CNs (the first in DER order used to win)', async () => {
    await expectRefused(await pki.custom([{ CN: ['limited'] }, { CN: ['someone-else'] }, { O: ['sluice partner'] }]), /has 2 CNs/);
    await expectRefused(await pki.custom([{ CN: ['someone-else'] }, { CN: ['limited'] }]), /has 2 CNs/);
  });

  it('refuses a CN in a multi-valued RDN (CN=…+O=…), and two CNs in one RDN', async () => {
    await expectRefused(await pki.custom([{ CN: ['limited'], O: ['sluice partner'] }]), /multi-valued RDN/);
    await expectRefused(await pki.custom([{ CN: ['limited', 'someone-else'] }]), /multi-valued RDN/);
  });

  it('refuses a subject without a CN', async () => {
    await expectRefused(await pki.custom([{ O: ['limited'] }]), /no CN/);
  });

  it('accepts a CN next to other RDNs (the usual CN=…, O=… subject)', async () => {
    const ok = await pki.custom([{ C: ['DE'] }, { O: ['sluice partner'] }, { CN: ['limited'] }]);
    expect((await get(ok, '/latest')).json<Array<{ slu_id: number }>>().map((x) => x.slu_id)).toEqual([1]);
  });
});

describe('only end-entity certificates are partners', () => {
  it('refuses a CA:TRUE certificate signed by the partner CA, though OpenSSL accepts it for client auth', async () => {
    const subCa = await pki.custom([{ CN: ['limited'] }], { ca: true });
    expect(new X509Certificate(subCa.certPem).ca).toBe(true);
    await expectRefused(subCa, /CA certificate/);
  });
});

describe('what a CN may contain', () => {
  it('a NUL in the CN is a 401 with a reason, not a 500 (PostgreSQL cannot store NUL)', async () => {
    await expectRefused(await pki.custom([{ CN: [{ utf8String: 'limi\u0000ted' }] }]), /U\+0000 at character 5/);
    await expectRefused(await pki.custom([{ CN: [{ bmpString: 'limited\u0000' }] }]), /U\+0000/);
  });

  it.each([
    ['a line feed', 'limi\nted', /U\+000A/],
    ['DEL', 'limited\u007f', /U\+007F/],
    ['a C1 control', 'limited\u0085', /U\+0085/],
    ['a bidi override', 'detimil\u202e', /U\+202E/],
    ['a zero-width space', 'lim\u200bited', /U\+200B/],
    ['a no-break space', 'lim\u00a0ited', /U\+00A0/],
    ['a leading space', ' limited', /begins or ends with a space/],
    ['a trailing space', 'limited ', /begins or ends with a space/],
    ['65 characters', 'x'.repeat(65), /65 characters long/],
    ['nothing', '', /CN is empty/],
  ])('refuses a CN with %s', async (_what, cn, reason) => {
    await expectRefused(await pki.custom([{ CN: [{ utf8String: cn }] }]), reason);
  });

  it('accepts printable unicode, inner spaces and 64 characters', async () => {
    for (const cn of ['Müller Energie GmbH', 'lim ited', 'x'.repeat(64)]) {
      const r = await get(await pki.custom([{ CN: [{ utf8String: cn }] }]), '/latest');
      expect(r.status, cn).toBe(200);
      expect(r.json<Array<{ slu_id: number }>>().map((x) => x.slu_id)).toEqual([1]);
    }
  });

  it('the gateway kept serving through all of it', async () => {
    expect((await get(owner, '/rows?slu_id=3&cnt=1')).status).toBe(200);
    expect(logs.some((l) => (l.level as number) >= 50)).toBe(false); // no error lines: every refusal was expected
  });
});
