/**
 * The one error catalogue. Every error sluice reports to a partner or an operator has a stable code here,
 * with the HTTP status and/or WebSocket close code it maps to. Codes never change meaning once published:
 * partner code switches on them.
 */
export const ErrorCodes = {
  /** A query parameter is missing, malformed or out of range (HTTP 400; close 4400 on the stream URL). */
  SLUICE_ERR_PARAM: { status: 400, wsClose: 4400, message: 'invalid parameter' },
  /** Unknown path (HTTP 404). */
  SLUICE_ERR_NOT_FOUND: { status: 404, wsClose: 0, message: 'not found' },
  /** Method not allowed on a known path (HTTP 405). */
  SLUICE_ERR_METHOD: { status: 405, wsClose: 0, message: 'method not allowed' },
  /** No usable client certificate on the connection (HTTP 401). */
  SLUICE_ERR_NO_CLIENT_CERT: { status: 401, wsClose: 4401, message: 'a valid client certificate is required' },
  /**
   * A certificate from TLS_CA that cannot name a partner: not exactly one CN in a single-valued RDN, a CN with
   * control or invisible characters or spelled like a pin (sha256:…), or a CA certificate (HTTP 401, also at the
   * stream upgrade). The message says which.
   */
  SLUICE_ERR_CERT_IDENTITY: { status: 401, wsClose: 4401, message: 'this client certificate cannot identify a partner' },
  /** A valid certificate whose partner has no grant at all (HTTP 403; WebSocket upgrade 403, or close 4403 when the last grant is revoked while connected). */
  SLUICE_ERR_NO_GRANTS: { status: 403, wsClose: 4403, message: 'this partner has no access to any SLU' },
  /** An SLU the partner is not granted (HTTP 403 on /rows and /time; an error frame on the stream, no data). */
  SLUICE_ERR_SLU_FORBIDDEN: { status: 403, wsClose: 4403, message: 'not granted for this SLU' },
  /** A grant was revoked while connected: the stream stops for those SLUs (error frame listing them). */
  SLUICE_ERR_GRANT_REVOKED: { status: 403, wsClose: 4403, message: 'grant revoked' },
  /** The client certificate was revoked (listed in TLS_CRL): HTTP 401, live streams closed with 4401. */
  SLUICE_ERR_CERT_REVOKED: { status: 401, wsClose: 4401, message: 'client certificate revoked' },
  /** Too many REST requests from this partner (HTTP 429 with Retry-After). */
  SLUICE_ERR_RATE_LIMITED: { status: 429, wsClose: 0, message: 'rate limit exceeded' },
  /** The partner already has its maximum of concurrent stream connections (upgrade refused with HTTP 429). */
  SLUICE_ERR_PARTNER_CONNECTIONS: { status: 429, wsClose: 4429, message: 'too many connections for this partner' },
  /** The gateway is at its global connection cap (upgrade refused with HTTP 503 and Retry-After). */
  SLUICE_ERR_SERVER_FULL: { status: 503, wsClose: 1013, message: 'gateway at capacity, retry later or elsewhere' },
  /** PostgreSQL cannot be reached or did not answer in time (HTTP 503, WebSocket 1013 try again later). */
  SLUICE_ERR_DB_UNAVAILABLE: { status: 503, wsClose: 1013, message: 'database unavailable, retry later' },
  /** Anything unexpected; details are logged, never sent (HTTP 500, WebSocket 1011). */
  SLUICE_ERR_INTERNAL: { status: 500, wsClose: 1011, message: 'internal error' },
  /** A WebSocket text frame that is not valid JSON or not a known message (error frame; 4400 if repeated). */
  SLUICE_ERR_BAD_MESSAGE: { status: 400, wsClose: 4400, message: 'malformed message' },
  /** A resume cursor that cannot be decoded or is not from this database (HTTP 400 / close 4400). */
  SLUICE_ERR_CURSOR_INVALID: { status: 400, wsClose: 4400, message: 'invalid cursor' },
  /** A resume cursor older than the oldest data the database still holds (HTTP 410 / close 4410). */
  SLUICE_ERR_CURSOR_EXPIRED: { status: 410, wsClose: 4410, message: 'cursor expired' },
  /** Too many SLUs for one connection (error frame; close 4400 when asked for at connect). */
  SLUICE_ERR_TOO_MANY_SLUS: { status: 400, wsClose: 4400, message: 'too many SLUs' },
  /** A stream client sent more messages than WS_MESSAGES_PER_S / WS_MESSAGE_BURST allow: error frame, message dropped; close 4429 when it keeps on. */
  SLUICE_ERR_MESSAGE_RATE: { status: 0, wsClose: 4429, message: 'too many messages' },
  /** The client did not read fast enough; its pending output passed the bound (close 4408). Resume with the cursor. */
  SLUICE_ERR_SLOW_CONSUMER: { status: 0, wsClose: 4408, message: 'slow consumer: reconnect with your last cursor' },
  /** A frame larger than WS_MAX_PAYLOAD_BYTES (close 1009 with this reason; beyond 4x the limit ws closes at once with 1009 and no reason). */
  SLUICE_ERR_FRAME_TOO_LARGE: { status: 0, wsClose: 1009, message: 'frame too large' },
  /** Binary frames are not part of the protocol (close 1003). */
  SLUICE_ERR_BINARY: { status: 0, wsClose: 1003, message: 'binary frames are not accepted' },
  /** This partner already runs REPLAY_MAX_PER_PARTNER resumes at once (close 4429): retry with the same cursor when one has finished. */
  SLUICE_ERR_REPLAY_LIMIT: { status: 429, wsClose: 4429, message: 'too many concurrent replays for this partner' },
  /** The gateway runs REPLAY_MAX_CONCURRENT resumes at once (close 1013 try again later): retry with the same cursor in a few seconds. */
  SLUICE_ERR_REPLAYS_BUSY: { status: 503, wsClose: 1013, message: 'too many concurrent replays on this gateway' },
  /** The gateway is shutting down; reconnect (to another process) with your cursor (close 1012). */
  SLUICE_ERR_GOING_AWAY: { status: 503, wsClose: 1012, message: 'gateway restarting: reconnect with your cursor' },
} as const;

