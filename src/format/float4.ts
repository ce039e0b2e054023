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
 */
export function formatG9(x: number): string {
  const ax = Math.abs(x);
  let exp = Math.floor(Math.log10(ax));
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
  return assemble(x < 0, String(r), exp);
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
  return assemble(x < 0, String(r), exp);
}

/** Lays out 9 significant digits as %g does: fixed for -4 <= exp < 9, else d.ddde±XX; trailing zeros dropped. */
function assemble(neg: boolean, digits: string, exp: number): string {
  let out: string;
  if (exp < -4 || exp >= 9) {
    const ae = Math.abs(exp);
    out = trimZeros(digits.charAt(0) + '.' + digits.slice(1)) + 'e' + (exp < 0 ? '-' : '+') + (ae < 10 ? '0' + ae : String(ae));
  } else if (exp >= 0) {
    out = trimZeros(digits.slice(0, exp + 1) + '.' + digits.slice(exp + 1));
  } else {
    out = trimZeros('0.' + '0'.repeat(-exp - 1) + digits);
  }
  return neg ? '-' + out : out;
}

function trimZeros(s: string): string {
  let end = s.length;
  while (s.charCodeAt(end - 1) === 48) end--;
  if (s.charCodeAt(end - 1) === 46) end--;
  return s.slice(0, end);
}
