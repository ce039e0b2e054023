#!/usr/bin/env node
// `npx sluice …`: the TypeScript CLI through tsx (Node 20 cannot run TypeScript by itself).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/sluice.ts');
