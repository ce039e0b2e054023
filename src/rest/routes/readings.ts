import type { FastifyInstance, FastifyRequest } from 'fastify';
import { mayRead } from '../../access/grants.ts';
import { SLUICE_VERSION } from '../../version.ts';
import { openApiDocument } from '../openapi.ts';
import { SluiceError } from '../../errors.ts';
import { rangeRows } from '../../db/range.ts';
import { newestIds, newestRows } from '../../db/rows.ts';
import { BodyCache } from '../body-cache.ts';
import { wrapperJson } from '../../format/reading.ts';
import type { RestDeps } from '../deps.ts';
import { encodePageMark, parseRowsQuery, parseTimeQuery } from '../params.ts';

const JSON_TYPE = 'application/json';

/** The three legacy endpoints, exactly as the partner API document prints them. */
export async function registerReadingRoutes(app: FastifyInstance, deps: RestDeps): Promise<void> {
  // The contract, generated from the zod schemas in openapi.ts (built once: it never changes at runtime).
  const openapi = JSON.stringify(openApiDocument(deps.basePath, SLUICE_VERSION));
  app.get('/openapi.json', async (_req, reply) => reply.type(JSON_TYPE).send(openapi));

  const bodies = new BodyCache(deps.bodyCacheBytes ?? 64 * 1024 * 1024);

  app.get('/latest', async (req, reply) => {
    return reply.type(JSON_TYPE).send(await deps.latest(req.access));
  });

  app.get('/rows', async (req, reply) => {
    const { sluId, cnt } = parseRowsQuery(req.query as Record<string, unknown>);
    assertGranted(req, sluId, deps);
    const key = `${sluId}:${cnt}`;
    const fresh = deps.fresh;
    if (fresh) {
      // A body built earlier is still the answer if, once every commit before this request has reached the feed
      // (inserts as rows, UPDATE/DELETE/TRUNCATE as the change counter read in the same snapshot), no batch since
      // the body's mark touched this SLU and nothing changed: no query at all.
      const hit = bodies.peek(key);
      // A feed busy with a backlog does not hold the request up: past the wait, the keys query below decides.
      if (hit?.mark && (await fresh.sync()) && fresh.freshness.unchangedSince(sluId, hit.mark)) return reply.type(JSON_TYPE).send(hit.body);
    }
    const mark = fresh?.freshness.mark(); // before the query: the body will hold everything the feed had by now
    const ids = await newestIds(deps.pool, sluId, cnt, deps.recentFrom?.());
    let body = bodies.get(key, ids.keys, mark);
    if (!body) {
      const rows = await newestRows(deps.pool, deps.cache, sluId, cnt, ids);
      body = Buffer.from(wrapperJson(rows.map((r) => r.formatted), sluId));
      // Stored under the keys it was built from (a cache miss reads afresh, possibly newer than `ids`).
      bodies.set(key, rows.map((r) => [r.key] as const), body, mark);
    }
    return reply.type(JSON_TYPE).send(body);
  });

  app.get('/time', async (req, reply) => {
    const { sluId, begin, end, before } = parseTimeQuery(req.query as Record<string, unknown>);
    assertGranted(req, sluId, deps);
    const page = await rangeRows(deps.pool, deps.cache, { sluId, beginS: begin, endS: end, limit: deps.timeMaxRows, ...(before ? { before } : {}) });
    if (page.next) {
      // Same body shape as ever (legacy clients just see 10000 rows); headers say there is more and where.
      const next = `${deps.basePath}/time?slu_id=${sluId}&begin=${begin}&end=${end}&before=${encodePageMark(page.next.t, page.next.id)}`;
      reply.header('x-sluice-truncated', 'true').header('x-sluice-next', next).header('link', `<${next}>; rel="next"`);
    }
    return reply.type(JSON_TYPE).send(wrapperJson(page.readings, sluId));
  });
}

/** 403 naming the SLU, after the parameters were found valid (a malformed request is a 400 whoever sends it). */
function assertGranted(req: FastifyRequest, sluId: number, deps: RestDeps): void {
  if (mayRead(req.access, sluId)) return;
  deps.metrics?.refusals.inc({ code: 'SLUICE_ERR_SLU_FORBIDDEN' });
  req.log.warn({ partner: req.partner.cn, slu_id: sluId, url: req.url }, 'refused: SLU not granted');
  throw new SluiceError('SLUICE_ERR_SLU_FORBIDDEN', `partner "${req.partner.cn}" is not granted slu_id ${sluId}`, { parameter: 'slu_id' });
}
