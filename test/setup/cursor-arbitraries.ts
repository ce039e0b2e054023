import fc from 'fast-check';
import type { Cursor } from '../../src/stream/cursor.ts';
import type { Snapshot } from '../../src/stream/snapshot.ts';

/**
 * fast-check arbitraries for resume cursors, shared by the pure decoder test and the gateway fuzz test:
 * cursors the gateway could have written (valid by construction) and texts that only look like one.
 */

/** "c1." + base64url(JSON): how a cursor is written, whatever the JSON. */
export function asCursorText(body: unknown): string {
  return 'c1.' + Buffer.from(JSON.stringify(body) ?? 'undefined').toString('base64url');
}

/** Numbers a snapshot field might hold: small and realistic xids, boundaries, huge, negative, fractional. */
const xidLike: fc.Arbitrary<number | string> = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 2000 }) },
  fc.constantFrom(0, 1, 2, 3, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 33, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, 2 ** 64, 1e21, -1, -0),
  fc.maxSafeNat(),
  fc.bigInt({ min: 0n, max: 2n ** 70n }).map(String),
  fc.integer({ min: -1000, max: -1 }),
  fc.double({ noNaN: false }),
  fc.constantFrom('007', '1e3', '0x10', '+5', ' 5', '5 ', '', '١٢', '9'.repeat(17), '18446744073709551615', '18446744073709551616'),
);

/** A snapshot's text with random parts: mostly near-valid, sometimes nonsense. */
export const snapshotLikeText: fc.Arbitrary<string> = fc.oneof(
  fc
    .tuple(xidLike, xidLike, fc.array(xidLike, { maxLength: 6 }), fc.constantFrom(':', ':', ':', ',', ';'))
    .map(([a, b, xip, sep]) => `${a}${sep}${b}:${xip.join(',')}`),
  fc.integer({ min: 1, max: 2000 }).chain((xmin) =>
    fc.tuple(fc.integer({ min: 0, max: 40 }), fc.array(fc.integer({ min: -3, max: 45 }), { maxLength: 6 })).map(([d, offs]) => `${xmin}:${xmin + d}:${offs.map((o) => xmin + o).join(',')}`),
  ),
  fc.string({ maxLength: 30 }),
  fc.constantFrom('0:0:', '1:1:', '1:0:', '0:1:', '3:10:3', '3:10:10', '3:10:2', '3:10:5,4', '3:10:5,5', '1:2:,', '1:2::', ':', '::', '1:2', '01:02:'),
);

/** PostgreSQL refuses an xmin or xmax whose 32-bit part is 0 (InvalidTransactionId). */
const validXid = (x: number) => x % 2 ** 32 !== 0;

/** A valid snapshot from xmin: valid xmin <= xmax, xip ascending, distinct, in [xmin, xmax). */
function snapshotFrom(xmin: fc.Arbitrary<number>): fc.Arbitrary<Snapshot> {
  return fc
    .tuple(xmin, fc.integer({ min: 0, max: 60 }))
    .filter(([x, d]) => validXid(x) && validXid(x + d))
    .chain(([x, d]) => fc.subarray(Array.from({ length: d }, (_, i) => x + i)).map((xip) => ({ xmin: x, xmax: x + d, xip })));
}

/** Valid snapshots anywhere up to 2^40, often near an epoch boundary (where PostgreSQL has its own rules). */
export const validSnapshot: fc.Arbitrary<Snapshot> = snapshotFrom(
  fc.oneof(fc.integer({ min: 1, max: 2 ** 40 }), fc.integer({ min: 1, max: 4 }).chain((e) => fc.integer({ min: e * 2 ** 32 - 50, max: e * 2 ** 32 + 5 }))),
);

/**
 * Valid snapshots from the first few hundred transactions: older than any test database's present (initdb
 * alone takes about 750), so a gateway resumes from them instead of refusing them as ahead of it.
 */
const pastSnapshot: fc.Arbitrary<Snapshot> = snapshotFrom(fc.integer({ min: 3, max: 500 }));

/** A snapshot taken after `s` (it sees everything `s` sees): what the gateway's later snapshots look like. */
function laterThan(s: Snapshot): fc.Arbitrary<Snapshot> {
  return fc.tuple(fc.integer({ min: 0, max: 40 }), fc.subarray([...s.xip]), fc.integer({ min: 0, max: 3 })).chain(([grow, stillRunning, lower]) => {
    const xmax = s.xmax + grow;
    return fc.subarray(Array.from({ length: grow }, (_, i) => s.xmax + i)).map((started) => {
      const xip = [...stillRunning, ...started];
      const bound = xip.length > 0 ? (xip[0] as number) : xmax;
      return { xmin: Math.max(1, bound - lower), xmax, xip };
    });
  }).filter((q) => validXid(q.xmin) && validXid(q.xmax));
}

