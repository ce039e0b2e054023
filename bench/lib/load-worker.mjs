// A load-generator thread: `concurrency` keep-alive mTLS connections issuing GETs for `durationMs` (or `count` each).
// Plain JavaScript: worker threads cannot load TypeScript through tsx on Node 20.
import https from 'node:https';
import { parentPort, workerData } from 'node:worker_threads';

const job = workerData;
const agent = new https.Agent({ keepAlive: true, maxSockets: job.concurrency, ca: job.ca, cert: job.cert, key: job.key });
const latencies = [];
let errors = 0;
let bytes = 0;
const end = Date.now() + job.durationMs;
let i = 0;

function one() {
  return new Promise((resolve) => {
    const path = job.paths[i++ % job.paths.length];
    const t0 = performance.now();
    const req = https.request({ host: '127.0.0.1', servername: 'localhost', port: job.port, path, agent }, (res) => {
      res.on('data', (c) => (bytes += c.length));
      res.on('end', () => {
        if (res.statusCode === 200) latencies.push(performance.now() - t0);
        else errors++;
        resolve();
      });
    });
    req.on('error', () => {
      errors++;
      resolve();
    });
    req.end();
  });
}

// `count` requests per connection instead of a duration: e.g. exactly one first touch of each path.
async function loop() {
  if (job.count) for (let n = 0; n < job.count; n++) await one();
  else while (Date.now() < end) await one();
}
await Promise.all(Array.from({ length: job.concurrency }, loop));
agent.destroy();
parentPort.postMessage({ latencies, errors, bytes });
