// Regression test from the outside review of issue 11 (an attacker's reproduction, kept so the finding stays fixed).
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../../src/gateway.ts';
import type { CertAndKey } from '../../../src/tls/certificates.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';
import { startTestGateway } from '../../setup/gateway.ts';
import { upgradeRequest } from '../../setup/https-client.ts';
import { createTestPki, type TestPki } from '../../setup/pki.ts';

// ATTACK: stream-server.ts counts a connection (total++, perPartner++) before wss.handleUpgrade, and releases
// it only in the callback's ws 'close' handler. When ws refuses the handshake itself (bad Sec-WebSocket-Key,
// wrong version, a socket no longer readable/writable) the callback never runs: the slot is never released.
let db: TestDatabase;
let pki: TestPki;
let acme: CertAndKey;
let other: CertAndKey;
let g: Gateway;

beforeAll(async () => {
  [db, pki] = await Promise.all([createTestDatabase(), createTestPki()]);
  [acme, other] = await Promise.all([pki.client('acme'), pki.client('x')]);
  ({ gateway: g } = await startTestGateway(db.url, pki, { WS_MAX_CONNECTIONS_PER_PARTNER: '5', WS_MAX_CONNECTIONS: '8' }));
}, 60_000);
afterAll(async () => {
  await g?.close();
  await db?.drop();
  await pki?.close();
});

function badUpgrade(client: CertAndKey, headers: string): Promise<string> {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port: g.port, servername: 'localhost', ca: pki.ca.certPem, cert: client.certPem, key: client.keyPem }, () => {
      s.write(`GET /cityxchange/stream HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${headers}\r\n`);
    });
    let data = '';
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('error', () => undefined);
    s.on('close', () => resolve(data.split('\r\n')[0] ?? ''));
  });
}

describe('connection slots leaked by handshakes ws refuses', () => {
  it('five malformed upgrades lock the partner out of the stream; eight lock out everyone', async () => {
    const answers: string[] = [];
    for (let i = 0; i < 5; i++) answers.push(await badUpgrade(acme, 'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: not-a-key\r\n'));
    console.log('malformed upgrades answered:', answers);
    const acmeAfter = await upgradeRequest({ port: g.port, ca: pki.ca.certPem, client: acme });
    console.log('acme, a correct upgrade afterwards:', acmeAfter.status, acmeAfter.body.slice(0, 140));
    for (let i = 0; i < 3; i++) await badUpgrade(other, `Sec-WebSocket-Version: 99\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n`);
    const third = await pki.client('acme-new');
    const thirdAfter = await upgradeRequest({ port: g.port, ca: pki.ca.certPem, client: third });
    console.log('a third partner that never connected before:', thirdAfter.status, thirdAfter.body.slice(0, 140), '| sessions:', g.stream.clients);
    expect(acmeAfter.status).toBe(101);
    expect(thirdAfter.status).toBe(101);
  });
});
