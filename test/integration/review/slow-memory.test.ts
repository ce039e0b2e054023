// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { grant } from '../../../src/access/grant-store.ts';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { httpsClient } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';
import { StreamClient } from '../../setup/ws-client.ts';

// ATTACK: the slow-consumer bound is per connection (WS_MAX_BUFFER_BYTES, 4 MiB), the connection bound per
// partner (WS_MAX_CONNECTIONS_PER_PARTNER, 1000). Nothing bounds their product: one partner that opens many
// "all SLUs" streams and never reads makes the gateway hold up to 4 MiB per stream (4 GiB per partner at the
// defaults). Measured with N = 200 streams.
const N = 200;
let db: TestDatabase;
let pki: TestPki;
let hog: CertAndKey;
let other: CertAndKey;
let g: Gateway;
const clients: StreamClient[] = [];

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [hog, other] = await Promise.all([pki.client('hog'), pki.client('other')]);
  ({ gateway: g } = await startTestGateway(db.url, pki, { REST_RATE_LIMIT: '0', WS_HEARTBEAT_MS: '60000' }, { grantAll: ['hog', 'other'] }));
}, 60_000);
afterAll(async () => {
  for (const c of clients) c.ws.terminate();
  await g?.close();
  await db?.drop();
  await pki?.close();
});

const mib = (n: number) => Math.round(n / 1024 / 1024);
function mem() {
  const m = process.memoryUsage();
  return { rss: mib(m.rss), heap: mib(m.heapUsed), external: mib(m.external), arrayBuffers: mib(m.arrayBuffers) };
}

describe('memory held for clients that never read', () => {
  it(`${N} non-reading streams of one partner`, async () => {
    const http = httpsClient({ port: g.port, ca: pki.ca.certPem, client: other });
    const rowsMs = async () => {
      const t: number[] = [];
      for (let i = 0; i < 9; i++) {
        const t0 = performance.now();
        await http.get('/cityxchange/rows?slu_id=1&cnt=100');
        t.push(performance.now() - t0);
      }
      return Math.round((t.sort((a, b) => a - b)[4] as number) * 10) / 10;
    };
    (globalThis as { gc?: () => void }).gc?.();
    const before = mem();
    for (let i = 0; i < N; i++) {
      const c = new StreamClient(g.port, { ca: pki.ca.certPem, client: hog, query: 'slu_id=1,2,3,4,5,6,7,8,9,10' }); // a list, not "all": every client gets its own frame string
      clients.push(c);
    }
    await Promise.all(clients.map((c) => c.next('subscribed')));
    for (const c of clients) (c.ws as unknown as { _socket: Socket })._socket.pause();
    await db.pool.query(`insert into slu_reading (slu_id, v1, p1, a1) select 1 + n % 10, n, 0.9, 16.6 from generate_series(1, 200) n`);
    const baseline = await rowsMs();
    let peak = before;
    let peakBuffered = 0;
    for (let b = 0; b < 40; b++) {
      await db.pool.query(`insert into slu_reading (slu_id, v1, p1, p2, p3, k1, k2, k3, a1, a2, a3, v2, v3)
        select 1 + n % 10, n, 0.9, 0.91, 0.92, 56000.5, 56001.5, 56002.5, 16.6, 16.7, 16.8, 230, 231 from generate_series(1, 1000) n`);
      await new Promise((r) => setTimeout(r, 100));
      let buffered = 0;
      for (const s of g.stream.sessions()) buffered += s.ws.bufferedAmount;
      const m = mem();
      if (m.rss > peak.rss) peak = m;
      peakBuffered = Math.max(peakBuffered, buffered);
    }
    let buffered = 0;
    for (const s of g.stream.sessions()) buffered += s.ws.bufferedAmount;
    console.log(`after the inserts: ${JSON.stringify(mem())}, bufferedAmount ${mib(buffered)} MiB in ${g.stream.clients} sessions`);
    const during = await rowsMs();
    const closes = new Map<number | undefined, number>();
    await new Promise((r) => setTimeout(r, 1500));
    for (const c of clients) closes.set(c.closeCode, (closes.get(c.closeCode) ?? 0) + 1);
    console.log(`before ${JSON.stringify(before)}; peak ${JSON.stringify(peak)}; peak bufferedAmount over all sessions ${mib(peakBuffered)} MiB; ` +
      `other partner /rows median ${baseline} ms -> ${during} ms while hogged; clients closed: ${JSON.stringify([...closes])}`);
    http.close();
    // Bounded by WS_MAX_PARTNER_BUFFER_BYTES (64 MiB) plus what one batch adds before the next check (it was
    // 830 MiB, 4 MiB per stream, and ran a gateway out of memory); every hog stream is cut off, none is left.
    expect(mib(peakBuffered), 'MiB of unsent frames held for one partner').toBeLessThan(128);
    expect(g.stream.clients).toBe(0);
  }, 180_000);
});
