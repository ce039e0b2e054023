// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';

// ATTACK: after Node emits 'upgrade' it removes the HTTP server's socket 'error' listener; ws adds its own only
// inside handleUpgrade. Between the two (the refusals written with socket.end(), and the async grant lookup),
// a TCP reset from the client makes the socket emit 'error' with no listener: an uncaught exception.
let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let g: Gateway;
const uncaught: unknown[] = [];
const onUncaught = (err: unknown) => uncaught.push(err);

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  acme = await pki.client('acme');
  ({ gateway: g } = await startTestGateway(db.url, pki));
  process.on('uncaughtException', onUncaught);
}, 60_000);
afterAll(async () => {
  process.off('uncaughtException', onUncaught);
  await g?.close();
  await db?.drop();
  await pki?.close();
});

function upgradeThenReset(path: string, delayMs: number): Promise<void> {
  return new Promise((resolve) => {
    const raw = net.connect(g.port, '127.0.0.1', () => {
      const s = tls.connect({ socket: raw, servername: 'localhost', ca: pki.ca.certPem, cert: acme.certPem, key: acme.keyPem }, () => {
        s.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`);
        setTimeout(() => { raw.resetAndDestroy(); resolve(); }, delayMs);
      });
      s.on('error', () => resolve());
    });
    raw.on('error', () => resolve());
  });
}

describe('client reset right after an upgrade request', () => {
  it('no uncaught exception', async () => {
    for (let i = 0; i < 20; i++) await upgradeThenReset('/cityxchange/not-the-stream', i % 4);
    console.log('after 20 refused upgrades + RST:', uncaught.map((e) => String(e)).slice(0, 3), uncaught.length);
    // the async grant lookup window: a fresh grant load (as after any grant change) for each upgrade
    for (let i = 0; i < 20; i++) {
      g.grants.changed('acme');
      await upgradeThenReset('/cityxchange/stream', 0);
    }
    console.log('after 20 more during a grant reload:', uncaught.length);
    await new Promise((r) => setTimeout(r, 500));
    expect(uncaught.map((e) => String(e))).toEqual([]);
  });
});
