import { readFileSync } from 'node:fs';

/** The package version (package.json), for the OpenAPI document and logs. */
export const SLUICE_VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
