// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, insertReadings, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { httpsClient } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';

// ATTACK: bad input that might reach PostgreSQL and come back as a 5xx.
let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;
beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0' }));
  await insertReadings(db.pool, [{ slu_id: 1, v1: 1 }]);
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

const mark = (s: string) => Buffer.from(s).toString('base64url');

describe('REST inputs', () => {
  it('never a 5xx', async () => {
    const http = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
    const paths = [
      `/cityxchange/time?slu_id=1&begin=0&end=99999999999&before=${mark('0000-01-01 00:00:00.000000|1')}`,
      `/cityxchange/time?slu_id=1&begin=0&end=99999999999&before=${mark('0000-02-29 00:00:00.000000|1')}`,
      `/cityxchange/time?slu_id=1&begin=0&end=99999999999&before=${mark('9999-12-31 23:59:59.999999|999999999999999999')}`,
      `/cityxchange/time?slu_id=1&begin=0&end=99999999999&before=${mark('2024-01-01 24:00:00.000000|1')}`,
      '/cityxchange/rows?slu_id=-0&cnt=1',
      '/cityxchange/rows?slu_id=%2B1&cnt=%2B1',
      '/cityxchange/rows?slu_id=1&cnt=1&slu_id[]=2',
      '/cityxchange/rows?slu_id=%ZZ&cnt=1',
      '/cityxchange/time?slu_id=1&begin=-0&end=0',
      '/cityxchange/rows?slu_id=0000000000000000000000000000001&cnt=1',
      '/cityxchange/time?slu_id=1&begin=99999999999&end=99999999999',
      '/cityxchange/assets/constructor',
      '/cityxchange/%2e%2e/%2e%2e/etc/passwd',
    ];
    const out: string[] = [];
    for (const p of paths) {
      const r = await http.get(p);
      out.push(`${r.status} ${p} ${r.body.slice(0, 100)}`);
    }
    console.log(out.join('\n'));
    http.close();
    expect(out.filter((l) => l.startsWith('5'))).toEqual([]);
  });
});
