import t from 'tap';
import {
  QuantityError,
  canonicalQuantity,
  formatQuantity,
  parseQuantity,
  quantityFromNumber,
  quantityToNumber,
} from '../../src/k8s/quantity.js';
import type { Quantity, QuantityFormat } from '../../src/k8s/quantity.js';

// [input, canonical string, format kept from the suffix]. Inputs and expected
// values come from apimachinery's quantity_test.go (TestQuantityParse,
// TestQuantityParseEmit, TestQuantityString alternates), with the canonical
// string worked out from the value each case expects.
const canonicalCases: ReadonlyArray<readonly [string, string, QuantityFormat]> = [
  // zeroes, with every suffix family
  ['0', '0', 'DecimalSI'],
  ['0n', '0', 'DecimalSI'],
  ['0u', '0', 'DecimalSI'],
  ['0m', '0', 'DecimalSI'],
  ['0k', '0', 'DecimalSI'],
  ['0Ki', '0', 'BinarySI'],
  ['0Mi', '0', 'BinarySI'],
  ['0Ti', '0', 'BinarySI'],
  ['00', '0', 'DecimalSI'],
  ['-0', '0', 'DecimalSI'],
  ['0e3', '0', 'DecimalExponent'],
  // binary suffixes
  ['1Ki', '1Ki', 'BinarySI'],
  ['8Ki', '8Ki', 'BinarySI'],
  ['7Mi', '7Mi', 'BinarySI'],
  ['6Gi', '6Gi', 'BinarySI'],
  ['5Ti', '5Ti', 'BinarySI'],
  ['4Pi', '4Pi', 'BinarySI'],
  ['3Ei', '3Ei', 'BinarySI'],
  ['10Ti', '10Ti', 'BinarySI'],
  ['100Ti', '100Ti', 'BinarySI'],
  ['1024Mi', '1Gi', 'BinarySI'],
  ['307200Ki', '300Mi', 'BinarySI'],
  ['1025024Mi', '1001Gi', 'BinarySI'],
  ['1024Gi', '1Ti', 'BinarySI'],
  ['1.5Gi', '1536Mi', 'BinarySI'],
  ['0.5Mi', '512Ki', 'BinarySI'],
  ['2048Ki', '2Mi', 'BinarySI'],
  // BinarySI below 1024 or fractional is printed as DecimalSI
  ['1.5Ki', '1536', 'BinarySI'],
  ['0.5Ki', '512', 'BinarySI'],
  ['100.035Ki', '102435840m', 'BinarySI'],
  ['0.05Gi', '53687091200m', 'BinarySI'],
  ['0.025Ti', '27487790694400m', 'BinarySI'],
  ['.001Ki', '1024m', 'BinarySI'],
  ['.000001Ki', '1024u', 'DecimalSI'],
  ['.000000001Ki', '1024n', 'DecimalSI'],
  // decimal SI suffixes
  ['1', '1', 'DecimalSI'],
  ['5n', '5n', 'DecimalSI'],
  ['4u', '4u', 'DecimalSI'],
  ['3m', '3m', 'DecimalSI'],
  ['9', '9', 'DecimalSI'],
  ['8k', '8k', 'DecimalSI'],
  ['50k', '50k', 'DecimalSI'],
  ['7M', '7M', 'DecimalSI'],
  ['6G', '6G', 'DecimalSI'],
  ['5T', '5T', 'DecimalSI'],
  ['40T', '40T', 'DecimalSI'],
  ['300T', '300T', 'DecimalSI'],
  ['2P', '2P', 'DecimalSI'],
  ['1E', '1E', 'DecimalSI'],
  ['12E', '12E', 'DecimalSI'],
  ['1000M', '1G', 'DecimalSI'],
  ['0.001T', '1G', 'DecimalSI'],
  ['5000m', '5', 'DecimalSI'],
  ['1000u', '1m', 'DecimalSI'],
  ['1080000000n', '1080m', 'DecimalSI'],
  ['2000', '2k', 'DecimalSI'],
  ['1500', '1500', 'DecimalSI'],
  ['2000000', '2M', 'DecimalSI'],
  ['100.035k', '100035', 'DecimalSI'],
  ['10.035M', '10035k', 'DecimalSI'],
  ['9.01', '9010m', 'DecimalSI'],
  ['8.1k', '8100', 'DecimalSI'],
  ['7.123456M', '7123456', 'DecimalSI'],
  ['6.987654321G', '6987654321', 'DecimalSI'],
  ['5.444T', '5444G', 'DecimalSI'],
  ['40.1T', '40100G', 'DecimalSI'],
  ['300.2T', '300200G', 'DecimalSI'],
  ['2.5P', '2500T', 'DecimalSI'],
  ['1.01E', '1010P', 'DecimalSI'],
  // things that look like floating point
  ['1.5', '1500m', 'DecimalSI'],
  ['0.1', '100m', 'DecimalSI'],
  ['1.08', '1080m', 'DecimalSI'],
  ['0.001', '1m', 'DecimalSI'],
  ['0.0005k', '500m', 'DecimalSI'],
  ['0.005', '5m', 'DecimalSI'],
  ['0.05', '50m', 'DecimalSI'],
  ['0.00050k', '500m', 'DecimalSI'],
  ['0.00500', '5m', 'DecimalSI'],
  ['.001', '1m', 'DecimalSI'],
  ['.0001k', '100m', 'DecimalSI'],
  ['1.', '1', 'DecimalSI'],
  ['1.G', '1G', 'DecimalSI'],
  // decimal exponents keep exponent notation, in multiples of three
  ['1E-3', '1e-3', 'DecimalExponent'],
  ['1e3', '1e3', 'DecimalExponent'],
  ['1E6', '1e6', 'DecimalExponent'],
  ['1e9', '1e9', 'DecimalExponent'],
  ['1E12', '1e12', 'DecimalExponent'],
  ['1e15', '1e15', 'DecimalExponent'],
  ['1E18', '1e18', 'DecimalExponent'],
  ['1e21', '1e21', 'DecimalExponent'],
  ['1e14', '100e12', 'DecimalExponent'],
  ['1e13', '10e12', 'DecimalExponent'],
  ['0.5e0', '500e-3', 'DecimalExponent'],
  ['0.5e-1', '50e-3', 'DecimalExponent'],
  ['0.5e-2', '5e-3', 'DecimalExponent'],
  ['1.2e3', '1200', 'DecimalExponent'],
  ['1.3E+6', '1300e3', 'DecimalExponent'],
  ['1.40e9', '1400e6', 'DecimalExponent'],
  ['1.53E12', '1530e9', 'DecimalExponent'],
  ['1.6e15', '1600e12', 'DecimalExponent'],
  ['1.7E18', '1700e15', 'DecimalExponent'],
  ['.001e12', '1e9', 'DecimalExponent'],
  ['0.001e0', '1e-3', 'DecimalExponent'],
  ['1000e-12', '1e-9', 'DecimalExponent'],
  ['80e-3', '80e-3', 'DecimalExponent'],
  ['1e03', '1e3', 'DecimalExponent'],
  // precision finer than 1n rounds up (away from zero)
  ['3.001n', '4n', 'DecimalSI'],
  ['1.1E-9', '2e-9', 'DecimalExponent'],
  ['0.0000000001', '1n', 'DecimalSI'],
  ['0.0000000005', '1n', 'DecimalSI'],
  ['0.00000000050', '1n', 'DecimalSI'],
  ['0.5e-9', '1e-9', 'DecimalExponent'],
  ['0.9n', '1n', 'DecimalSI'],
  ['0.00000012345', '124n', 'DecimalSI'],
  ['0.00000012354', '124n', 'DecimalSI'],
  ['.000000000001Ki', '2n', 'DecimalSI'],
  ['0.000000000001Ki', '2n', 'DecimalSI'],
  ['1e-2147483647', '1e-9', 'DecimalExponent'],
  // BinarySI saturates at the int64 maximum, an odd number, so no suffix fits
  ['9Ei', '9223372036854775807', 'BinarySI'],
  ['9223372036854775807Ki', '9223372036854775807', 'BinarySI'],
  // no SI suffix past E: exponent notation instead of dropping 10^21 (newer Kubernetes)
  ['1000E', '1e21', 'DecimalSI'],
  ['5000E', '5e21', 'DecimalSI'],
  // huge exponents are handled without building the number
  ['1e2147483647', '10e2147483646', 'DecimalExponent'],
  // explicit plus sign and leading zeros are not canonical
  ['+1Ki', '1Ki', 'BinarySI'],
  ['+1.5', '1500m', 'DecimalSI'],
  ['007k', '7k', 'DecimalSI'],
];