function cursorFrom(snapshot: fc.Arbitrary<Snapshot>): fc.Arbitrary<Cursor> {
  return snapshot.chain((s) =>
    fc.oneof(
      fc.constant<Cursor>({ kind: 'settled', s }),
      laterThan(s).chain((q) => {
        const inBetween = [...s.xip.filter((x) => !q.xip.includes(x)), ...Array.from({ length: q.xmax - s.xmax }, (_, i) => s.xmax + i).filter((x) => !q.xip.includes(x))];
        if (inBetween.length === 0) return fc.constant<Cursor>({ kind: 'settled', s: q });
        return fc.tuple(fc.constantFrom(...inBetween), fc.maxSafeNat()).map(([xid, id]): Cursor => ({ kind: 'paging', s, q, xid, id }));
      }),
    ),
  );
}

/** Cursors the gateway could have written: settled, or paging with (x, i) a row visible in q and not in s. */
export const validCursor: fc.Arbitrary<Cursor> = cursorFrom(validSnapshot);
/** The same from long-past transactions: cursors a test gateway resumes from. */
const pastCursor: fc.Arbitrary<Cursor> = cursorFrom(pastSnapshot);

function bodyOf(c: Cursor): Record<string, unknown> {
  const f = (s: Snapshot) => `${s.xmin}:${s.xmax}:${s.xip.join(',')}`;
  if (c.kind === 'history') return c.after ? { h: c.from, q: f(c.q), a: c.after.sluId, t: c.after.t, i: c.after.id } : { h: c.from, q: f(c.q) };
  return c.kind === 'settled' ? { s: f(c.s) } : { s: f(c.s), q: f(c.q), x: c.xid, i: c.id };
}

const junkValue = fc.oneof(fc.jsonValue({ maxDepth: 3 }), xidLike, fc.constant(undefined));

/** JSON bodies that are almost a cursor: valid ones with one part changed, an extra key, a nested object... */
const nearValidBody: fc.Arbitrary<unknown> = fc.oneof(
  validCursor.map(bodyOf),
  pastCursor.map(bodyOf),
  fc.tuple(validCursor.map(bodyOf), fc.constantFrom('s', 'q', 'x', 'i'), junkValue).map(([b, k, v]) => ({ ...b, [k]: v })),
  fc.tuple(validCursor.map(bodyOf), fc.constantFrom('s', 'q', 'x', 'i')).map(([b, k]) => Object.fromEntries(Object.entries(b).filter(([key]) => key !== k))),
  fc.tuple(validCursor.map(bodyOf), fc.string({ maxLength: 5 }), junkValue).map(([b, k, v]) => ({ ...b, [k]: v })),
  fc.tuple(validCursor.map(bodyOf), fc.constantFrom('s', 'q')).map(([b, k]) => ({ ...b, [k]: { nested: b[k] } })),
  fc.tuple(validCursor.map(bodyOf)).map(([b]) => Object.fromEntries(Object.entries(b).reverse())),
  fc.record({ s: snapshotLikeText }),
  fc.record({ s: snapshotLikeText, q: snapshotLikeText, x: xidLike, i: xidLike }),
  fc.record({ s: snapshotLikeText, q: snapshotLikeText, x: xidLike, i: xidLike }, { requiredKeys: [] }),
  fc.constant({ s: '1:1:', q: '0:0:', x: 0, i: 0 }), // the reviewers' cursor that closed with 1011
  fc.jsonValue({ maxDepth: 4 }),
);

/** Cursor texts: written by the gateway, near-valid, and plain garbage. */
export const cursorLikeText: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: validCursor.map((c) => asCursorText(bodyOf(c))) },
  { weight: 2, arbitrary: pastCursor.map((c) => asCursorText(bodyOf(c))) },
  { weight: 6, arbitrary: nearValidBody.map(asCursorText) },
  fc.tuple(nearValidBody.map(asCursorText), fc.constantFrom('', '=', '==', ' ', '.', 'A', '%', '+/')).map(([t, tail]) => t + tail),
  fc.string({ maxLength: 60 }).map((s) => 'c1.' + s),
  fc.string({ maxLength: 60 }),
);
