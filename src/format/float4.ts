/**
 * Formats a PostgreSQL `real` (float4) exactly as the legacy partner API printed it: C's `%.9g`
 * (FLT_DIG + 3 significant digits, what PostgreSQL < 12 printed with extra_float_digits = 3, as JDBC sets it).
 * 0.944 -> "0.944000006", 8.5 -> "8.5", 5 -> "5", 1e-5 -> "9.99999975e-06".
 *
 * `text` is PostgreSQL's own text output of the value (shortest round-trip since PostgreSQL 12); parsing it and
 * rounding to float4 gives back the exact stored value, which we then print with 9 significant digits.
 */
export function formatFloat4(text: string): string {
  const x = Math.fround(Number(text));
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  if (!Number.isFinite(x)) return Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity';
  return formatG9(x);
}

// Correctly rounded powers of ten for 10^-60 .. 10^60 (the scale factors a float4 can need).
const POW10 = Array.from({ length: 121 }, (_, i) => Number(`1e${i - 60}`));
const pow10 = (k: number): number => POW10[k + 60] as number;

/**
 * `%.9g` of a finite non-zero double. Fast path: scale to a 9-digit integer and round; the double product is
 * within ~1e-7 of the exact one, so only values whose 10th digit is (nearly) an exact half need the slow,
 * exact path. That keeps the legacy format cheap enough for 10,000-row responses (see bench/rest.ts).
 * `expHint` is floor(log10(|x|)) or one off it (a caller that parsed the value knows it; else it is computed).
 */
export function formatG9(x: number, expHint?: number): string {
  const ax = Math.abs(x);
  let exp = expHint ?? Math.floor(Math.log10(ax));
  let scaled = ax * pow10(8 - exp);
  if (scaled >= 1e9) scaled = ax * pow10(8 - ++exp);
  else if (scaled < 1e8) scaled = ax * pow10(8 - --exp);
  const floor = Math.floor(scaled);
  const frac = scaled - floor;
  if (frac > 0.49999 && frac < 0.50001) return exactG9(x);
  let r = frac > 0.5 ? floor + 1 : floor;
  if (r >= 1e9) {
    r = 1e8;
    exp++;
  }
  return assemble(x < 0, r, exp);
}

/**
 * formatFloat4 of `s.slice(from, to)` without the slice: the digits of PostgreSQL's shortest float4 output are
 * read in place (at most 9 significant digits, so the mantissa is an exact integer and one multiplication or
 * division by an exact power of ten gives the correctly rounded double, the same value Number() returns).
 * Anything unusual (NaN, Infinity, extreme exponents) goes through formatFloat4.
 */
export function formatFloat4Span(s: string, from: number, to: number): string {
  let i = from;
  let c = s.charCodeAt(i);
  const neg = c === 45;
  if (neg) i++;
  let m = 0;
  let digits = 0;
  let dexp = 0;
  let point = false;
  for (; i < to; i++) {
    c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (point) dexp--;
      if (m === 0 && c === 48) continue; // a leading zero
      m = m * 10 + (c - 48);
      digits++;
    } else if (c === 46) point = true;
    else break;
  }
  if (i < to) {
    if (c !== 101) return formatFloat4(s.slice(from, to)); // NaN, Infinity
    let e = 0;
    let eneg = false;
    c = s.charCodeAt(++i);
    if (c === 45 || c === 43) {
      eneg = c === 45;
      i++;
    }
    for (; i < to; i++) e = e * 10 + (s.charCodeAt(i) - 48);
    dexp += eneg ? -e : e;
  }
  if (m === 0) return neg ? '-0' : '0';
  if (digits > 15 || dexp > 22 || dexp < -22) return formatFloat4(s.slice(from, to));
  const x = Math.fround(dexp >= 0 ? m * (POW10[dexp + 60] as number) : m / (POW10[60 - dexp] as number));
  return formatG9(neg ? -x : x, digits - 1 + dexp);
}

/** `%.9g` from the exact decimal expansion, with C's round-half-to-even. Used for near-ties only. */
export function exactG9(x: number): string {
  const ax = Math.abs(x);
  // toExponential(40) is exact for any float4 value with up to 41 significant digits, which covers every case
  // that can be a tie at the 10th digit (a longer expansion cannot end right after it).
  const wide = ax.toExponential(40);
  const we = wide.indexOf('e');
  const all = wide.charAt(0) + wide.slice(2, we);
  let exp = Number(wide.slice(we + 1));
  const head = Number(all.slice(0, 9));
  const rest = all.slice(9);
  let up: boolean;
  if (/^50*$/.test(rest)) up = head % 2 === 1; // exact tie: to even
  else up = rest.charCodeAt(0) >= 53; // >= '5' and not a tie: above half
  let r = up ? head + 1 : head;
  if (r >= 1e9) {
    r = 1e8;
    exp++;
  }
  return assemble(x < 0, r, exp);
}

const ZEROS = ['', '0', '00', '000', '0000', '00000', '000000', '0000000', '00000000'];

/**
 * Lays out 9 significant digits (r, 1e8 <= r < 1e9) as %g does: fixed for -4 <= exp < 9, else d.ddde±XX;
 * trailing zeros dropped (arithmetically, before the digits become a string).
 */
function assemble(neg: boolean, r: number, exp: number): string {
  let n = 9;
  while (r % 10 === 0) {
    r /= 10;
    n--;
  }
  const d = String(r);
  let out: string;
  if (exp < -4 || exp >= 9) {
    const ae = exp < 0 ? -exp : exp;
    out = (n === 1 ? d : d.charAt(0) + '.' + d.slice(1)) + (exp < 0 ? 'e-' : 'e+') + (ae < 10 ? '0' + ae : String(ae));
  } else if (exp >= 0) {
    out = n <= exp + 1 ? d + (ZEROS[exp + 1 - n] as string) : d.slice(0, exp + 1) + '.' + d.slice(exp + 1);
  } else {
    out = '0.' + (ZEROS[-exp - 1] as string) + d;
  }
  return neg ? '-' + out : out;
}
