import { isIPv4, isIPv6 } from 'node:net';

/**
 * The key a remote address is limited under: an IPv4 address as is (an IPv4-mapped IPv6 address, as a
 * dual-stack listener reports it, as its IPv4), an IPv6 address by its /64 (written `2001:db8:0:1::/64`),
 * because one subscriber is handed at least a /64 and can pick a fresh source address in it for every connection.
 * Anything else (undefined: the peer is already gone) is returned as is, or as "unknown".
 */
export function addressGroup(address: string | undefined): string {
  if (!address) return 'unknown';
  const zone = address.indexOf('%'); // fe80::1%eth0: the zone names our interface, not the peer
  const a = (zone >= 0 ? address.slice(0, zone) : address).toLowerCase();
  if (isIPv4(a) || !isIPv6(a)) return a;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1] as string;
  const groups = (s: string | undefined): string[] =>
    // A dotted IPv4 tail (::1.2.3.4) fills the last 32 bits: two groups, never among the first four.
    s ? s.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])) : [];
  const [head, tail] = a.split('::');
  const h = groups(head);
  const t = groups(tail);
  const full = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return `${full.slice(0, 4).map((g) => parseInt(g || '0', 16).toString(16)).join(':')}::/64`;
}