export type ErrorCode = keyof typeof ErrorCodes;

/** An error with a stable catalogue code. `details` are safe to send to the partner. */
export class SluiceError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly wsClose: number;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, message?: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message ?? ErrorCodes[code].message, options);
    this.name = 'SluiceError';
    this.code = code;
    this.status = ErrorCodes[code].status;
    this.wsClose = ErrorCodes[code].wsClose;
    this.details = details;
  }
}

export const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  410: 'Gone', 413: 'Payload Too Large', 414: 'URI Too Long', 429: 'Too Many Requests', 500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** The JSON error body every endpoint uses: fastify's shape plus the catalogue code and details. */
export function errorBody(err: SluiceError): Record<string, unknown> {
  return { statusCode: err.status, code: err.code, error: STATUS_TEXT[err.status] ?? 'Error', message: err.message, ...err.details };
}

/** A 400 naming the offending query parameter. */
export function paramError(parameter: string, message: string, problems?: readonly ParamProblem[]): SluiceError {
  return new SluiceError('SLUICE_ERR_PARAM', message, problems && problems.length > 1 ? { parameter, problems } : { parameter });
}

export interface ParamProblem {
  readonly parameter: string;
  readonly message: string;
}

/** SQLSTATE classes and node socket errors that mean "the database is not there right now". */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0[1-3])/;
const UNAVAILABLE_ERRNO = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'EAI_AGAIN']);

/** True when `err` says PostgreSQL is unreachable, restarting or timed out (as opposed to a bug in a query). */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_ERRNO.has(code) || code === '57014')) return true;
  const m = err.message;
  return (
    m.includes('timeout exceeded when trying to connect') ||
    m.includes('Connection terminated') ||
    m.includes('Query read timeout') ||
    m.includes('connection timeout') ||
    m.includes('Client has encountered a connection error')
  );
}

/** Wraps database failures into the catalogue: unavailability becomes SLUICE_ERR_DB_UNAVAILABLE. */
export function toSluiceError(err: unknown): SluiceError {
  if (err instanceof SluiceError) return err;
  if (isDatabaseUnavailable(err)) return new SluiceError('SLUICE_ERR_DB_UNAVAILABLE', undefined, {}, { cause: err });
  return new SluiceError('SLUICE_ERR_INTERNAL', undefined, {}, { cause: err });
}
