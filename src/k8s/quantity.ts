// Kubernetes resource.Quantity (k8s.io/apimachinery/pkg/api/resource), parsed and
// serialized exactly. Values are kept as BigInt mantissa × 10^exponent because the
// adapter must agree with Kubernetes on every digit: a float would turn "0.1" or
// "9Ei" into something the API server never wrote.

export type QuantityFormat = 'DecimalSI' | 'BinarySI' | 'DecimalExponent';

/**
 * Exact value `mantissa × 10^exponent`. Values produced by this module are
 * normalized (the mantissa has no trailing decimal zeros, zero is `0n × 10^0`),
 * so equal values have equal fields. `format` is the suffix family of the input,
 * which Kubernetes keeps for serialization.
 */
export interface Quantity {
  readonly mantissa: bigint;
  readonly exponent: number;
  readonly format: QuantityFormat;
}

export class QuantityError extends Error {
  override name = 'QuantityError';
  readonly input: string;

  constructor(input: string, problem: string) {
    super(`invalid quantity ${JSON.stringify(input)}: ${problem}`);
    this.input = input;
  }
}

const DECIMAL_SUFFIX_EXPONENTS: ReadonlyMap<string, number> = new Map([
  ['n', -9],
  ['u', -6],
  ['m', -3],
  ['', 0],
  ['k', 3],
  ['M', 6],
  ['G', 9],
  ['T', 12],
  ['P', 15],
  ['E', 18],
]);

const DECIMAL_SUFFIX_BY_EXPONENT: ReadonlyMap<number, string> = new Map(
  [...DECIMAL_SUFFIX_EXPONENTS].map(([suffix, exponent]) => [exponent, suffix]),
);

// Powers of two; the index into BINARY_SUFFIXES is the power of 1024.
const BINARY_SUFFIXES = ['', 'Ki', 'Mi', 'Gi', 'Ti', 'Pi', 'Ei'] as const;
const BINARY_SUFFIX_BITS: ReadonlyMap<string, number> = new Map(
  BINARY_SUFFIXES.slice(1).map((suffix, i) => [suffix, (i + 1) * 10]),
);

// Kubernetes keeps the exponent in an int32 and negates it, so it refuses
// anything outside ±(2^31 - 1) instead of letting it wrap.
const MAX_ABS_EXPONENT = 2_147_483_647;

// Parsing rounds every value to a multiple of 10^-9, away from zero, so a
// request for "some" resource never becomes zero.
const NANO_EXPONENT = -9;

// Kubernetes caps BinarySI (and only BinarySI) quantities at the int64 maximum.
const MAX_INT64 = (1n << 63n) - 1n;

// An integer with at least 70 factors of two has a base-1024 exponent past Ei.
const PAST_EXBI_EXPONENT = 70;

const SUFFIX_HELP = 'expected one of n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent such as e3 or E-6';

interface Suffix {
  readonly format: QuantityFormat;
  readonly decimalExponent: number;
  readonly binaryBits: number;
}

interface Scanned {
  readonly negative: boolean;
  readonly intDigits: string;
  readonly fracDigits: string;
  readonly suffix: string;
  readonly suffixStart: number;
}

function isDigitCode(code: number): boolean {
  return code >= 48 && code <= 57;
}

function scanDigits(s: string, from: number): number {
  let pos = from;
  while (pos < s.length && isDigitCode(s.charCodeAt(pos))) pos++;
  return pos;
}

function scanNumber(input: string): Scanned {
  let pos = 0;
  const negative = input[0] === '-';
  if (negative || input[0] === '+') pos = 1;
  const intEnd = scanDigits(input, pos);
  const intDigits = input.slice(pos, intEnd);
  pos = intEnd;
  let fracDigits = '';
  if (input[pos] === '.') {
    const fracEnd = scanDigits(input, pos + 1);
    fracDigits = input.slice(pos + 1, fracEnd);
    pos = fracEnd;
  }
  // The documented grammar needs a digit on one side of the point; the Go
  // scanner is laxer and reads "Mi" or "-" as zero, which hides typos.
  if (intDigits === '' && fracDigits === '') {
    throw new QuantityError(input, 'expected a number (digits with an optional decimal point) before the suffix');
  }
  return { negative, intDigits, fracDigits, suffix: input.slice(pos), suffixStart: pos };
}

