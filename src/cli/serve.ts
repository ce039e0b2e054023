// Entry point of `npm start`: see src/server.ts.
import { main } from '../server.ts';

await main();
