// Outside review of time-partitioned storage (attack 5): a reproduction, kept so the finding stays fixed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addPartitionsFrom, maintainPartitions } from '../../../src/db/partitions.ts';
import { createPool } from '../../../src/db/pool.ts';
import { createTestDatabase, type TestDatabase } from '../../setup/db.ts';

// ATTACK: maintainPartitions and addPartitionsFrom run `set statement_timeout = 0` (session level) on a client of
// the pool they are given, and release it back. In the gateway that is the REST pool (database.ts passes `pool`),
// so from the first maintenance round on, one of its connections serves partner requests with no server-side
// statement_timeout: a slow /time or /latest query there runs on in PostgreSQL after the client-side timeout gave up.
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
}, 60_000);
afterAll(async () => {
  await db?.drop();
});

describe('the pool after partition upkeep', () => {
  it('keeps PG_QUERY_TIMEOUT_MS on every connection', async () => {
    const pool = createPool({ connectionString: db.url, max: 1, connectTimeoutMs: 5000, queryTimeoutMs: 10_000 }); // as the gateway's
    try {
      expect((await pool.query(`show statement_timeout`)).rows[0].statement_timeout).toBe('10s');
      await maintainPartitions(pool, { widthS: 86_400, ahead: 2, coldAfterS: 3600, replayWindowS: 7 * 86_400 });
      const afterMaintenance = (await pool.query(`show statement_timeout`)).rows[0].statement_timeout;
      const oldest = (await pool.query<{ d: string }>(`select to_char(min(lo) - interval '1 day', 'YYYY-MM-DD') as d from sluice_partition`)).rows[0]?.d as string;
      await addPartitionsFrom(pool, oldest, 86_400);
      const afterFrom = (await pool.query(`show statement_timeout`)).rows[0].statement_timeout;
      console.log(`statement_timeout on the pooled connection: after maintenance ${afterMaintenance}, after partitions --from ${afterFrom}`);
      expect(afterMaintenance).toBe('10s');
      expect(afterFrom).toBe('10s');
    } finally {
      await pool.end();
    }
  });
});
