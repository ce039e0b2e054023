// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { legacyT, tSortKey } from '../../../src/format/reading.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { httpsClient } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// ATTACK: timestamps outside years 1000-9999. Documented: PostgreSQL's spelling with the fraction padded to six
// digits ("4713-01-01 00:00:00.000000 BC"), ordered as time on /latest.
let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;

/** The documented form: PostgreSQL's text with the fraction padded to 6 digits (before " BC"). */
function documented(pg: string): string {
  if (pg === 'infinity' || pg === '-infinity') return pg;
  const m = /^(\d{4,}-\d\d-\d\d \d\d:\d\d:\d\d)(\.\d+)?( BC)?$/.exec(pg);
  if (!m) throw new Error(pg);
  return m[1] + ((m[2] ?? '.') + '000000').slice(0, 7) + (m[3] ?? '');
}

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0' }));
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

const CASES: Array<[number, string[]]> = [
  // SLU, its readings' t (in insertion order). The newest by SQL must be what /latest shows.
  [1, ['0044-03-15 00:00:00.123 BC', '0010-01-01 00:00:00']],
  [2, ['0010-01-01 00:00:00', '0044-03-15 00:00:00.123 BC']],
  [3, ['0999-01-01 00:00:00.123 BC', '0500-01-01 00:00:00']],
  [4, ['1000-01-01 00:00:00.5 BC', '0001-01-01 00:00:00']],
  [5, ['4713-01-01 00:00:00.123 BC']],
  [6, ['10000-01-01 00:00:00.5', '9999-12-31 23:59:59.999999']],
  [7, ['infinity', '2024-01-01 00:00:00']],
  [8, ['-infinity', '0001-01-01 00:00:00 BC']],
];

describe('odd timestamps', () => {
  it('printed in the documented form and ordered as time on /latest, /rows and the stream', async () => {
    const s = new StreamClient(g.port, { ca: pki.ca.certPem, client: acme });
    await s.next('subscribed');
    for (const [slu, ts] of CASES) {
      for (const [i, t] of ts.entries()) await db.pool.query(`insert into slu_reading (slu_id, t, v1) values ($1, $2::timestamp, $3)`, [slu, t, slu * 10 + i]);
    }
    const http = httpsClient({ port: g.port, ca: pki.ca.certPem, client: acme });
    const latest = (await http.get('/cityxchange/latest')).json<Array<{ slu_id: number; t: string; v1: number }>>();
    const problems: string[] = [];
    for (const [slu] of CASES) {
      const sql = await db.pool.query<{ t: string; v1: number }>(`select r.t::text as t, r.v1 from slu_reading r where r.slu_id = $1 order by r.t desc, r.id desc`, [slu]);
      const newest = sql.rows[0] as { t: string; v1: number };
      const got = latest.find((r) => r.slu_id === slu);
      if (got?.v1 !== newest.v1) problems.push(`/latest slu ${slu}: newest by SQL is ${newest.t} (v1 ${newest.v1}), /latest shows ${got?.t} (v1 ${got?.v1})`);
      const rows = (await http.get(`/cityxchange/rows?slu_id=${slu}&cnt=10`)).json<{ data: Array<{ t: string }> }>().data.map((r) => r.t);
      const want = sql.rows.map((r) => documented(r.t));
      if (JSON.stringify(rows) !== JSON.stringify(want)) problems.push(`/rows slu ${slu}: got ${JSON.stringify(rows)} want ${JSON.stringify(want)}`);
    }
    await s.until(() => s.readings.length >= CASES.flatMap(([, t]) => t).length, 'stream');
    for (const r of s.readings) {
      const pgT = (await db.pool.query<{ t: string }>(`select t::text as t from slu_reading where slu_id = $1 and v1 = $2`, [r.slu_id, r.v1])).rows[0]?.t as string;
      if (r.t !== documented(pgT)) problems.push(`stream slu ${r.slu_id}: ${r.t} instead of ${documented(pgT)}`);
    }
    console.log(problems.join('\n'));
    console.log('legacyT/tSortKey of the 26-char BC text:', legacyT('0044-03-15 00:00:00.123 BC'), tSortKey(legacyT('0044-03-15 00:00:00.123 BC')), 'vs AD 10:', tSortKey(legacyT('0010-01-01 00:00:00')));
    http.close();
    await s.close();
    expect(problems).toEqual([]);
  });
});