function isSuffixCharCode(code: number): boolean {
  const isLetter = (code >= 65 && code <= 90) || (code >= 97 && code <= 122);
  return isLetter || isDigitCode(code) || code === 43 || code === 45;
}

function checkSuffixCharacters(input: string, scanned: Scanned): void {
  for (let i = scanned.suffixStart; i < input.length; i++) {
    if (!isSuffixCharCode(input.charCodeAt(i))) {
      throw new QuantityError(input, `unexpected character ${JSON.stringify(input[i])} at position ${i}`);
    }
  }
}

function parseExponentSuffix(input: string, suffix: string): number | undefined {
  if (!/^[eE][+-]?[0-9]+$/.test(suffix)) return undefined;
  // Digits beyond 2^53 lose precision in Number, but are out of range either way.
  const exponent = Number(suffix.slice(1));
  if (Math.abs(exponent) > MAX_ABS_EXPONENT) {
    throw new QuantityError(input, `exponent ${suffix.slice(1)} is outside ±${MAX_ABS_EXPONENT}`);
  }
  return exponent;
}

function interpretSuffix(input: string, suffix: string): Suffix {
  const decimalExponent = DECIMAL_SUFFIX_EXPONENTS.get(suffix);
  if (decimalExponent !== undefined) return { format: 'DecimalSI', decimalExponent, binaryBits: 0 };
  const binaryBits = BINARY_SUFFIX_BITS.get(suffix);
  if (binaryBits !== undefined) return { format: 'BinarySI', decimalExponent: 0, binaryBits };
  const exponent = parseExponentSuffix(input, suffix);
  if (exponent !== undefined) return { format: 'DecimalExponent', decimalExponent: exponent, binaryBits: 0 };
  throw new QuantityError(input, `unknown suffix ${JSON.stringify(suffix)} (${SUFFIX_HELP})`);
}

function abs(n: bigint): bigint {
  return n < 0n ? -n : n;
}

function digitCount(n: bigint): number {
  return abs(n).toString().length;
}

function normalize(mantissa: bigint, exponent: number): { mantissa: bigint; exponent: number } {
  if (mantissa === 0n) return { mantissa: 0n, exponent: 0 };
  // Strip zeros on the decimal string: repeated BigInt division is quadratic.
  const digits = abs(mantissa).toString();
  let end = digits.length;
  while (digits.charCodeAt(end - 1) === 48) end--;
  const stripped = BigInt(digits.slice(0, end));
  return { mantissa: mantissa < 0n ? -stripped : stripped, exponent: exponent + digits.length - end };
}

function roundUpToNano(mantissa: bigint, exponent: number): { mantissa: bigint; exponent: number } {
  if (mantissa === 0n || exponent >= NANO_EXPONENT) return { mantissa, exponent };
  const shift = NANO_EXPONENT - exponent;
  const sign = mantissa < 0n ? -1n : 1n;
  const magnitude = abs(mantissa);
  // Below 10^-9 entirely: the result is one nano, and 10^shift is never built
  // (an exponent of -2^31 must not allocate a two-billion-digit number).
  if (digitCount(magnitude) <= shift) return { mantissa: sign, exponent: NANO_EXPONENT };
  const divisor = 10n ** BigInt(shift);
  const quotient = magnitude / divisor;
  const roundedUp = magnitude % divisor === 0n ? quotient : quotient + 1n;
  return { mantissa: sign * roundedUp, exponent: NANO_EXPONENT };
}

/** Compares |mantissa × 10^exponent| with a non-negative integer bound without building huge numbers. */
function compareMagnitude(mantissa: bigint, exponent: number, bound: bigint): number {
  const magnitude = abs(mantissa);
  if (exponent >= 0) {
    if (magnitude !== 0n && digitCount(magnitude) + exponent > bound.toString().length + 1) return 1;
    const value = magnitude * 10n ** BigInt(exponent);
    return value === bound ? 0 : value > bound ? 1 : -1;
  }
  if (digitCount(magnitude) + exponent < 0 && bound > 0n) return -1;
  const scaledBound = bound * 10n ** BigInt(-exponent);
  return magnitude === scaledBound ? 0 : magnitude > scaledBound ? 1 : -1;
}

