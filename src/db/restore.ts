import type pg from 'pg';

/**
 * After a restore onto another cluster (pg_dump, or a base backup of a different cluster's history) rows can carry
 * transaction ids the new cluster has not reached: "in the future", never visible in a snapshot, so the feed would
 * deliver them on every read, and the xid clock would refuse every cursor. Found with one index descent at start
 * (migrate), repaired in one transaction: such rows get xid 1 (older than every snapshot: history, never streamed
 * again), the clock, the notes and the cold marks restart from now, and the horizon moves to now, so cursors from
 * the old cluster get 4410. Returns the number of rows repaired.
 */
export async function repairFutureXids(c: pg.ClientBase): Promise<number> {
  const kind = (await c.query<{ k: string | null }>(`select (select relkind::text from pg_class where oid = to_regclass('slu_reading')) as k`)).rows[0]?.k;
  if (kind !== 'p' && kind !== 'r') return 0;
  // A margin of a thousand transactions: only a restore's rows are that far ahead (the review's reproduction: a
  // million), never a writer's that raced this check.
  const future = await c.query(`select 1 from slu_reading where xid >= (pg_current_xact_id()::text::numeric + 1000)::text::xid8 limit 1`);
  if (future.rowCount === 0) return 0;
  await c.query('begin');
  try {
    await c.query(`set local sluice.repairing_xids = 'on'`);
    const r = await c.query(`update slu_reading set xid = '1' where xid >= (pg_current_xact_id()::text::numeric + 1000)::text::xid8`);
    await c.query(`delete from sluice_xid_clock where xid >= pg_current_xact_id()`);
    await c.query(`insert into sluice_xid_clock (xid) values (pg_current_xact_id()) on conflict do nothing`);
    await c.query(`delete from sluice_reading_late where xid >= pg_current_xact_id()`);
    if ((await c.query(`select to_regclass('sluice_partition') is not null as e`)).rows[0]?.e) {
      await c.query(`update sluice_partition set cold_xid = pg_current_xact_id() where cold_xid >= pg_current_xact_id()`);
    }
    await c.query(`insert into sluice_horizon (purged_below) values (pg_current_xact_id())
      on conflict (only_row) do update set purged_below = excluded.purged_below`);
    await c.query(`update sluice_reading_changes set seq = seq + 1`);
    await c.query('commit');
    return r.rowCount ?? 0;
  } catch (err) {
    await c.query('rollback').catch(() => undefined);
    throw err;
  }
}
