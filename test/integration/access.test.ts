import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grant, revoke } from '../../src/access/grant-store.ts';
import type { Gateway } from '../../src/gateway.ts';
import type { CertAndKey } from '../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../setup/db.ts';
import { startTestGateway, type LogLines } from '../setup/gateway.ts';
import { httpsClient } from '../setup/https-client.ts';
import { createTestPki, type TestPki } from '../setup/pki.ts';
import { StreamClient } from '../setup/ws-client.ts';

// Partners of this file: 'limited' holds SLUs 1 and 2, 'nobody' holds nothing, 'pinned' is granted by fingerprint.
let db: TestDatabase;
let pki: TestPki;
let gateway: Gateway;
let logs: LogLines;
let limited: CertAndKey;
let nobody: CertAndKey;
let pinned: CertAndKey;
const clients: StreamClient[] = [];

function connect(who: CertAndKey, query?: string): StreamClient {
  const c = new StreamClient(gateway.port, { ca: pki.ca.certPem, client: who, ...(query !== undefined ? { query } : {}) });
  clients.push(c);
  return c;
}
const get = async (who: CertAndKey, path: string) => {
  const c = httpsClient({ port: gateway.port, ca: pki.ca.certPem, client: who });
  try {
    return await c.get(`/cityxchange${path}`);
  } finally {
    c.close();
  }
};

let seq = 50_000;
const readings = (sluId: number, n = 1) => Array.from({ length: n }, () => ({ slu_id: sluId, v1: seq++, p1: 0.9, v2: 230, v3: 231 }));

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [limited, nobody, pinned] = await Promise.all([pki.client('limited'), pki.client('nobody'), pki.client('pinned')]);
  ({ gateway, logs } = await startTestGateway(db.url, pki, {}, { grantAll: [] }));
  await grant(db.pool, 'limited', 1);
  await grant(db.pool, 'limited', 2);
  await grant(db.pool, `sha256:${new X509Certificate(pinned.certPem).fingerprint256.replace(/:/g, '').toLowerCase()}`, 3);
  await insertReadings(db.pool, [...readings(1), ...readings(2), ...readings(3)]);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await gateway?.close();
  await db?.drop();
  await pki?.close();
});

describe('grants on the REST API', () => {
  it('refuses a partner without grants with 403 on every endpoint, and logs it', async () => {
    for (const path of ['/latest', '/rows?slu_id=1&cnt=1', '/time?slu_id=1&begin=0&end=2000000000']) {
      const r = await get(nobody, path);
      expect(r.status).toBe(403);
      expect(r.json()).toMatchObject({ statusCode: 403, code: 'SLUICE_ERR_NO_GRANTS' });
      expect(r.json<{ message: string }>().message).toContain('"nobody" has no access');
    }
    expect(logs.some((l) => l.msg === 'refused: partner has no grants' && l.partner === 'nobody')).toBe(true);
  });

  it('/latest lists only granted SLUs; /rows and /time of another SLU answer 403 naming slu_id', async () => {
    const latest = await get(limited, '/latest');
    expect(latest.status).toBe(200);
    expect(latest.json<Array<{ slu_id: number }>>().map((r) => r.slu_id)).toEqual([1, 2]);
    expect((await get(limited, '/rows?slu_id=2&cnt=5')).json<{ data: unknown[] }>().data).toHaveLength(1);
    for (const path of ['/rows?slu_id=3&cnt=5', '/time?slu_id=3&begin=0&end=2000000000']) {
      const r = await get(limited, path);
      expect(r.status).toBe(403);
      expect(r.json()).toMatchObject({ code: 'SLUICE_ERR_SLU_FORBIDDEN', parameter: 'slu_id' });
    }
    // Validation still comes first: a malformed request is a 400 whoever sends it.
    expect((await get(limited, '/rows?slu_id=3&cnt=0')).status).toBe(400);
    expect(logs.some((l) => l.msg === 'refused: SLU not granted' && l.partner === 'limited' && l.slu_id === 3)).toBe(true);
  });

  it('a grant by certificate fingerprint applies to that certificate only', async () => {
    expect((await get(pinned, '/latest')).json<Array<{ slu_id: number }>>().map((r) => r.slu_id)).toEqual([3]);
    const sameName = await pki.client('pinned'); // same CN, another certificate
    expect((await get(sameName, '/latest')).status).toBe(403);
  });
});

