import type { TLSSocket } from 'node:tls';
import rateLimit from '@fastify/rate-limit';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { errorBody, SluiceError, toSluiceError } from '../errors.ts';
import { identityError, identityOf, type PartnerIdentity } from '../tls/identity.ts';
import { hasAnyAccess, type Access } from '../access/grants.ts';
import type { RestDeps } from './deps.ts';
import { registerReadingRoutes } from './routes/readings.ts';
import { registerEvents } from './routes/events.ts';
import { registerDashboard } from './routes/dashboard.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The partner behind the request, from its verified client certificate (set in onRequest). */
    partner: PartnerIdentity;
    /** What that partner may read (set in onRequest; a partner without any grant never reaches a route). */
    access: Access;
  }
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
  app.decorateRequest('access', null as unknown as Access);

  app.addHook('onRequest', async (req, reply) => {
    const check = identityOf(req.raw.socket as TLSSocket);
    if (!check.ok) {
      if (check.code === 'SLUICE_ERR_CERT_IDENTITY') {
        req.log.warn({ fingerprint: check.fingerprint256, reason: check.reason }, 'refused: certificate cannot identify a partner');
        deps.metrics?.refusals.inc({ code: check.code });
      }
      return sendError(reply, identityError(check));
    }
    const id = check.identity;
    req.partner = id;
    if (deps.isRevoked(id)) {
      req.log.warn({ partner: id.cn, serial: id.serial }, 'refused: certificate revoked');
      deps.metrics?.refusals.inc({ code: 'SLUICE_ERR_CERT_REVOKED' });
      return sendError(reply, new SluiceError('SLUICE_ERR_CERT_REVOKED'));
    }
    const access = await deps.grants.accessOf(id);
    if (!hasAnyAccess(access)) {
      req.log.warn({ partner: id.cn, fingerprint: id.fingerprint256, url: req.url }, 'refused: partner has no grants');
      deps.metrics?.refusals.inc({ code: 'SLUICE_ERR_NO_GRANTS' });
      return sendError(reply, new SluiceError('SLUICE_ERR_NO_GRANTS', `partner "${id.cn}" has no access to any SLU; ask the operator for a grant`));
    }
    req.access = access;
  });

  app.addHook('onResponse', async (req: FastifyRequest, reply: FastifyReply) => {
    deps.metrics?.restDuration.observe({ route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) }, reply.elapsedTime / 1000);
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

  app.register(
    async (scoped) => {
      if (deps.rateLimitPerSecond > 0) {
        // Per partner, not per IP: partners sit behind NATs and proxies, and the certificate is who they are.
        await scoped.register(rateLimit, {
          max: deps.rateLimitPerSecond,
          timeWindow: 1000,
          hook: 'preHandler', // after onRequest has identified the partner
          keyGenerator: (req) => req.partner.cn,
          errorResponseBuilder: (req, ctx) => {
            req.log.warn({ partner: req.partner.cn, limit: ctx.max }, 'refused: rate limit');
            deps.metrics?.refusals.inc({ code: 'SLUICE_ERR_RATE_LIMITED' });
            return new SluiceError('SLUICE_ERR_RATE_LIMITED', `more than ${ctx.max} requests per second from partner "${req.partner.cn}"; retry in ${ctx.after}`);
          },
        });
      }
      await registerReadingRoutes(scoped, deps);
      await registerEvents(scoped, deps);
      await registerDashboard(scoped, deps.basePath);
    },
    { prefix: deps.basePath },
  );
  return app;
}

