import { describe, expect, it } from 'vitest';
import { SluiceError } from '../../src/errors.ts';
import { decodePageMark, encodePageMark, parseRowsQuery, parseTimeQuery } from '../../src/rest/params.ts';

function problem(fn: () => unknown): { parameter: unknown; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(SluiceError);
    const e = err as SluiceError;
    expect(e.status).toBe(400);
    return { parameter: e.details.parameter, message: e.message };
  }
  throw new Error('expected a 400');
}

describe('query parameters', () => {
  it('accepts valid /rows and /time queries', () => {
    expect(parseRowsQuery({ slu_id: '1', cnt: '10' })).toEqual({ sluId: 1, cnt: 10 });
    expect(parseTimeQuery({ slu_id: '3', begin: '1674000000', end: '1674830999' })).toEqual({ sluId: 3, begin: 1674000000, end: 1674830999 });
  });

  it.each([
    [{ cnt: '1' }, 'slu_id', /slu_id is required/],
    [{ slu_id: 'abc', cnt: '1' }, 'slu_id', /slu_id must be an integer/],
    [{ slu_id: '1.5', cnt: '1' }, 'slu_id', /integer/],
    [{ slu_id: '-1', cnt: '1' }, 'slu_id', />= 0/],
    [{ slu_id: '99999999999', cnt: '1' }, 'slu_id', /<= 2147483647/],
    [{ slu_id: ['1', '2'], cnt: '1' }, 'slu_id', /given 2 times/],
    [{ slu_id: '1' }, 'cnt', /cnt is required/],
    [{ slu_id: '1', cnt: '0' }, 'cnt', /between 1 and 10000/],
    [{ slu_id: '1', cnt: '10001' }, 'cnt', /between 1 and 10000/],
    [{ slu_id: '1', cnt: 'ten' }, 'cnt', /cnt must be an integer/],
  ])('rejects /rows %j naming %s', (q, parameter, message) => {
    const p = problem(() => parseRowsQuery(q as Record<string, unknown>));
    expect(p.parameter).toBe(parameter);
    expect(p.message).toMatch(message);
  });

  it.each([
    [{ slu_id: '1', end: '2' }, 'begin', /begin is required/],
    [{ slu_id: '1', begin: '1' }, 'end', /end is required/],
    [{ slu_id: '1', begin: 'x', end: '2' }, 'begin', /integer/],
    [{ slu_id: '1', begin: '5', end: '4' }, 'begin', /begin \(5\) is after end \(4\)/],
    [{ slu_id: '1', begin: '1674000000000', end: '1674830999000' }, 'begin', /looks like milliseconds.*seconds \(e\.g\. 1674000000\)/],
    [{ slu_id: '1', begin: '1674000000', end: '1674830999000' }, 'end', /end=1674830999000 looks like milliseconds/],
    [{ slu_id: '1', begin: '-5', end: '4' }, 'begin', />= 0/],
    [{ slu_id: '1', begin: '1', end: '4', before: 'garbage!' }, 'before', /page mark/],
  ])('rejects /time %j naming %s', (q, parameter, message) => {
    const p = problem(() => parseTimeQuery(q as Record<string, unknown>));
    expect(p.parameter).toBe(parameter);
    expect(p.message).toMatch(message);
  });

  it('round-trips page marks and refuses forged ones', () => {
    const mark = encodePageMark('2023-01-27 16:57:37.190325', '12345');
    expect(decodePageMark(mark)).toEqual({ t: '2023-01-27 16:57:37.190325', id: '12345' });
    expect(decodePageMark(encodePageMark('2023-13-45 16:57:37.190325', '1'))).toBeUndefined();
    expect(decodePageMark(encodePageMark('2023-01-27 16:57:37.190325', '1234567890123456789'))).toBeUndefined();
    expect(decodePageMark('x'.repeat(200))).toBeUndefined();
  });
});

describe('page marks PostgreSQL would refuse', () => {
  it('year 0 (valid for Date, not for PostgreSQL) is not a page mark: a 400, never a 500', () => {
    expect(decodePageMark(encodePageMark('0000-01-01 00:00:00.000000', '1'))).toBeUndefined();
    expect(decodePageMark(encodePageMark('0001-01-01 00:00:00.000000', '1'))).toEqual({ t: '0001-01-01 00:00:00.000000', id: '1' });
  });
});
