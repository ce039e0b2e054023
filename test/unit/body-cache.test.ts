import { describe, expect, it } from 'vitest';
import { BodyCache } from '../../src/rest/body-cache.ts';

const ids = (...xs: string[]) => xs.map((x) => [x] as const);

describe('BodyCache', () => {
  it('returns a body only for exactly the ids it was built from', () => {
    const c = new BodyCache(1 << 20);
    const body = Buffer.from('{"data": [...], "slu_id": 1}');
    c.set('1:3', ids('9', '8', '7'), body);
    expect(c.get('1:3', ids('9', '8', '7'))).toBe(body);
    expect(c.get('1:3', ids('10', '9', '8'))).toBeUndefined(); // a newer reading
    expect(c.get('1:3', ids('9', '8'))).toBeUndefined(); // one deleted
    expect(c.get('1:3', ids('9', '6', '7'))).toBeUndefined(); // any difference at all
    expect(c.get('2:3', ids('9', '8', '7'))).toBeUndefined();
  });

  it('stays within its byte budget, dropping the least recently used first', () => {
    const c = new BodyCache(8000);
    for (let i = 0; i < 10; i++) c.set(`k${i}`, ids(String(i)), Buffer.alloc(900));
    expect(c.get('k0', ids('0'))).toBeUndefined(); // evicted
    expect(c.get('k9', ids('9'))).toBeDefined();
    c.set('huge', ids('x'), Buffer.alloc(5000)); // more than 1/8 of the budget: not kept
    expect(c.get('huge', ids('x'))).toBeUndefined();
  });
});
