import type { TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type pg from 'pg';
import type { Logger } from 'pino';
import { SluiceError, toSluiceError } from '../errors.ts';
import type { ReadingCache } from '../format/reading-cache.ts';
import { identityOf, type PartnerIdentity } from '../tls/identity.ts';
import { registerReadingRoutes } from './routes/readings.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The partner behind the request, from its verified client certificate (set in onRequest). */
    partner: PartnerIdentity;
  }
}

/** What the REST app needs from the rest of the gateway. */
export interface RestDeps {
  readonly pool: pg.Pool;
  readonly log: Logger;
  readonly basePath: string;
  /** HTTPS server options (key, cert, ca, requestCert...). */
  readonly https: import('node:https').ServerOptions;
  /** Rows per /time page. */
  readonly timeMaxRows: number;
  /** Formatted readings by id, shared with the stream. */
  readonly cache: ReadingCache;
  /** The /latest body, current as of a database read started after the call (read-your-writes). */
  readonly latest: () => Promise<string>;
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  410: 'Gone', 413: 'Payload Too Large', 414: 'URI Too Long', 429: 'Too Many Requests', 500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** The JSON error body every endpoint uses: fastify's shape plus the catalogue code and details. */
export function errorBody(err: SluiceError): Record<string, unknown> {
  return { statusCode: err.status, code: err.code, error: STATUS_TEXT[err.status] ?? 'Error', message: err.message, ...err.details };
}

function sendError(reply: FastifyReply, err: SluiceError): FastifyReply {
  return reply.code(err.status).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(errorBody(err)));
}

/**
 * Builds the HTTPS Fastify app: mTLS identity on every request, the legacy routes under basePath, JSON errors
 * (4xx messages pass through, 5xx details are logged and hidden), one log line per request with the partner.
 */
export function buildRestApp(deps: RestDeps): FastifyInstance {
  const app = Fastify({
    https: deps.https,
    loggerInstance: deps.log,
    // One line per request, written in onResponse with the partner; fastify's own two lines are off.
    logController: new LogController({ disableRequestLogging: true }),
    // Partner tools sometimes add a trailing slash; /cityxchange/latest/ is the same resource.
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
    maxRequestBodySize: 16 * 1024,
    return503OnClosing: true,
    keepAliveTimeout: 65_000,
    requestTimeout: 30_000,
  } as Parameters<typeof Fastify>[0]) as unknown as FastifyInstance;

  app.decorateRequest('partner', null as unknown as PartnerIdentity);

  app.addHook('onRequest', async (req, reply) => {
    const id = identityOf(req.raw.socket as TLSSocket);
    if (!id) return sendError(reply, new SluiceError('SLUICE_ERR_NO_CLIENT_CERT'));
    req.partner = id;
  });

  app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
    req.log.info(
      { partner: req.partner?.cn, method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100 },
      'request',
    );
  });

  app.setErrorHandler((error, req, reply) => {
    let err: SluiceError;
    const status = (error as { statusCode?: number }).statusCode;
    if (error instanceof SluiceError) err = error;
    else if (typeof status === 'number' && status >= 400 && status < 500) {
      err = new SluiceError(status === 404 ? 'SLUICE_ERR_NOT_FOUND' : 'SLUICE_ERR_PARAM', (error as Error).message);
      (err as { status: number }).status = status;
    } else err = toSluiceError(error);
    if (err.status >= 500) req.log.error({ partner: req.partner?.cn, err: (error as Error).cause ?? error, code: err.code }, 'request failed');
    return sendError(reply, err);
  });

  app.setNotFoundHandler((req, reply) => {
    const routes = ['latest', 'rows', 'time'].map((r) => `${deps.basePath}/${r}`).join(', ');
    return sendError(reply, new SluiceError('SLUICE_ERR_NOT_FOUND', `no such endpoint: ${req.method} ${req.url.split('?')[0]}; the API has ${routes}`));
  });

  app.register(async (scoped) => registerReadingRoutes(scoped, deps), { prefix: deps.basePath });
  return app;
}

