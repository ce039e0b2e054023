// `npm run db`: runs only the embedded PostgreSQL (migrated) and prints its URL, for psql, the simulator and
// tools, until Ctrl-C. `npm start` reuses it when it is running.
//
// `npm run db -- <command>` works on DATABASE_URL or the embedded database (docs/operations.md):
//   partitions [--from <date>]   lists the partitions of slu_reading; --from adds partitions for the past
//   maintain                     one round of partition upkeep now (ahead, cold, RETENTION)
//   prune [--retention "90 days"] drops the partitions past the retention (RETENTION or --retention)
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/config.ts';
import { partitionPolicy } from '../db/database.ts';
import { addPartitionsFrom, maintainPartitions } from '../db/partitions.ts';
import { openDatabase } from './database.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { from: { type: 'string' }, retention: { type: 'string' } },
});
const command = positionals[0];

try {
  const config = loadConfig(values.retention ? { ...process.env, RETENTION: values.retention } : process.env);
  if (command === undefined) {
    if (config.DATABASE_URL) {
      console.error('DATABASE_URL is set: there is no embedded database to run');
      process.exit(2);
    }
    const db = await openDatabase(config, 1);
    console.log(`embedded PostgreSQL running (data in ${config.EMBEDDED_PG_DIR})\n  DATABASE_URL=${db.url}\nCtrl-C stops it.`);
    const stop = async () => {
      await db.close();
      process.exit(0);
    };
    process.once('SIGINT', stop).once('SIGTERM', stop);
    setInterval(() => undefined, 1 << 30);
  } else if (command === 'partitions' || command === 'maintain' || command === 'prune') {
    if (command === 'prune' && config.RETENTION === undefined) {
      console.error('prune needs a retention: set RETENTION (e.g. RETENTION="90 days") or pass --retention "90 days"');
      process.exit(2);
    }
    const db = await openDatabase(config, 2);
    try {
      if (command === 'partitions' && values.from) {
        const made = await addPartitionsFrom(db.pool, values.from, config.PARTITION_WIDTH);
        console.log(made.length ? `added ${made.length} partitions: ${made[0]} .. ${made.at(-1)}` : 'no partition to add');
      }
      if (command === 'maintain' || command === 'prune') {
        const t0 = Date.now();
        const report = await maintainPartitions(db.pool, partitionPolicy(config));
        if (!report) console.log('another process is maintaining the partitions right now; try again in a minute');
        else {
          console.log(`made ahead: ${report.created.join(', ') || 'none'}\nturned cold: ${report.cold.join(', ') || 'none'}`);
          console.log(`dropped: ${report.dropped.map((d) => `${d.name} (~${d.rows.toLocaleString()} rows)`).join(', ') || 'none'}`);
          if (report.defaultRowsDeleted) console.log(`deleted from the default partition: ${report.defaultRowsDeleted} rows`);
          console.log(`in ${Date.now() - t0} ms`);
        }
      }
      const list = await db.pool.query<{ name: string; lo: string; hi: string; cold: boolean; rows: string; size: string }>(
        `select c.relname as name, coalesce(p.lo::text, case when c.relname = 'slu_reading_default' then 'DEFAULT' else 'MINVALUE' end) as lo,
                coalesce(p.hi::text, '') as hi, p.cold_xid is not null or c.relname = 'slu_reading_default' as cold,
                greatest(c.reltuples, 0)::bigint::text as rows, pg_size_pretty(pg_total_relation_size(c.oid)) as size
         from pg_inherits i join pg_class c on c.oid = i.inhrelid left join sluice_partition p on p.name = c.relname
         where i.inhparent = 'slu_reading'::regclass order by p.lo nulls first, c.relname`,
      );
      console.table(list.rows.map((r) => ({ partition: r.name, from: r.lo, to: r.hi, cold: r.cold, 'rows (est.)': Number(r.rows), size: r.size })));
    } finally {
      await db.close();
    }
  } else {
    console.error(`unknown command ${command}: use partitions [--from <date>], maintain, or prune [--retention "90 days"]`);
    process.exit(2);
  }
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : `db ${command ?? ''} failed: ${(err as Error).message}`);
  process.exit(1);
}