function applyBinaryRules(mantissa: bigint, exponent: number): Quantity {
  if (compareMagnitude(mantissa, exponent, MAX_INT64) > 0) {
    return { mantissa: mantissa < 0n ? -MAX_INT64 : MAX_INT64, exponent: 0, format: 'BinarySI' };
  }
  // A non-zero magnitude below one has no binary spelling, so Kubernetes
  // switches it to DecimalSI at parse time.
  const format = mantissa !== 0n && compareMagnitude(mantissa, exponent, 1n) < 0 ? 'DecimalSI' : 'BinarySI';
  return { mantissa, exponent, format };
}

/** Parses a Kubernetes quantity string such as "1500m", "1.5Gi" or "12e6". */
export function parseQuantity(input: string): Quantity {
  if (input === '') throw new QuantityError(input, 'the string is empty');
  const scanned = scanNumber(input);
  checkSuffixCharacters(input, scanned);
  const suffix = interpretSuffix(input, scanned.suffix);
  const digits = BigInt(scanned.intDigits + scanned.fracDigits);
  const signed = scanned.negative ? -digits : digits;
  const exact = normalize(
    signed << BigInt(suffix.binaryBits),
    suffix.decimalExponent - scanned.fracDigits.length,
  );
  const rounded = roundUpToNano(exact.mantissa, exact.exponent);
  const { mantissa, exponent } = normalize(rounded.mantissa, rounded.exponent);
  if (suffix.format === 'BinarySI') return applyBinaryRules(mantissa, exponent);
  return { mantissa, exponent, format: suffix.format };
}

function formatDecimal(mantissa: bigint, exponent: number, format: 'DecimalSI' | 'DecimalExponent'): string {
  let m = mantissa;
  let e = exponent;
  // Kubernetes only emits exponents that are multiples of three (k, M, e6...).
  while (e % 3 !== 0) {
    m *= 10n;
    e--;
  }
  if (format === 'DecimalSI') {
    const suffix = DECIMAL_SUFFIX_BY_EXPONENT.get(e);
    // Past E or below n there is no SI suffix; exponent notation keeps the
    // magnitude (older Kubernetes printed "1000E" as "1", losing 10^21).
    if (suffix !== undefined) return `${m}${suffix}`;
  }
  return e === 0 ? `${m}` : `${m}e${e}`;
}

function formatBinary(mantissa: bigint, exponent: number): string {
  // Small or fractional values would need rounding in base 1024; Kubernetes
  // prints them as DecimalSI instead of losing precision.
  if (compareMagnitude(mantissa, exponent, 1024n) < 0 || exponent < 0) {
    return formatDecimal(mantissa, exponent, 'DecimalSI');
  }
  if (exponent >= PAST_EXBI_EXPONENT) return formatDecimal(mantissa, exponent, 'DecimalExponent');
  let value = mantissa * 10n ** BigInt(exponent);
  let power = 0;
  while (value % 1024n === 0n) {
    value /= 1024n;
    power++;
  }
  const suffix = BINARY_SUFFIXES[power];
  if (suffix === undefined) return formatDecimal(mantissa, exponent, 'DecimalExponent');
  return `${value}${suffix}`;
}

/**
 * Kubernetes' canonical serialization (Quantity.CanonicalizeBytes): the largest
 * suffix that keeps an integer mantissa, in the quantity's own format.
 */
export function formatQuantity(q: Quantity): string {
  const { mantissa, exponent } = normalize(q.mantissa, q.exponent);
  if (mantissa === 0n) return '0';
  if (q.format === 'BinarySI') return formatBinary(mantissa, exponent);
  return formatDecimal(mantissa, exponent, q.format);
}

/** The canonical Kubernetes spelling of a quantity string, e.g. "1.5" -> "1500m". */
export function canonicalQuantity(input: string): string {
  return formatQuantity(parseQuantity(input));
}

/**
 * A DecimalSI quantity holding exactly the number's shortest decimal spelling
 * (what String(n) prints), rounded away from zero to a multiple of 10^-9.
 */
export function quantityFromNumber(n: number): Quantity {
  if (!Number.isFinite(n)) throw new QuantityError(String(n), 'only finite numbers can be quantities');
  const parsed = parseQuantity(String(n));
  return { mantissa: parsed.mantissa, exponent: parsed.exponent, format: 'DecimalSI' };
}

/** The nearest double; overflows to ±Infinity and underflows to ±0. */
export function quantityToNumber(q: Quantity): number {
  // Letting the engine parse the decimal string rounds once, correctly;
  // Number(mantissa) * 10 ** exponent would round twice.
  return Number(`${q.mantissa}e${q.exponent}`);
}
