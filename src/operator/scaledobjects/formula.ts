// KEDA's scalingModifiers formulas: the subset of the expr language (expr-lang/expr) that a
// formula over trigger values needs, parsed here rather than evaluated by a general-purpose
// library, so that nothing in a ScaledObject can ever run code. Numbers, booleans and nil;
// arithmetic (+ - * / % and ** or ^), comparisons, && || ! (and, or, not), the conditional ?:,
// nil coalescing ??, lists [a, b], and expr's numeric built-ins (abs ceil floor round int float
// min max sum mean median). Every name is a trigger's value. Types are checked when compiled, as
// expr does with KEDA's environment of float64 values, so a formula admitted cannot fail for a
// type at run time; errors say where, as expr does: `message (line:column)`.

export class FormulaError extends Error {
  override readonly name = 'FormulaError';
}

export interface Formula {
  readonly source: string;
  /** The names the formula reads (trigger names). */
  readonly names: ReadonlySet<string>;
  /** The value for these trigger values; throws FormulaError on a result that is not finite. */
  evaluate(values: Readonly<Record<string, number>>): number;
}

type Type = 'number' | 'bool' | 'nil' | 'list';
type Value = number | boolean | null | number[];

interface Token {
  kind: 'number' | 'name' | 'op' | 'end';
  text: string;
  at: number;
}

interface Node {
  type: Type;
  at: number;
  run(env: Readonly<Record<string, number>>): Value;
}

const OPERATORS = ['**', '==', '!=', '<=', '>=', '&&', '||', '??', '+', '-', '*', '/', '%', '^', '<', '>', '!', '?', ':', '(', ')', '[', ']', ','];
const WORD_OPERATORS: Record<string, string> = { and: '&&', or: '||', not: '!' };

function tokenize(source: string, fail: (msg: string, at: number) => never): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const number = /^(?:\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)/.exec(source.slice(i));
    if (number) {
      tokens.push({ kind: 'number', text: number[0], at: i });
      i += number[0].length;
      continue;
    }
    const name = /^[A-Za-z_$][\w$]*/.exec(source.slice(i));
    if (name) {
      const op = WORD_OPERATORS[name[0]];
      tokens.push(op ? { kind: 'op', text: op, at: i } : { kind: 'name', text: name[0], at: i });
      i += name[0].length;
      continue;
    }
    if (c === '{') fail('predicates ({...}) are not supported in formulas', i);
    const op = OPERATORS.find((o) => source.startsWith(o, i));
    if (!op) fail(`unexpected character ${JSON.stringify(c)}`, i);
    tokens.push({ kind: 'op', text: op, at: i });
    i += op.length;
  }
  tokens.push({ kind: 'end', text: '', at: source.length });
  return tokens;
}

const isNumber = (v: Value): v is number => typeof v === 'number';
const num = (v: Value) => v as number;

type Builtin = { check: (args: Node[]) => string | undefined; run: (args: Value[]) => Value };
const unary = (f: (x: number) => number): Builtin => ({
  check: (args) => (args.length === 1 && args[0]!.type === 'number' ? undefined : 'takes one number'),
  run: ([x]) => f(num(x!)),
});
/** min and max: numbers, or one list of numbers. */
const spread = (f: (xs: number[]) => number): Builtin => ({
  check: (args) =>
    (args.length === 1 && args[0]!.type === 'list') || (args.length > 0 && args.every((a) => a.type === 'number')) ? undefined : 'takes numbers, or a list of numbers',
  run: (args) => {
    const xs = args.length === 1 && Array.isArray(args[0]) ? args[0] : (args as number[]);
    if (xs.length === 0) throw new FormulaError('an empty list has no value');
    return f(xs);
  },
});
const ofList = (f: (xs: number[]) => number): Builtin => ({
  check: (args) => (args.length === 1 && args[0]!.type === 'list' ? undefined : 'takes a list of numbers'),
  run: ([xs]) => {
    if ((xs as number[]).length === 0) throw new FormulaError('an empty list has no value');
    return f(xs as number[]);
  },
});
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const BUILTINS: Record<string, Builtin> = {
  abs: unary(Math.abs),
  ceil: unary(Math.ceil),
  floor: unary(Math.floor),
  // expr rounds half away from zero.
  round: unary((x) => Math.sign(x) * Math.round(Math.abs(x))),
  int: unary(Math.trunc),
  float: unary((x) => x),
  min: spread((xs) => Math.min(...xs)),
  max: spread((xs) => Math.max(...xs)),
  sum: ofList((xs) => xs.reduce((a, b) => a + b, 0)),
  mean: ofList((xs) => xs.reduce((a, b) => a + b, 0) / xs.length),
  median: ofList(median),
};

