import t from 'tap';
import {
  DEFAULT_MAX_SELECTOR_LENGTH,
  SelectorError,
  formatSelector,
  getEquality,
  matchesSelector,
  parseSelector,
  validateLabelKey,
  validateLabelValue,
} from '../../src/k8s/labels.js';
import type { LabelSelector, Requirement } from '../../src/k8s/labels.js';

function parseError(input: string, options?: { maxLength?: number }): SelectorError {
  try {
    parseSelector(input, options);
  } catch (err) {
    if (err instanceof SelectorError) return err;
    throw err;
  }
  throw new Error(`${JSON.stringify(input)} parsed unexpectedly`);
}

t.test('parses every operator into requirements', async (t) => {
  const cases: ReadonlyArray<readonly [string, Requirement[]]> = [
    ['a=b', [{ key: 'a', operator: '=', values: ['b'] }]],
    ['a==b', [{ key: 'a', operator: '==', values: ['b'] }]],
    ['a!=b', [{ key: 'a', operator: '!=', values: ['b'] }]],
    ['a in (c,b)', [{ key: 'a', operator: 'in', values: ['b', 'c'] }]],
    ['a notin (c,b,b)', [{ key: 'a', operator: 'notin', values: ['b', 'c'] }]],
    ['a', [{ key: 'a', operator: 'exists', values: [] }]],
    ['!a', [{ key: 'a', operator: '!', values: [] }]],
    ['a>5', [{ key: 'a', operator: 'gt', values: ['5'] }]],
    ['a<5', [{ key: 'a', operator: 'lt', values: ['5'] }]],
    ['a=', [{ key: 'a', operator: '=', values: [''] }]],
    ['a!=', [{ key: 'a', operator: '!=', values: [''] }]],
    // Kubernetes reads an empty set, and empty list entries, as the empty value
    ['a in ()', [{ key: 'a', operator: 'in', values: [''] }]],
    ['a in (,b)', [{ key: 'a', operator: 'in', values: ['', 'b'] }]],
    ['a notin (b,,c)', [{ key: 'a', operator: 'notin', values: ['', 'b', 'c'] }]],
    ['a in (b,)', [{ key: 'a', operator: 'in', values: ['', 'b'] }]],
    // "in" and "notin" are words wherever a key or value is expected
    ['in=notin', [{ key: 'in', operator: '=', values: ['notin'] }]],
    ['notin in (in,notin)', [{ key: 'notin', operator: 'in', values: ['in', 'notin'] }]],
    ['example.com/name=v', [{ key: 'example.com/name', operator: '=', values: ['v'] }]],
    ['! a', [{ key: 'a', operator: '!', values: [] }]],
    ['a>0099', [{ key: 'a', operator: 'gt', values: ['0099'] }]],
    [
      'z=1,a=2,m',
      [
        { key: 'a', operator: '=', values: ['2'] },
        { key: 'm', operator: 'exists', values: [] },
        { key: 'z', operator: '=', values: ['1'] },
      ],
    ],
    [
      'k!=w,j,k=v',
      [
        { key: 'j', operator: 'exists', values: [] },
        { key: 'k', operator: '!=', values: ['w'] },
        { key: 'k', operator: '=', values: ['v'] },
      ],
    ],
  ];
  for (const [input, requirements] of cases) {
    t.same(parseSelector(input), { requirements }, input);
  }
});

t.test('empty and blank selectors select everything', async (t) => {
  for (const input of ['', ' ', '\t\r\n ']) {
    const sel = parseSelector(input);
    t.same(sel, { requirements: [] }, JSON.stringify(input));
    t.equal(formatSelector(sel), '');
    t.equal(matchesSelector(sel, null), true);
    t.equal(matchesSelector(sel, { any: 'thing' }), true);
  }
});

