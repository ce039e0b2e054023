import { describe, expect, it } from 'vitest';
import { addressGroup } from '../../src/tls/address-group.ts';

describe('addressGroup', () => {
  it('keeps IPv4 addresses apart, one group each', () => {
    expect(addressGroup('127.0.0.2')).toBe('127.0.0.2');
    expect(addressGroup('10.0.0.1')).not.toBe(addressGroup('10.0.0.2'));
  });

  it('treats an IPv4-mapped IPv6 address (a dual-stack listener) as its IPv4 address', () => {
    expect(addressGroup('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(addressGroup('::FFFF:10.0.0.1')).toBe('10.0.0.1');
  });

  it('groups IPv6 addresses by /64, whatever their spelling', () => {
    const g = addressGroup('2001:db8:1:2::1');
    expect(g).toBe('2001:db8:1:2::/64');
    for (const same of ['2001:db8:1:2:ffff:ffff:ffff:fffe', '2001:0DB8:0001:0002:0:0:0:9', '2001:db8:1:2:0:0:1.2.3.4', '2001:db8:1:2::7%eth0']) {
      expect(addressGroup(same), same).toBe(g);
    }
    expect(addressGroup('2001:db8:1:3::1')).toBe('2001:db8:1:3::/64');
    expect(addressGroup('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressGroup('::1:2:3:4:5')).toBe('0:0:0:1::/64'); // a short head and a long tail
    expect(addressGroup('::1')).toBe('0:0:0:0::/64');
    expect(addressGroup('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
  });

  it('never throws on what a socket may report', () => {
    expect(addressGroup(undefined)).toBe('unknown');
    expect(addressGroup('')).toBe('unknown');
    expect(addressGroup('not an address')).toBe('not an address');
  });
});
