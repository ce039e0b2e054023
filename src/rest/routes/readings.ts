import type { FastifyInstance } from 'fastify';
import { rangeRows } from '../../db/range.ts';
import { newestRows } from '../../db/rows.ts';
import { wrapperJson } from '../../format/reading.ts';
import type { RestDeps } from '../app.ts';
import { encodePageMark, parseRowsQuery, parseTimeQuery } from '../params.ts';

const JSON_TYPE = 'application/json';

/** The three legacy endpoints, exactly as the partner API document prints them. */
export async function registerReadingRoutes(app: FastifyInstance, deps: RestDeps): Promise<void> {
  app.get('/latest', async (_req, reply) => {
    return reply.type(JSON_TYPE).send(await deps.latest());
  });

  app.get('/rows', async (req, reply) => {
    const { sluId, cnt } = parseRowsQuery(req.query as Record<string, unknown>);
    return reply.type(JSON_TYPE).send(wrapperJson(await newestRows(deps.pool, deps.cache, sluId, cnt), sluId));
  });

  app.get('/time', async (req, reply) => {
    const { sluId, begin, end, before } = parseTimeQuery(req.query as Record<string, unknown>);
    const page = await rangeRows(deps.pool, deps.cache, { sluId, beginS: begin, endS: end, limit: deps.timeMaxRows, ...(before ? { before } : {}) });
    if (page.next) {
      // Same body shape as ever (legacy clients just see 10000 rows); headers say there is more and where.
      const next = `${deps.basePath}/time?slu_id=${sluId}&begin=${begin}&end=${end}&before=${encodePageMark(page.next.t, page.next.id)}`;
      reply.header('x-sluice-truncated', 'true').header('x-sluice-next', next).header('link', `<${next}>; rel="next"`);
    }
    return reply.type(JSON_TYPE).send(wrapperJson(page.readings, sluId));
  });
}
