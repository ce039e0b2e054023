import type { FastifyInstance } from 'fastify';
import { latestPerSlu } from '../../db/latest.ts';
import { rangeRows } from '../../db/range.ts';
import { newestRows } from '../../db/rows.ts';
import { latestArrayJson, type ReadingRow, wrapperJson } from '../../format/reading.ts';
import type { RestDeps } from '../app.ts';
import { encodePageMark, parseRowsQuery, parseTimeQuery } from '../params.ts';

const JSON_TYPE = 'application/json';

/** The three legacy endpoints, exactly as the partner API document prints them. */
export async function registerReadingRoutes(app: FastifyInstance, deps: RestDeps): Promise<void> {
  app.get('/latest', async (_req, reply) => {
    const rows = await latestPerSlu(deps.pool);
    return reply.type(JSON_TYPE).send(latestArrayJson(rows));
  });

  app.get('/rows', async (req, reply) => {
    const { sluId, cnt } = parseRowsQuery(req.query as Record<string, unknown>);
    const rows = await newestRows(deps.pool, sluId, cnt);
    return reply.type(JSON_TYPE).send(wrapperJson(rows, sluId));
  });

  app.get('/time', async (req, reply) => {
    const { sluId, begin, end, before } = parseTimeQuery(req.query as Record<string, unknown>);
    const pageSize = deps.timeMaxRows;
    const rows = await rangeRows(deps.pool, sluId, begin, end, pageSize + 1, before);
    if (rows.length > pageSize) {
      // Same body shape as ever (legacy clients just see 10000 rows); headers say there is more and where.
      const last = rows[pageSize - 1] as (typeof rows)[number];
      const mark = encodePageMark(last[9], last[14] as string);
      const next = `${deps.basePath}/time?slu_id=${sluId}&begin=${begin}&end=${end}&before=${mark}`;
      reply.header('x-sluice-truncated', 'true').header('x-sluice-next', next).header('link', `<${next}>; rel="next"`);
    }
    return reply.type(JSON_TYPE).send(wrapperJson(rows as unknown as ReadingRow[], sluId, pageSize));
  });
}