t.test('formats the Kubernetes canonical string', async (t) => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ['a=b', 'a=b'],
    ['a==b', 'a=b'],
    ['a!=b', 'a!=b'],
    ['a in (c,b)', 'a in (b,c)'],
    ['a notin (c,b)', 'a notin (b,c)'],
    ['a', 'a'],
    ['!a', '!a'],
    ['a>5', 'a>5'],
    ['a<5', 'a<5'],
    ['a=', 'a='],
    ['a in ()', 'a in ()'],
    ['x in (foo,,baz),y,z notin ()', 'x in (,baz,foo),y,z notin ()'],
    ['z=1,a=2,m', 'a=2,m,z=1'],
    ['  a = b ,  c in ( x , y ) , ! d  ', 'a=b,c in (x,y),!d'],
    ['a\t=\tb,\nc\r\n', 'a=b,c'],
    ['app.kubernetes.io/name in (keda),env notin (dev)', 'app.kubernetes.io/name in (keda),env notin (dev)'],
    ['B=1,a=2,0x', '0x,B=1,a=2'],
  ];
  for (const [input, expected] of cases) {
    const formatted = formatSelector(parseSelector(input));
    t.equal(formatted, expected, `${JSON.stringify(input)} -> ${expected}`);
    t.equal(formatSelector(parseSelector(formatted)), formatted, `${expected} is a fixed point`);
  }
});

t.test('formatSelector sorts hand-built selectors', async (t) => {
  const sel: LabelSelector = {
    requirements: [
      { key: 'z', operator: 'in', values: ['b', 'a', 'b'] },
      { key: 'a', operator: '==', values: ['x'] },
      { key: 'm', operator: 'lt', values: ['7'] },
    ],
  };
  t.equal(formatSelector(sel), 'a=x,m<7,z in (a,b)');
  t.same(sel.requirements[0]?.values, ['b', 'a', 'b'], 'input is not mutated');
});

