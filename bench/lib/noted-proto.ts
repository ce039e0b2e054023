import { PACKED_READING } from '../../src/format/reading.ts';

/**
 * A PROTOTYPE, not in sql/ (the next step for src/db/since.ts, measured here so it can be judged): the feed read's
 * noted part plans its lateral read of slu_reading with `t < hot` and the note's t range as run-time values, so
 * every cold partition is in the plan (planned and initialised on every read, whether or not there is a note).
 * Here each note's read is a function call that plans its statement with the note's t range as constants
 * (pruned when planned to the one or two partitions the range touches). STABLE, so it reads with the calling
 * statement's snapshot, like the lateral subquery it replaces; the function is only called for notes, so the
 * usual read (no note) plans sluice_reading_late and the hot partitions only.
 */
export const PROTO_FUNCTION = `create or replace function bench_noted_rows(p_xid xid8, p_lo timestamp, p_hi timestamp, p_hot timestamp, p_limit bigint)
  returns table (packed text, xid xid8, id bigint) language plpgsql stable as $f$
  begin
    return query execute format($q$select ${PACKED_READING}, r.xid, r.id from slu_reading r
      where r.xid >= %L::xid8 and r.xid <= %L::xid8 and r.t >= %L::timestamp and r.t <= %L::timestamp and r.t < %L::timestamp
      order by r.xid, r.id limit %s$q$, p_xid, p_xid, p_lo, p_hi, p_hot, p_limit);
  end $f$`;

/** readSince's statement with the noted part's lateral subquery replaced by the prototype function. */
export function protoText(text: string): string {
  const a = text.indexOf('cross join lateral (');
  if (a < 0) return text; // hot = -infinity: no noted part
  const b = text.indexOf(') p\n', a);
  if (b < 0) throw new Error('readSince text changed: update the prototype rewrite in bench/lib/noted-proto.ts');
  return `${text.slice(0, a)}cross join lateral bench_noted_rows(l.xid, l.lo, l.hi, $5::timestamp, $4::bigint) p${text.slice(b + 3)}`;
}

