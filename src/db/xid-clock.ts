import type pg from 'pg';
import type { Logger } from 'pino';

/** How long marks are kept: longer than the largest REPLAY_WINDOW_S (366 days), so the window's edge is always known. */
const KEEP = `interval '400 days'`;

const TICK_SQL = `with mark as (
    insert into sluice_xid_clock (xid)
    select pg_current_xact_id() where not exists (select 1 from sluice_xid_clock where at > now() - make_interval(secs => $1))
  )
  delete from sluice_xid_clock where at < now() - ${KEEP} and xid < (select max(xid) from sluice_xid_clock)`;

/**
 * Records the current transaction id with the time every `tickMs` (sql/007), so a resume cursor's age can be
 * told in time. Several gateways share the table: a mark is written only when the newest is older than a tick.
 * A failed tick (database down) is logged at debug and simply retried at the next one.
 */
export function startXidClock(pool: pg.Pool, log: Logger, tickMs = 60_000): { close(): void } {
  const tick = () => {
    pool.query(TICK_SQL, [Math.max(1, Math.floor(tickMs / 1000) - 5)]).catch((err: Error) => log.debug({ err: err.message }, 'could not record the xid clock'));
  };
  tick();
  const timer = setInterval(tick, tickMs);
  timer.unref();
  return { close: () => clearInterval(timer) };
}
