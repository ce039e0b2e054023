import { z } from 'zod';
import { ErrorCodes } from '../errors.ts';
import { MAX_ROWS } from './params.ts';

/**
 * The REST contract as zod schemas: the OpenAPI document at BASE_PATH/openapi.json is generated from them, and
 * the tests parse real responses with them (so the document cannot drift from what the gateway sends).
 */
const Float4Text = z.string().regex(/^-?(\d+(\.\d+)?(e[+-]\d+)?|inf|nan)$/i).describe('a float4 value printed like C\'s %.9g (e.g. "0.944000006", "8.5", "5")');
const readingFields = {
  p1: Float4Text.nullable(), p2: Float4Text.nullable(), p3: Float4Text.nullable(),
  k1: Float4Text.nullable(), k2: Float4Text.nullable(), k3: Float4Text.nullable(),
  a1: Float4Text.nullable(), a2: Float4Text.nullable(), a3: Float4Text.nullable(),
  t: z.string().regex(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/).describe('UTC, "YYYY-MM-DD HH:MM:SS.ffffff"'),
};
const volts = { v1: z.number().int().nullable(), v2: z.number().int().nullable(), v3: z.number().int().nullable() };

/** One reading in /rows and /time (no slu_id: it is in the wrapper). Field order as the legacy API prints it. */
export const RowReading = z.object({ ...readingFields, ...volts }).strict().meta({ id: 'RowReading' });
/** One reading in /latest and in stream frames: with slu_id, between t and v1. */
export const LatestReading = z.object({ ...readingFields, slu_id: z.number().int().min(0), ...volts }).strict().meta({ id: 'LatestReading' });
export const LatestResponse = z.array(LatestReading).describe('the newest reading of every SLU the partner is granted, ordered by slu_id');
export const WrapperResponse = z.object({ data: z.array(RowReading), slu_id: z.number().int() }).strict().meta({ id: 'Readings' });
export const ErrorResponse = z
  .object({
    statusCode: z.number().int(),
    code: z.enum(Object.keys(ErrorCodes) as [keyof typeof ErrorCodes, ...Array<keyof typeof ErrorCodes>]),
    error: z.string(),
    message: z.string(),
    parameter: z.string().optional().describe('the query parameter at fault (400, and 403 for slu_id)'),
    problems: z.array(z.object({ parameter: z.string(), message: z.string() })).optional().describe('every problem, when several parameters are wrong'),
  })
  .meta({ id: 'Error' });

const SluId = z.string().regex(/^\d+$/).describe('SLU id, a non-negative integer');
const params = {
  slu_id: SluId,
  cnt: z.string().regex(/^\d+$/).describe(`how many readings, 1..${MAX_ROWS}`),
  begin: z.string().regex(/^-?\d+$/).describe('Unix seconds (not milliseconds), inclusive'),
  end: z.string().regex(/^-?\d+$/).describe('Unix seconds (not milliseconds), inclusive; begin <= end'),
  before: z.string().describe('opaque page mark from the X-Sluice-Next header / Link of the previous page'),
};

function json(schema: z.ZodType): Record<string, unknown> {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { target: 'openapi-3.0', reused: 'ref', io: 'output' }) as Record<string, unknown>;
  return rest;
}

function param(name: keyof typeof params, required: boolean) {
  return { name, in: 'query', required, description: params[name].description, schema: json(params[name]) };
}

function errors(...statuses: number[]) {
  const out: Record<string, unknown> = {};
  const text: Record<number, string> = {
    400: 'a parameter is missing or invalid (the body names it)', 401: 'no valid client certificate, or it was revoked',
    403: 'no grant for this partner, or for this SLU', 429: 'rate limit (see Retry-After)', 503: 'database unavailable; retry',
  };
  for (const s of statuses) out[s] = { description: text[s], content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
  return out;
}

/** The OpenAPI 3.0 document of the partner REST API under `basePath`. */
export function openApiDocument(basePath: string, version: string): Record<string, unknown> {
  const schemas: Record<string, unknown> = {};
  for (const [name, s] of [['RowReading', RowReading], ['LatestReading', LatestReading], ['Readings', WrapperResponse], ['Error', ErrorResponse]] as const) {
    schemas[name] = json(s);
  }
  const ok = (description: string, schema: unknown, headers?: Record<string, unknown>) => ({ description, ...(headers ? { headers } : {}), content: { 'application/json': { schema } } });
  return {
    openapi: '3.0.3',
    info: {
      title: 'sluice: MPOWER / enerXchange partner API',
      version,
      description: 'The legacy partner REST API, unchanged. Every request needs a client certificate (mutual TLS); a partner sees only the SLUs it is granted. Live push: see docs/stream.md (WebSocket at ' + basePath + '/stream).',
    },
    servers: [{ url: basePath }],
    components: {
      schemas,
      securitySchemes: { mutualTLS: { type: 'mutualTLS', description: 'client certificate issued by the operator\'s CA; the subject CN is the partner' } },
    },
    security: [{ mutualTLS: [] }],
    paths: {
      '/latest': {
        get: {
          summary: 'The newest reading of every granted SLU',
          responses: { 200: ok('ordered by slu_id', { type: 'array', items: { $ref: '#/components/schemas/LatestReading' } }), ...errors(401, 403, 429, 503) },
        },
      },
      '/rows': {
        get: {
          summary: 'The newest cnt readings of one SLU, newest first',
          parameters: [param('slu_id', true), param('cnt', true)],
          responses: { 200: ok('an unknown SLU gives an empty data array', { $ref: '#/components/schemas/Readings' }), ...errors(400, 401, 403, 429, 503) },
        },
      },
      '/time': {
        get: {
          summary: `Readings of one SLU with begin <= t <= end, newest first, at most ${MAX_ROWS} per page`,
          parameters: [param('slu_id', true), param('begin', true), param('end', true), param('before', false)],
          responses: {
            200: ok('same body shape on every page', { $ref: '#/components/schemas/Readings' }, {
              'X-Sluice-Truncated': { description: '"true" when more readings match than this page holds', schema: { type: 'string' } },
              'X-Sluice-Next': { description: 'path of the next page', schema: { type: 'string' } },
              Link: { description: '<next page>; rel="next"', schema: { type: 'string' } },
            }),
            ...errors(400, 401, 403, 429, 503),
          },
        },
      },
    },
  };
}
