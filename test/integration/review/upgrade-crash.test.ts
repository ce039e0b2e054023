// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';

// ATTACK: stream-server.ts onUpgrade does `new URL(req.url ?? '/', 'https://x')` outside any try. A request
// target that Node's HTTP parser accepts but WHATWG URL refuses ("//a:99999/", "http://a:99999/") throws inside
// the server's 'upgrade' listener: an uncaught exception. Any certificate from TLS_CA will do (the identity,
// revocation and grant checks come after the URL parse), so a partner without grants can do it.
let db: TestDatabase;
let pki: TestPki;
let nobody: CertAndKey;
let g: Gateway;
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  nobody = await pki.client('nobody-without-grants');
  ({ gateway: g } = await startTestGateway(db.url, pki));
  process.on('uncaughtException', onUncaught);
}, 60_000);
afterAll(async () => {
  process.off('uncaughtException', onUncaught);
  await g?.close();
  await db?.drop();
  await pki?.close();
});

function raw(target: string, upgrade = true): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: g.port, servername: 'localhost', ca: pki.ca.certPem, cert: nobody.certPem, key: nobody.keyPem }, () => {
      if (!upgrade) return void s.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
      s.write(`GET ${target} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`);
    });
    let data = '';
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('error', (e) => resolve(`error ${e.message}`));
    s.on('close', () => resolve(data.split('\r\n')[0] ?? ''));
    setTimeout(() => { s.destroy(); resolve(`no answer after 2 s: ${data.split('\r\n')[0] ?? ''}`); }, 2000);
  });
}

describe('upgrade with an unparsable request target', () => {
  it('does not throw out of the upgrade handler', async () => {
    for (const target of ['//a:99999/cityxchange/stream', 'http://a:99999/cityxchange/stream']) {
      const answer = await raw(target);
      console.log(target, '->', JSON.stringify(answer), '| uncaught so far:', uncaught.map((e) => String(e)));
    }
    console.log('plain GET (REST, fastify):', await raw('//a:99999/cityxchange/latest', false), '| uncaught:', uncaught.length);
    expect(uncaught, 'uncaught exceptions (in the real process: a crash)').toEqual([]);
  });
});