t.test('keys: qualified names with an optional DNS subdomain prefix', async (t) => {
  const longPrefix = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`;
  t.equal(longPrefix.length, 253);
  const name63 = 'n'.repeat(63);
  t.same(parseSelector(`${longPrefix}/${name63}=v`).requirements[0]?.key, `${longPrefix}/${name63}`);
  t.equal(validateLabelKey('A_b.C-9'), undefined);
  t.equal(validateLabelKey('scaledobject.keda.sh/name'), undefined);
  t.equal(validateLabelKey(`${longPrefix}e/x`), 'prefix part must be no more than 253 characters');
  t.equal(validateLabelKey('n'.repeat(64)), 'name part must be no more than 63 characters');
  t.equal(validateLabelKey('/a'), 'prefix part must be non-empty');
  t.equal(validateLabelKey('a/'), 'name part must be non-empty');
  t.match(validateLabelKey('Example.com/a'), /^prefix part a lowercase RFC 1123 subdomain must consist of/);
  t.match(validateLabelKey('a..b/c'), /^prefix part a lowercase RFC 1123 subdomain/);
  t.match(validateLabelKey('a-.b/c'), /^prefix part a lowercase RFC 1123 subdomain/);
  t.match(validateLabelKey('-a'), /^name part must consist of alphanumeric characters/);
  t.match(validateLabelKey('a_'), /^name part must consist of alphanumeric characters/);
  t.match(validateLabelKey('a/b/c'), /^a qualified name must consist of .* with an optional DNS subdomain prefix and '\/'/);
});

t.test('values: at most 63 characters of the label charset, or empty', async (t) => {
  t.equal(validateLabelValue(''), undefined);
  t.equal(validateLabelValue('v'.repeat(63)), undefined);
  t.equal(validateLabelValue('a-b_c.D9'), undefined);
  t.equal(validateLabelValue('v'.repeat(64)), 'must be no more than 63 characters');
  t.match(validateLabelValue('-v'), /^a valid label must be an empty string or consist of/);
  t.match(validateLabelValue('a/b'), /^a valid label must be an empty string/);
});

const rejected: ReadonlyArray<readonly [string, string]> = [
  // structure
  ['a=b,', "found '', expected: identifier after ','"],
  ['a,,b', "found ',', expected: identifier after ','"],
  [',', "found ',', expected: !, identifier, or 'end of string'"],
  ['=b', "found '=', expected: !, identifier, or 'end of string'"],
  ['a=b=c', "found '=', expected: ',' or 'end of string'"],
  ['a=b c', "found 'c', expected: ',' or 'end of string'"],
  ['a=b \u001b[2J', "found '\\u001b[2J', expected: ',' or 'end of string'"],
  ['!a=b', "found '=', expected: ',' or 'end of string'"],
  ['a!==b', "unable to parse requirement: found '=', expected: identifier"],
  ['a<=5', "unable to parse requirement: found '=', expected: identifier"],
  ['!', "unable to parse requirement: found '', expected: identifier"],
  ['!!a', "unable to parse requirement: found '!', expected: identifier"],
  ['a b', "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"],
  ['a=(b)', "unable to parse requirement: found '(', expected: identifier"],
  // parentheses
  ['a in (b', "unable to parse requirement: found '', expected: ',' or ')'"],
  ['a in b)', "unable to parse requirement: found 'b', expected: '('"],
  ['a in', "unable to parse requirement: found '', expected: '('"],
  ['a in ((b))', "unable to parse requirement: found '(', expected: ',', ')' or identifier"],
  ['a in (b c)', "unable to parse requirement: found 'c', expected: ',' or ')'"],
  ['a in (b,(c)', "unable to parse requirement: found '(', expected: ',', or identifier"],
  ['a notin (b))', "found ')', expected: ',' or 'end of string'"],
  // injection attempts
  ['a=b)(c', "found ')', expected: ',' or 'end of string'"],
  ['a=b),c in (d', "found ')', expected: ',' or 'end of string'"],
  ['a in (b),(c=d)', "found '(', expected: identifier after ','"],
  // keys
  ['a$=b', 'unable to parse requirement: invalid label key "a$": name part must consist of alphanumeric characters'],
  ['-a=b', 'unable to parse requirement: invalid label key "-a": name part must consist of alphanumeric characters'],
  ['a/b/c=d', 'unable to parse requirement: invalid label key "a/b/c": a qualified name must consist of'],
  ['/a=b', 'unable to parse requirement: invalid label key "/a": prefix part must be non-empty'],
  [`${'k'.repeat(64)}=v`, `unable to parse requirement: invalid label key "${'k'.repeat(64)}": name part must be no more than 63 characters`],
  ['"a"=b', 'unable to parse requirement: invalid label key "\\"a\\"": name part must consist of'],
  ['ключ=b', 'unable to parse requirement: invalid label key "ключ": name part must consist of'],
  // values
  [`a=${'v'.repeat(64)}`, `unable to parse requirement: invalid label value "${'v'.repeat(64)}" for key "a": must be no more than 63 characters`],
  ['a=b%c', 'unable to parse requirement: invalid label value "b%c" for key "a": a valid label must be an empty string or consist of'],
  ['a=b/c', 'unable to parse requirement: invalid label value "b/c" for key "a": a valid label must be an empty string'],
  ['a="b"', 'unable to parse requirement: invalid label value "\\"b\\"" for key "a": a valid label must be'],
  ["a='b'", 'unable to parse requirement: invalid label value "\'b\'" for key "a": a valid label must be'],
  ['a in (ok,b;c)', 'unable to parse requirement: invalid label value "b;c" for key "a": a valid label must be'],
  ['a=b\u0000', 'unable to parse requirement: invalid label value "b\\u0000" for key "a": a valid label must be'],
  // gt / lt
  ['a>b', `unable to parse requirement: invalid value "b": for 'gt', 'lt' operators, the value must be an integer`],
  ['a>', `unable to parse requirement: invalid value "": for 'gt', 'lt' operators, the value must be an integer`],
  ['a<1.5', `unable to parse requirement: invalid value "1.5": for 'gt', 'lt' operators, the value must be an integer`],
  ['a>99999999999999999999', `unable to parse requirement: invalid value "99999999999999999999": for 'gt', 'lt' operators`],
  ['a>-1', 'unable to parse requirement: invalid label value "-1" for key "a": a valid label must be'],
];

t.test('rejects malformed selectors with Kubernetes-style messages', async (t) => {
  for (const [input, messageStart] of rejected) {
    const err = parseError(input);
    t.equal(err.name, 'SelectorError');
    t.equal(err.message.slice(0, messageStart.length), messageStart, JSON.stringify(input));
  }
});

t.test('enforces a maximum length before parsing', async (t) => {
  t.equal(DEFAULT_MAX_SELECTOR_LENGTH, 4096);
  const atLimit = `a=${'b'.repeat(61)},`.repeat(64).slice(0, -1);
  t.ok(atLimit.length <= 4096);
  t.equal(parseSelector(atLimit).requirements.length, 64);
  const tooLong = 'a'.repeat(4097);
  t.equal(parseError(tooLong).message, 'selector is too long: 4097 characters, at most 4096 allowed');
  t.equal(parseError('a=b,c=d', { maxLength: 5 }).message, 'selector is too long: 7 characters, at most 5 allowed');
  t.same(parseSelector('a=b', { maxLength: 3 }).requirements, [{ key: 'a', operator: '=', values: ['b'] }]);
  t.throws(() => parseSelector('a', { maxLength: -1 }), RangeError);
  t.throws(() => parseSelector('a', { maxLength: Number.NaN }), RangeError);
});

t.test('parsing is linear on adversarial input', async (t) => {
  const maxLength = 2_000_000;
  const inputs = [
    `a in (${'b,'.repeat(400_000)}c)`,
    '('.repeat(1_000_000),
    `${'a=b,'.repeat(200_000)}a=b`,
    `a=${'x'.repeat(1_000_000)}`,
    ' '.repeat(1_000_000),
  ];
  for (const input of inputs) {
    const started = performance.now();
    try {
      parseSelector(input, { maxLength });
    } catch (err) {
      if (!(err instanceof SelectorError)) throw err;
    }
    const elapsed = performance.now() - started;
    t.ok(elapsed < 3000, `${input.slice(0, 12)}... (${input.length} chars) took ${elapsed.toFixed(0)}ms`);
  }
});

t.test('matches with Kubernetes semantics', async (t) => {
  const cases: ReadonlyArray<readonly [string, Record<string, string> | null, boolean]> = [
    ['a=b', { a: 'b' }, true],
    ['a=b', { a: 'c' }, false],
    ['a=b', {}, false],
    ['a=b', null, false],
    ['a==b', { a: 'b', x: 'y' }, true],
    ['a=', { a: '' }, true],
    ['a=', {}, false],
    ['a!=b', {}, true],
    ['a!=b', null, true],
    ['a!=b', { a: 'b' }, false],
    ['a!=b', { a: 'c' }, true],
    ['a in (b,c)', { a: 'c' }, true],
    ['a in (b,c)', { a: 'd' }, false],
    ['a in (b,c)', {}, false],
    ['a notin (b,c)', {}, true],
    ['a notin (b,c)', { a: 'b' }, false],
    ['a notin (b,c)', { a: 'd' }, true],
    ['a', { a: '' }, true],
    ['a', { b: 'a' }, false],
    ['!a', { a: '' }, false],
    ['!a', null, true],
    ['a>5', { a: '6' }, true],
    ['a>5', { a: '5' }, false],
    ['a>5', { a: 'x' }, false],
    ['a>5', {}, false],
    ['a<5', { a: '-1' }, true],
    ['a<5', { a: '+4' }, true],
    ['a<5', { a: '4.5' }, false],
    ['a>9223372036854775806', { a: '9223372036854775807' }, true],
    ['a<5', { a: '-9223372036854775809' }, false],
    ['a=b,c!=d,e', { a: 'b', c: 'x', e: '' }, true],
    ['a=b,c!=d,e', { a: 'b', c: 'd', e: '' }, false],
    ['a=b,c!=d,e', { a: 'b' }, false],
    // own properties only
    ['constructor', {}, false],
    ['!toString', {}, true],
    ['hasOwnProperty!=x', {}, true],
  ];
  for (const [selector, labels, expected] of cases) {
    t.equal(matchesSelector(parseSelector(selector), labels), expected, `${selector} on ${JSON.stringify(labels)}`);
  }
});

t.test('getEquality finds a key pinned to one value', async (t) => {
  const key = 'scaledobject.keda.sh/name';
  const cases: ReadonlyArray<readonly [string, string | undefined]> = [
    [`${key}=my-so,other=x`, 'my-so'],
    [`${key}==my-so`, 'my-so'],
    [`${key} in (my-so)`, 'my-so'],
    [`${key}=`, ''],
    [`${key} in (a,b)`, undefined],
    [`${key}!=my-so`, undefined],
    [`${key} notin (my-so)`, undefined],
    [key, undefined],
    [`!${key}`, undefined],
    ['other=x', undefined],
    ['', undefined],
  ];
  for (const [selector, expected] of cases) {
    t.equal(getEquality(parseSelector(selector), key), expected, selector);
  }
  const handBuilt: LabelSelector = {
    requirements: [
      { key: 'k', operator: 'exists', values: [] },
      { key: 'k', operator: '=', values: ['v'] },
    ],
  };
  t.equal(getEquality(handBuilt, 'k'), undefined, 'only the first requirement on the key counts');
});