describe('grants on the stream', () => {
  it('refuses the upgrade of a partner without grants with 403', async () => {
    const c = connect(nobody, 'slu_id=1');
    await expect(c.opened).rejects.toThrow('HTTP 403');
  });

  it('subscribes only granted SLUs, with an error frame naming the others; "all" means all granted', async () => {
    const some = connect(limited, 'slu_id=1,3');
    const all = connect(limited);
    const err = await some.next('error', 0);
    expect(err).toMatchObject({ code: 'SLUICE_ERR_SLU_FORBIDDEN', slu_ids: [3] });
    expect(await some.next('subscribed', 0)).toMatchObject({ slu_ids: [1] });
    expect(await all.next('subscribed', 0)).toMatchObject({ slu_ids: 'all' });
    const from = some.frames.length;
    some.send({ type: 'subscribe', slu_ids: [2, 4] });
    expect(await some.next('error', from)).toMatchObject({ code: 'SLUICE_ERR_SLU_FORBIDDEN', slu_ids: [4] });
    expect(await some.next('subscribed', from)).toMatchObject({ added: [2], count: 2 });

    const r = [...readings(1), ...readings(2), ...readings(3), ...readings(4)];
    await insertReadings(db.pool, r);
    await some.until(() => some.readings.length >= 2, 'SLU 1 and 2');
    await all.until(() => all.readings.length >= 2, 'SLU 1 and 2');
    await insertReadings(db.pool, readings(1)); // a marker: everything before it has been delivered
    await all.until(() => all.readings.length >= 3, 'marker');
    expect(all.readings.map((x) => x.slu_id).sort()).toEqual([1, 1, 2]);
    await some.until(() => some.readings.length >= 3, 'marker');
    expect(some.readings.map((x) => x.slu_id).sort()).toEqual([1, 1, 2]);
  });

  it('a resume (since=) of "all" replays granted SLUs only', async () => {
    const first = connect(limited);
    await first.next('subscribed', 0);
    const cursor = first.cursor as string;
    await first.close();
    const r = [...readings(3), ...readings(2), ...readings(1)];
    await insertReadings(db.pool, r);
    const again = connect(limited, `since=${encodeURIComponent(cursor)}`);
    await again.until(() => again.readings.length >= 2, 'replayed readings');
    await insertReadings(db.pool, readings(2));
    await again.until(() => again.readings.length >= 3, 'marker');
    expect(again.readings.map((x) => x.v1)).toEqual([r[1]?.v1, r[2]?.v1, seq - 1]);
  });

  it('a revoked grant stops that SLU within a second; revoking the last one closes with 4403', async () => {
    await grant(db.pool, 'revokee', 5);
    await grant(db.pool, 'revokee', 6);
    const who = await pki.client('revokee');
    const c = connect(who, 'slu_id=5,6');
    await c.next('subscribed', 0);
    const from = c.frames.length;
    const t0 = Date.now();
    await revoke(db.pool, 'revokee', 5);
    const frame = await c.next('error', from);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(frame).toMatchObject({ code: 'SLUICE_ERR_GRANT_REVOKED', slu_ids: [5] });
    await insertReadings(db.pool, [...readings(5), ...readings(6)]);
    await c.until(() => c.readings.length >= 1, 'SLU 6');
    await insertReadings(db.pool, readings(6));
    await c.until(() => c.readings.length >= 2, 'marker');
    expect(c.readings.map((x) => x.slu_id)).toEqual([6, 6]);

    await revoke(db.pool, 'revokee', null, true);
    await c.until(() => c.closeCode !== undefined, 'close');
    expect(c.closeCode).toBe(4403);
    expect(c.closeReason).toContain('SLUICE_ERR_NO_GRANTS');
    expect((await get(who, '/latest')).status).toBe(403);
  });

  it('a grant made while connected to "all" extends it at once', async () => {
    await grant(db.pool, 'grower', 7);
    const who = await pki.client('grower');
    const c = connect(who);
    await c.next('subscribed', 0);
    await grant(db.pool, 'grower', 8);
    await new Promise((r) => setTimeout(r, 300)); // the NOTIFY and the reload
    await insertReadings(db.pool, [...readings(8), ...readings(7)]);
    await c.until(() => c.readings.length >= 2, 'SLU 7 and 8');
    expect(c.readings.map((x) => x.slu_id).sort()).toEqual([7, 8]);
  });
});

describe('npm run partners', () => {
  const run = (...args: string[]) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/cli/partners.ts', ...args], { env: { ...process.env, DATABASE_URL: db.url } });

  it('grants, lists, revokes and keeps an audit log', async () => {
    expect((await run('grant', 'cli-partner', '10,11')).stdout).toContain('granted cli-partner slu_id 10,11 (2 new, 0 already granted)');
    expect((await run('grant', 'cli-partner', 'all')).stdout).toContain('every SLU');
    expect((await run('list', 'cli-partner')).stdout).toBe('cli-partner\tall,10,11\n');
    expect((await run('revoke', 'cli-partner', '10')).stdout).toContain('revoked 1 grant(s)');
    expect((await run('revoke', 'cli-partner', '--everything')).stdout).toContain('revoked 2 grant(s)');
    expect((await run('list', 'cli-partner')).stdout).toContain('cli-partner has no grants');
    const log = (await run('log', 'cli-partner')).stdout.trim().split('\n');
    expect(log).toHaveLength(6);
    expect(log.filter((l) => l.includes('\trevoke\t'))).toHaveLength(3);
    await expect(run('grant', 'cli-partner', '1,x')).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('slu_ids must be') });
    await expect(run('frobnicate')).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('unknown command') });
  });
});
