import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';

const require = createRequire(import.meta.url);
const here = (f: string) => new URL(`../../dashboard/${f}`, import.meta.url);

/**
 * The live dashboard at BASE_PATH/ (same mTLS and grants as the API): one HTML page, one script, and uPlot
 * served from node_modules, so nothing is loaded from the internet and nothing needs a build step.
 */
export async function registerDashboard(app: FastifyInstance, basePath: string): Promise<void> {
  const uplot = path.dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  // A Map, not an object literal: the file name comes from the URL, and /assets/__proto__ or /assets/toString
  // must miss (an object lookup finds Object.prototype's members and answered 500).
  const files = new Map<string, { type: string; body: string }>([
    ['dashboard.js', { type: 'text/javascript; charset=utf-8', body: readFileSync(here('dashboard.js'), 'utf8') }],
    ['uplot.js', { type: 'text/javascript; charset=utf-8', body: readFileSync(path.join(uplot, 'uPlot.iife.min.js'), 'utf8') }],
    ['uplot.css', { type: 'text/css; charset=utf-8', body: readFileSync(path.join(uplot, 'uPlot.min.css'), 'utf8') }],
  ]);
  const page = readFileSync(here('index.html'), 'utf8').replaceAll('__BASE__', basePath);
  // The page only talks to its own origin; nothing inline but the stylesheet.
  const csp = "default-src 'self'; connect-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";
  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').header('content-security-policy', csp).header('cache-control', 'no-cache').send(page));
  app.get<{ Params: { file: string } }>('/assets/:file', async (req, reply) => {
    const f = files.get(req.params.file);
    if (!f) return reply.callNotFound();
    return reply.type(f.type).header('cache-control', 'public, max-age=3600').send(f.body);
  });
}
