// The raw limit for the stream benchmark: a bare ws server over the same mutual TLS that broadcasts
// pre-serialised frames to every client as fast as the sockets take them. Runs in a worker thread so the
// benchmark's clients do not share its event loop. Plain JavaScript (workers cannot load TypeScript here).
import https from 'node:https';
import { parentPort, workerData } from 'node:worker_threads';
import { WebSocketServer } from 'ws';

const { tls, frame, durationMs } = workerData;
const server = https.createServer({ ...tls, requestCert: true, rejectUnauthorized: true });
const wss = new WebSocketServer({ server, perMessageDeflate: false });
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', (m) => {
  if (m !== 'go') return;
  const end = Date.now() + durationMs;
  let frames = 0;
  const tick = () => {
    if (Date.now() >= end) {
      parentPort.postMessage({ frames });
      for (const c of wss.clients) c.terminate();
      server.close();
      return;
    }
    // Keep every socket's buffer shallow, as sluice's bound does: send only to clients that kept up.
    for (const c of wss.clients) if (c.bufferedAmount < 1 << 20) c.send(frame);
    frames++;
    setImmediate(tick);
  };
  tick();
});