t.test('canonical form matches Kubernetes', async (t) => {
  for (const [input, expected, format] of canonicalCases) {
    const q = parseQuantity(input);
    t.equal(formatQuantity(q), expected, `${input} -> ${expected}`);
    t.equal(q.format, format, `${input} keeps format ${format}`);
    t.equal(canonicalQuantity(input), expected, `canonicalQuantity(${input})`);
  }
});

t.test('negative values keep their sign', async (t) => {
  for (const [input, expected] of canonicalCases) {
    if (input.startsWith('-') || input.startsWith('+')) continue;
    const want = expected === '0' ? '0' : `-${expected}`;
    t.equal(canonicalQuantity(`-${input}`), want, `-${input} -> ${want}`);
  }
  t.equal(canonicalQuantity('-1.5Gi'), '-1536Mi');
  t.equal(canonicalQuantity('-1024'), '-1024');
  t.equal(canonicalQuantity('-.000000000001Ki'), '-2n');
  t.equal(canonicalQuantity('-9.01'), '-9010m');
});

t.test('canonical strings are fixed points of the round trip', async (t) => {
  for (const [input, expected] of canonicalCases) {
    const again = canonicalQuantity(expected);
    t.equal(again, expected, `${input}: ${expected} re-parses to itself`);
    const a = parseQuantity(input);
    const b = parseQuantity(expected);
    t.equal(b.mantissa, a.mantissa, `${input}: same mantissa after the round trip`);
    t.equal(b.exponent, a.exponent, `${input}: same exponent after the round trip`);
  }
});

