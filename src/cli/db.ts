// `npm run db`: runs only the embedded PostgreSQL (migrated) and prints its URL, for psql, the simulator and
// tools, until Ctrl-C. `npm start` reuses it when it is running.
import { loadConfig } from '../config/config.ts';
import { openDatabase } from './database.ts';

const config = loadConfig();
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
