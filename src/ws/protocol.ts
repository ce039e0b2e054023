import { z } from 'zod';

/**
 * Client → server messages (docs/stream.md). Parsed with safeParse at the edge: nothing a client sends can
 * throw past this module.
 */
const SluId = z.number().int().min(0).max(2_147_483_647);

export const ClientMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('subscribe'), slu_ids: z.array(SluId).min(1).optional(), all: z.literal(true).optional() }).strict(),
  z.object({ type: z.literal('unsubscribe'), slu_ids: z.array(SluId).min(1).optional(), all: z.literal(true).optional() }).strict(),
  z.object({ type: z.literal('ping'), id: z.union([z.string().max(100), z.number()]).optional() }).strict(),
]);
export type ClientMessage = z.infer<typeof ClientMessage>;

export type ParseResult = { ok: true; msg: ClientMessage } | { ok: false; message: string };

/** Parses one text frame; never throws. */
export function parseClientMessage(text: string): ParseResult {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, message: 'frame is not valid JSON' };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return { ok: false, message: 'a message must be a JSON object with a "type"' };
  const type = (raw as { type?: unknown }).type;
  if (type !== 'subscribe' && type !== 'unsubscribe' && type !== 'ping') {
    return { ok: false, message: `unknown message type ${JSON.stringify(type)?.slice(0, 40) ?? 'undefined'}; expected subscribe, unsubscribe or ping` };
  }
  const r = ClientMessage.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue?.path.length ? issue.path.join('.') : 'message';
    return { ok: false, message: `${where}: ${issue?.message ?? 'invalid'} (slu_ids must be non-negative integers)` };
  }
  if ((r.data.type === 'subscribe' || r.data.type === 'unsubscribe') && !r.data.slu_ids === !r.data.all) {
    return { ok: false, message: `${r.data.type} needs exactly one of "slu_ids": [..] or "all": true` };
  }
  return { ok: true, msg: r.data };
}

/** Parses the `slu_id` query parameter(s): "1,2,3", repeated, or absent (= all). */
export function parseSluIdQuery(values: readonly string[]): { ok: true; ids: number[] | null } | { ok: false; message: string } {
  if (values.length === 0) return { ok: true, ids: null };
  const ids: number[] = [];
  for (const v of values) {
    for (const part of v.split(',')) {
      const p = part.trim();
      if (!/^\d{1,10}$/.test(p) || Number(p) > 2_147_483_647) {
        return { ok: false, message: `slu_id must be a comma-separated list of non-negative integers, got ${JSON.stringify(p.slice(0, 20))}` };
      }
      ids.push(Number(p));
    }
  }
  return { ok: true, ids: [...new Set(ids)] };
}

/** Frame builders: readings are pre-serialised JSON objects, joined, never re-serialised. */
export function readingsFrame(readingJson: readonly string[], cursorText: string): string {
  return '{"type":"readings","readings":[' + readingJson.join(',') + '],"cursor":"' + cursorText + '"}';
}

export function errorFrame(code: string, message: string): string {
  return JSON.stringify({ type: 'error', code, message });
}
