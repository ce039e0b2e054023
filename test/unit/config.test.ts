import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.ts';

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ PORT: 8443, BASE_PATH: '/cityxchange', TLS_CA: 'certs/ca.crt', TLS_CERT: 'certs/server.crt', TLS_KEY: 'certs/server.key', HOST: '0.0.0.0' });
    expect(c.DATABASE_URL).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('lists every problem at once', () => {
    try {
      loadConfig({ PORT: 'eighty', BASE_PATH: 'nope/', DATABASE_URL: 'mysql://x', PG_POOL_MAX: '0' });
      throw new Error('expected ConfigError');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const e = err as ConfigError;
      expect(e.problems).toHaveLength(4);
      expect(e.message).toMatch(/PORT="eighty"/);
      expect(e.message).toMatch(/BASE_PATH="nope\/"/);
      expect(e.message).toMatch(/DATABASE_URL="mysql:\/\/x": must start with postgres/);
      expect(e.message).toMatch(/PG_POOL_MAX/);
    }
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: '' }).PORT).toBe(8443);
  });
});

describe('README', () => {
  it('documents every configuration variable in its table', async () => {
    const { readFileSync } = await import('node:fs');
    const { ConfigSchema } = await import('../../src/config/config.ts');
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    const keys = Object.keys(ConfigSchema.unwrap().shape);
    expect(keys.length).toBeGreaterThan(20);
    expect(keys.filter((k) => !readme.includes(`\`${k}\``))).toEqual([]);
  });
});