/** Parses and type-checks a formula over the given names; throws FormulaError with the position. */
export function compileFormula(source: string, names: readonly string[]): Formula {
  const where = (at: number) => {
    const before = source.slice(0, at).split('\n');
    return `${before.length}:${before[before.length - 1]!.length + 1}`;
  };
  const fail = (msg: string, at: number): never => {
    throw new FormulaError(`${msg} (${where(at)})`);
  };
  if (source.trim() === '') throw new FormulaError('the formula is empty');
  const known = new Set(names);
  const used = new Set<string>();
  const tokens = tokenize(source, fail);
  let pos = 0;
  const peek = () => tokens[pos]!;
  const next = () => tokens[pos++]!;
  const accept = (text: string) => (peek().kind === 'op' && peek().text === text ? next() : undefined);
  const expect = (text: string, what: string) => accept(text) ?? fail(`expected ${what}, found ${describe(peek())}`, peek().at);
  const want = (n: Node, type: Type, what: string) => {
    if (n.type !== type) fail(`${what} must be a ${type === 'bool' ? 'boolean' : type}, not a ${n.type === 'bool' ? 'boolean' : n.type}`, n.at);
  };

  function conditional(): Node {
    const cond = coalesce();
    const q = accept('?');
    if (!q) return cond;
    want(cond, 'bool', 'the condition of ?:');
    const yes = conditional();
    expect(':', '":" of ?:');
    const no = conditional();
    if (yes.type !== no.type && yes.type !== 'nil' && no.type !== 'nil') fail(`both branches of ?: must have one type (${yes.type} and ${no.type})`, q.at);
    const type = yes.type === 'nil' ? no.type : yes.type;
    return { type, at: cond.at, run: (env) => (cond.run(env) ? yes.run(env) : no.run(env)) };
  }

  function coalesce(): Node {
    let left = binary(0);
    for (let op = accept('??'); op; op = accept('??')) {
      const l = left;
      const right = binary(0);
      left = { type: l.type === 'nil' ? right.type : l.type, at: l.at, run: (env) => l.run(env) ?? right.run(env) };
    }
    return left;
  }

  // Binary operators by precedence, lowest first; each level left-associative.
  const LEVELS: string[][] = [['||'], ['&&'], ['==', '!='], ['<', '>', '<=', '>='], ['+', '-'], ['*', '/', '%']];
  function binary(level: number): Node {
    if (level === LEVELS.length) return prefix();
    let left = binary(level + 1);
    for (;;) {
      const t = peek();
      if (t.kind !== 'op' || !LEVELS[level]!.includes(t.text)) return left;
      next();
      left = combine(t, left, binary(level + 1));
    }
  }

  function combine(op: Token, l: Node, r: Node): Node {
    const at = l.at;
    switch (op.text) {
      case '||':
      case '&&':
        want(l, 'bool', `the left side of ${op.text}`);
        want(r, 'bool', `the right side of ${op.text}`);
        return op.text === '&&' ? { type: 'bool', at, run: (env) => (l.run(env) as boolean) && (r.run(env) as boolean) } : { type: 'bool', at, run: (env) => (l.run(env) as boolean) || (r.run(env) as boolean) };
      case '==':
      case '!=': {
        if (l.type !== r.type && l.type !== 'nil' && r.type !== 'nil') fail(`cannot compare a ${l.type} with a ${r.type}`, op.at);
        const eq = op.text === '==';
        return { type: 'bool', at, run: (env) => (l.run(env) === r.run(env)) === eq };
      }
      default: {
        want(l, 'number', `the left side of ${op.text}`);
        want(r, 'number', `the right side of ${op.text}`);
        const f = ARITHMETIC[op.text]!;
        return { type: ['<', '>', '<=', '>='].includes(op.text) ? 'bool' : 'number', at, run: (env) => f(num(l.run(env)), num(r.run(env))) };
      }
    }
  }

  function prefix(): Node {
    const t = peek();
    if (t.kind === 'op' && (t.text === '-' || t.text === '+' || t.text === '!')) {
      next();
      const operand = prefix();
      if (t.text === '!') {
        want(operand, 'bool', 'the operand of !');
        return { type: 'bool', at: t.at, run: (env) => !operand.run(env) };
      }
      want(operand, 'number', `the operand of unary ${t.text}`);
      return t.text === '-' ? { type: 'number', at: t.at, run: (env) => -num(operand.run(env)) } : { ...operand, at: t.at };
    }
    return power();
  }

  function power(): Node {
    const base = primary();
    const op = accept('**') ?? accept('^');
    if (!op) return base;
    const exponent = prefix(); // right-associative: 2 ** 3 ** 2 is 2 ** 9
    want(base, 'number', `the left side of ${op.text}`);
    want(exponent, 'number', `the right side of ${op.text}`);
    return { type: 'number', at: base.at, run: (env) => num(base.run(env)) ** num(exponent.run(env)) };
  }

  function primary(): Node {
    const t = next();
    if (t.kind === 'number') {
      const v = Number(t.text.replace(/_/g, ''));
      return { type: 'number', at: t.at, run: () => v };
    }
    if (t.kind === 'name') {
      if (t.text === 'true' || t.text === 'false') {
        const v = t.text === 'true';
        return { type: 'bool', at: t.at, run: () => v };
      }
      if (t.text === 'nil') return { type: 'nil', at: t.at, run: () => null };
      if (accept('(')) return call(t);
      if (!known.has(t.text)) fail(`unknown name ${t.text}${names.length ? ` (the named triggers: ${names.join(', ')})` : ' (no trigger has a name)'}`, t.at);
      used.add(t.text);
      const name = t.text;
      return { type: 'number', at: t.at, run: (env) => env[name] ?? Number.NaN };
    }
    if (t.kind === 'op' && t.text === '(') {
      const inner = conditional();
      expect(')', '")"');
      return inner;
    }
    if (t.kind === 'op' && t.text === '[') {
      const items: Node[] = [];
      if (!accept(']')) {
        do items.push(conditional());
        while (accept(','));
        expect(']', '"]" or ","');
      }
      for (const item of items) want(item, 'number', 'a list item');
      return { type: 'list', at: t.at, run: (env) => items.map((i) => num(i.run(env))) };
    }
    return fail(`unexpected ${describe(t)}`, t.at);
  }

  function call(fn: Token): Node {
    const args: Node[] = [];
    if (!accept(')')) {
      do args.push(conditional());
      while (accept(','));
      expect(')', '")" or ","');
    }
    const builtin = BUILTINS[fn.text];
    if (!builtin) return fail(`unknown function ${fn.text}() (available: ${Object.keys(BUILTINS).join(', ')})`, fn.at);
    const problem = builtin.check(args);
    if (problem) fail(`${fn.text}() ${problem}`, fn.at);
    return { type: 'number', at: fn.at, run: (env) => builtin.run(args.map((a) => a.run(env))) };
  }

  const root = conditional();
  if (peek().kind !== 'end') fail(`unexpected ${describe(peek())}`, peek().at);
  if (root.type !== 'number') fail(`the formula must give a number, not a ${root.type === 'bool' ? 'boolean' : root.type}`, root.at);
  return {
    source,
    names: used,
    evaluate(values) {
      const v = root.run(values);
      if (!isNumber(v) || !Number.isFinite(v)) throw new FormulaError(`the formula gave ${String(v)} for ${Object.entries(values).map(([k, x]) => `${k}=${x}`).join(', ')}`);
      return v;
    },
  };
}

const ARITHMETIC: Record<string, (a: number, b: number) => number | boolean> = {
  '+': (a, b) => a + b,
  '-': (a, b) => a - b,
  '*': (a, b) => a * b,
  '/': (a, b) => a / b,
  '%': (a, b) => a % b,
  '<': (a, b) => a < b,
  '>': (a, b) => a > b,
  '<=': (a, b) => a <= b,
  '>=': (a, b) => a >= b,
};

function describe(t: Token): string {
  return t.kind === 'end' ? 'the end of the formula' : JSON.stringify(t.text);
}