t.test('values are exact BigInt mantissa and base-10 exponent, normalized', async (t) => {
  const cases: ReadonlyArray<readonly [string, Quantity]> = [
    ['1.5', { mantissa: 15n, exponent: -1, format: 'DecimalSI' }],
    ['2000', { mantissa: 2n, exponent: 3, format: 'DecimalSI' }],
    ['1Ki', { mantissa: 1024n, exponent: 0, format: 'BinarySI' }],
    ['1000Ki', { mantissa: 1024n, exponent: 3, format: 'BinarySI' }],
    ['-3.001n', { mantissa: -4n, exponent: -9, format: 'DecimalSI' }],
    ['0.1e-9', { mantissa: 1n, exponent: -9, format: 'DecimalExponent' }],
    ['12345678901234567890123', { mantissa: 12345678901234567890123n, exponent: 0, format: 'DecimalSI' }],
    ['-0Ki', { mantissa: 0n, exponent: 0, format: 'BinarySI' }],
    ['-9Ei', { mantissa: -9223372036854775807n, exponent: 0, format: 'BinarySI' }],
  ];
  for (const [input, want] of cases) {
    const got = parseQuantity(input);
    t.equal(got.mantissa, want.mantissa, `${input} mantissa`);
    t.equal(got.exponent, want.exponent, `${input} exponent`);
    t.equal(got.format, want.format, `${input} format`);
  }
});

t.test('formatQuantity normalizes hand-built quantities', async (t) => {
  t.equal(formatQuantity({ mantissa: 1500n, exponent: 0, format: 'DecimalSI' }), '1500');
  t.equal(formatQuantity({ mantissa: 15000n, exponent: -1, format: 'DecimalSI' }), '1500');
  t.equal(formatQuantity({ mantissa: 0n, exponent: 7, format: 'BinarySI' }), '0');
  t.equal(formatQuantity({ mantissa: 2048n, exponent: 0, format: 'BinarySI' }), '2Ki');
  // below nano there is no suffix either (not reachable by parsing)
  t.equal(formatQuantity({ mantissa: 1n, exponent: -12, format: 'DecimalSI' }), '1e-12');
  t.equal(formatQuantity({ mantissa: 1n, exponent: -10, format: 'DecimalSI' }), '100e-12');
  // BinarySI past Ei falls back to exact decimal notation
  t.equal(formatQuantity({ mantissa: 1n << 70n, exponent: 0, format: 'BinarySI' }), '1180591620717411303424');
  t.equal(formatQuantity({ mantissa: 1n, exponent: 70, format: 'BinarySI' }), '10e69');
  t.equal(formatQuantity({ mantissa: 1n, exponent: 72, format: 'BinarySI' }), '1e72');
});

