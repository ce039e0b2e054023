import type { FastifyInstance } from 'fastify';
import { errorBody } from '../../errors.ts';
import type { RestDeps } from '../deps.ts';

/**
 * GET BASE_PATH/events: the live stream as Server-Sent Events, for any HTTP client (curl -N, a browser's
 * EventSource). Identity, grants, revocation and the rate limit were checked by the app's hooks like for every
 * route; the stream server then applies the stream's own caps and runs the same session as a WebSocket.
 * Query: slu_id=1,2 (absent: every granted SLU); from=<unix seconds> (history from then, then live); resume with
 * the standard Last-Event-ID header or since=.
 */
export async function registerEvents(app: FastifyInstance, deps: RestDeps): Promise<void> {
  app.get('/events', async (req, reply) => {
    if (!deps.events) return reply.callNotFound();
    const q = req.query as Record<string, unknown>;
    const values = (v: unknown): string[] => (v === undefined ? [] : Array.isArray(v) ? v.map(String) : [String(v)]);
    const lastEventId = req.headers['last-event-id'];
    const since = typeof lastEventId === 'string' && lastEventId !== '' ? lastEventId : (values(q.since)[0] ?? null);
    reply.hijack(); // the response is the stream's from here on
    const refused = deps.events(reply.raw, req.partner, req.access, { sluIds: values(q.slu_id), since, from: values(q.from)[0] ?? null });
    if (refused) {
      reply.raw.writeHead(refused.status, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '5' });
      reply.raw.end(JSON.stringify(errorBody(refused)));
    }
  });
}
