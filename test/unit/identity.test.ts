import { describe, expect, it } from 'vitest';
import { isPinSpelling, namesOf } from '../../src/access/grants.ts';
import { partnerName } from '../../src/access/grant-store.ts';
import { commonNameProblem } from '../../src/tls/identity.ts';

const FP = 'AB:'.repeat(31) + 'CD';
const HEX = FP.replace(/:/g, '').toLowerCase();

describe('pins and names', () => {
  it('every spelling partnerName() stores as a pin is a pin spelling, and the other way round', () => {
    for (const s of [`sha256:${HEX}`, `SHA256:${HEX}`, FP, FP.toLowerCase()]) {
      expect(isPinSpelling(s), s).toBe(true);
      expect(partnerName(s)).toBe(`sha256:${HEX}`);
    }
    for (const s of ['acme', HEX, 'sha256', 'sha-256:x']) {
      expect(isPinSpelling(s), s).toBe(false);
      expect(partnerName(s)).toBe(s);
    }
  });

  it('a CN spelled like a pin is never looked up as a name: only the certificate\'s own fingerprint is', () => {
    expect(namesOf({ cn: `sha256:${HEX}`, fingerprint256: 'EF:'.repeat(31) + 'EF', serial: '01' })).toEqual([`sha256:${'ef'.repeat(32)}`]);
    expect(namesOf({ cn: 'acme', fingerprint256: FP, serial: '01' })).toEqual(['acme', `sha256:${HEX}`]);
  });
});

describe('commonNameProblem', () => {
  it.each(['acme', 'acme-energy.eu', 'Müller Energie GmbH', 'Ωmega', '東京電力', 'a b', "o'brien & co (2)", 'x'.repeat(64), '😀'.repeat(64), HEX])('accepts %j', (cn) => {
    expect(commonNameProblem(cn)).toBeUndefined();
  });

  it.each([
    ['', /empty/],
    ['x'.repeat(65), /65 characters/],
    ['a\u0000b', /U\+0000 at character 2/],
    ['a\tb', /U\+0009/],
    ['a\u2028b', /U\+2028/],
    ['a\u200db', /U\+200D/],
    ['a\u3000b', /U\+3000/],
    ['a\ue000b', /U\+E000/],
    [' a', /space/],
    [`sha256:${HEX}`, /pin/],
    [`Sha256:x`, /pin/],
    [FP, /pin/],
  ])('refuses %j', (cn, reason) => {
    expect(commonNameProblem(cn)).toMatch(reason);
  });
});