const malformed: ReadonlyArray<readonly [string, string]> = [
  ['', 'invalid quantity "": the string is empty'],
  ['1.2.3', 'invalid quantity "1.2.3": unexpected character "." at position 3'],
  ['1.1.M', 'invalid quantity "1.1.M": unexpected character "." at position 3'],
  ['1KiB', 'invalid quantity "1KiB": unknown suffix "KiB"'],
  ['Mi', 'invalid quantity "Mi": expected a number'],
  ['1 k', 'invalid quantity "1 k": unexpected character " " at position 1'],
  ['--1', 'invalid quantity "--1": expected a number'],
  ['1e', 'invalid quantity "1e": unknown suffix "e"'],
  ['-', 'invalid quantity "-": expected a number'],
  ['+', 'invalid quantity "+": expected a number'],
  ['.', 'invalid quantity ".": expected a number'],
  ['k', 'invalid quantity "k": expected a number'],
  [' 1', 'invalid quantity " 1": expected a number'],
  ['1 ', 'invalid quantity "1 ": unexpected character " " at position 1'],
  ['1+1.0M', 'invalid quantity "1+1.0M": unexpected character "." at position 3'],
  ['0.1mi', 'invalid quantity "0.1mi": unknown suffix "mi"'],
  ['0.1am', 'invalid quantity "0.1am": unknown suffix "am"'],
  ['aoeu', 'invalid quantity "aoeu": expected a number'],
  ['.5i', 'invalid quantity ".5i": unknown suffix "i"'],
  ['1i', 'invalid quantity "1i": unknown suffix "i"'],
  ['-3.01i', 'invalid quantity "-3.01i": unknown suffix "i"'],
  ['-3.01e-', 'invalid quantity "-3.01e-": unknown suffix "e-"'],
  ['1e+', 'invalid quantity "1e+": unknown suffix "e+"'],
  ['1ki', 'invalid quantity "1ki": unknown suffix "ki"'],
  ['1K', 'invalid quantity "1K": unknown suffix "K"'],
  ['1e3Ki', 'invalid quantity "1e3Ki": unknown suffix "e3Ki"'],
  ['1Ee3', 'invalid quantity "1Ee3": unknown suffix "Ee3"'],
  ['1m5', 'invalid quantity "1m5": unknown suffix "m5"'],
  ['1,5', 'invalid quantity "1,5": unexpected character "," at position 1'],
  ['0x10', 'invalid quantity "0x10": unknown suffix "x10"'],
  ['1_000', 'invalid quantity "1_000": unexpected character "_" at position 1'],
  ['NaN', 'invalid quantity "NaN": expected a number'],
  ['Infinity', 'invalid quantity "Infinity": expected a number'],
  ['１', 'invalid quantity "１": expected a number'],
  ['1e4294967297', 'invalid quantity "1e4294967297": exponent 4294967297 is outside ±2147483647'],
  ['1e-2147483648', 'invalid quantity "1e-2147483648": exponent -2147483648 is outside ±2147483647'],
];

t.test('malformed quantities are rejected with a QuantityError saying why', async (t) => {
  for (const [input, messageStart] of malformed) {
    try {
      parseQuantity(input);
      t.fail(`${JSON.stringify(input)} parsed unexpectedly`);
    } catch (err) {
      t.ok(err instanceof QuantityError, `${JSON.stringify(input)} throws QuantityError`);
      const e = err as QuantityError;
      t.equal(e.message.slice(0, messageStart.length), messageStart, `${JSON.stringify(input)} message`);
      t.equal(e.input, input);
      t.equal(e.name, 'QuantityError');
    }
  }
});

t.test('unknown suffix message lists what is accepted', async (t) => {
  t.throws(() => parseQuantity('1KiB'), {
    message:
      'invalid quantity "1KiB": unknown suffix "KiB" (expected one of n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent such as e3 or E-6)',
  });
});

t.test('quantityFromNumber is exact from the shortest decimal spelling', async (t) => {
  const cases: ReadonlyArray<readonly [number, string]> = [
    [0, '0'],
    [-0, '0'],
    [1, '1'],
    [1.5, '1500m'],
    [0.1, '100m'],
    [-0.25, '-250m'],
    [2000, '2k'],
    [1500, '1500'],
    [123456789, '123456789'],
    [Number.MAX_SAFE_INTEGER, '9007199254740991'],
    [1e21, '1e21'],
    [1.5e-7, '150n'],
    [1e-10, '1n'],
    [-1e-10, '-1n'],
    [1 / 3, '333333334n'],
    [5e-324, '1n'],
    [1.7976931348623157e308, '179769313486231570e291'],
  ];
  for (const [n, expected] of cases) {
    const q = quantityFromNumber(n);
    t.equal(formatQuantity(q), expected, `${n} -> ${expected}`);
    t.equal(q.format, 'DecimalSI', `${n} is DecimalSI`);
  }
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
    t.throws(() => quantityFromNumber(bad), QuantityError, `${bad} is rejected`);
  }
  t.throws(() => quantityFromNumber(Number.NaN), { message: 'invalid quantity "NaN": only finite numbers can be quantities' });
});

t.test('quantityToNumber gives the nearest double', async (t) => {
  const cases: ReadonlyArray<readonly [string, number]> = [
    ['0', 0],
    ['100m', 0.1],
    ['1500m', 1.5],
    ['1.5Gi', 1610612736],
    ['-3.001n', -4e-9],
    ['1n', 1e-9],
    ['9Ei', 2 ** 63],
    ['12E', 12e18],
    ['1e2147483647', Number.POSITIVE_INFINITY],
    ['-1e400', Number.NEGATIVE_INFINITY],
  ];
  for (const [input, expected] of cases) {
    t.equal(quantityToNumber(parseQuantity(input)), expected, `${input} -> ${expected}`);
  }
  for (const n of [0.1, 1.5, 12345.678, 1e21, -2.5e-3]) {
    t.equal(quantityToNumber(quantityFromNumber(n)), n, `${n} survives number -> quantity -> number`);
  }
});
