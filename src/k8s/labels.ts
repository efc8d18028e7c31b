// Kubernetes label selectors (k8s.io/apimachinery/pkg/labels): the string
// syntax the API server forwards to external-metrics adapters, e.g.
// "scaledobject.keda.sh/name=my-app,env in (prod,staging)".
// The lexer and parser follow labels.Parse token for token, so a selector is
// accepted, rejected and normalized exactly as Kubernetes would. They are
// hand-written single passes (no regular expressions on user input) so the
// cost stays linear in the input length.

/** Kubernetes' selection.Operator spellings. */
export type SelectorOperator = 'in' | 'notin' | '=' | '==' | '!=' | 'exists' | '!' | 'gt' | 'lt';

export interface Requirement {
  key: string;
  operator: SelectorOperator;
  values: string[];
}

/** All requirements must match (logical AND). No requirements selects everything. */
export interface LabelSelector {
  requirements: Requirement[];
}

export interface ParseSelectorOptions {
  /** Longest selector accepted, in UTF-16 code units. */
  maxLength?: number;
}

export const DEFAULT_MAX_SELECTOR_LENGTH = 4096;

export class SelectorError extends Error {
  override name = 'SelectorError';
}

const MAX_NAME_LENGTH = 63;
const MAX_PREFIX_LENGTH = 253;
const MAX_LABEL_VALUE_LENGTH = 63;
const MIN_INT64 = -(1n << 63n);
const MAX_INT64 = (1n << 63n) - 1n;

const NAME_CHARSET_PROBLEM =
  "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const SUBDOMAIN_PROBLEM =
  "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const VALUE_CHARSET_PROBLEM = `a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`;

// ---------------------------------------------------------------------------
// Validation (k8s.io/apimachinery/pkg/util/validation), without regexes.

function isAsciiAlnum(code: number): boolean {
  return (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122);
}

function isLowerAlnum(code: number): boolean {
  return (code >= 48 && code <= 57) || (code >= 97 && code <= 122);
}

/** `[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`: label names and non-empty label values. */
function isNameToken(s: string): boolean {
  if (s.length === 0 || !isAsciiAlnum(s.charCodeAt(0)) || !isAsciiAlnum(s.charCodeAt(s.length - 1))) return false;
  for (let i = 1; i < s.length - 1; i++) {
    const code = s.charCodeAt(i);
    if (!isAsciiAlnum(code) && code !== 45 && code !== 95 && code !== 46) return false;
  }
  return true;
}

/** Dot-separated labels of `[a-z0-9]([-a-z0-9]*[a-z0-9])?`. */
function isDns1123Subdomain(s: string): boolean {
  let labelStart = 0;
  for (let i = 0; i <= s.length; i++) {
    if (i < s.length && s.charCodeAt(i) !== 46) {
      const code = s.charCodeAt(i);
      if (!isLowerAlnum(code) && code !== 45) return false;
      continue;
    }
    if (i === labelStart || !isLowerAlnum(s.charCodeAt(labelStart)) || !isLowerAlnum(s.charCodeAt(i - 1))) {
      return false;
    }
    labelStart = i + 1;
  }
  return true;
}

function prefixProblems(prefix: string): string[] {
  if (prefix.length === 0) return ['prefix part must be non-empty'];
  const problems: string[] = [];
  if (prefix.length > MAX_PREFIX_LENGTH) problems.push(`prefix part must be no more than ${MAX_PREFIX_LENGTH} characters`);
  if (!isDns1123Subdomain(prefix)) problems.push(`prefix part ${SUBDOMAIN_PROBLEM}`);
  return problems;
}

function nameProblems(name: string): string[] {
  if (name.length === 0) return ['name part must be non-empty'];
  const problems: string[] = [];
  if (name.length > MAX_NAME_LENGTH) problems.push(`name part must be no more than ${MAX_NAME_LENGTH} characters`);
  if (!isNameToken(name)) problems.push(`name part ${NAME_CHARSET_PROBLEM}`);
  return problems;
}

/**
 * Why `key` is not a valid label key (a Kubernetes qualified name: optional
 * DNS-1123 subdomain prefix and '/', then a name of at most 63 characters),
 * or undefined when it is valid.
 */
export function validateLabelKey(key: string): string | undefined {
  const slash = key.indexOf('/');
  if (slash !== -1 && key.indexOf('/', slash + 1) !== -1) {
    return `a qualified name ${NAME_CHARSET_PROBLEM} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')`;
  }
  const problems =
    slash === -1
      ? nameProblems(key)
      : [...prefixProblems(key.slice(0, slash)), ...nameProblems(key.slice(slash + 1))];
  return problems.length === 0 ? undefined : problems.join('; ');
}

/** Why `value` is not a valid label value, or undefined when it is valid (the empty string is). */
export function validateLabelValue(value: string): string | undefined {
  const problems: string[] = [];
  if (value.length > MAX_LABEL_VALUE_LENGTH) problems.push(`must be no more than ${MAX_LABEL_VALUE_LENGTH} characters`);
  if (value.length > 0 && !isNameToken(value)) problems.push(VALUE_CHARSET_PROBLEM);
  return problems.length === 0 ? undefined : problems.join('; ');
}

/** strconv.ParseInt(s, 10, 64): optional sign, decimal digits, int64 range. */
function parseInt64(s: string): bigint | undefined {
  const start = s[0] === '+' || s[0] === '-' ? 1 : 0;
  if (start === s.length) return undefined;
  for (let i = start; i < s.length; i++) {
    const code = s.charCodeAt(i);
    if (code < 48 || code > 57) return undefined;
  }
  const n = BigInt(s);
  return n < MIN_INT64 || n > MAX_INT64 ? undefined : n;
}

// ---------------------------------------------------------------------------
// Lexer.

type TokenKind = 'end' | 'identifier' | 'in' | 'notin' | '(' | ')' | ',' | '!' | '=' | '==' | '!=' | '>' | '<';

interface Token {
  readonly kind: TokenKind;
  readonly literal: string;
}

function isWhitespace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n';
}

function isSpecialSymbol(ch: string): boolean {
  return ch === '=' || ch === '!' || ch === '(' || ch === ')' || ch === ',' || ch === '>' || ch === '<';
}

function scanSymbol(s: string, pos: number): Token {
  const ch = s.charAt(pos);
  // "==" and "!=" are the only two-character operators; Kubernetes takes the
  // longest match, so "a!==b" lexes as "a", "!=", "=", "b".
  if ((ch === '=' || ch === '!') && s[pos + 1] === '=') {
    const literal = `${ch}=`;
    return { kind: literal as TokenKind, literal };
  }
  return { kind: ch as TokenKind, literal: ch };
}

function scanWord(s: string, pos: number): Token {
  let end = pos;
  while (end < s.length && !isSpecialSymbol(s.charAt(end)) && !isWhitespace(s.charAt(end))) end++;
  const literal = s.slice(pos, end);
  if (literal === 'in' || literal === 'notin') return { kind: literal, literal };
  return { kind: 'identifier', literal };
}

function lex(s: string): Token[] {
  const tokens: Token[] = [];
  let pos = 0;
  for (;;) {
    while (pos < s.length && isWhitespace(s.charAt(pos))) pos++;
    if (pos >= s.length) {
      tokens.push({ kind: 'end', literal: '' });
      return tokens;
    }
    const token = isSpecialSymbol(s.charAt(pos)) ? scanSymbol(s, pos) : scanWord(s, pos);
    tokens.push(token);
    pos += token.literal.length;
  }
}

// ---------------------------------------------------------------------------
// Parser (recursive descent over the token list, as labels.Parser).

// "in" and "notin" are operators only right after a key; anywhere a key or
// value is expected they are ordinary words ("in=notin" is a valid selector).
type Context = 'operator' | 'values';

class Parser {
  private position = 0;

  constructor(private readonly tokens: readonly Token[]) {}

  peek(context: Context): Token {
    return this.contextual(this.tokens[Math.min(this.position, this.tokens.length - 1)], context);
  }

  next(context: Context): Token {
    const token = this.peek(context);
    if (this.position < this.tokens.length - 1) this.position++;
    return token;
  }

  private contextual(token: Token | undefined, context: Context): Token {
    const t = token ?? { kind: 'end', literal: '' };
    if (context === 'values' && (t.kind === 'in' || t.kind === 'notin')) return { kind: 'identifier', literal: t.literal };
    return t;
  }
}

// Literals are echoed into messages that end up in logs; control characters
// (the lexer only splits on space, tab, CR and LF) are escaped.
function found(token: Token): string {
  // eslint-disable-next-line no-control-regex
  const printable = token.literal.replace(/[\u0000-\u001f\u007f]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `found '${printable}'`;
}

function fail(message: string): never {
  throw new SelectorError(message);
}

function failRequirement(message: string): never {
  throw new SelectorError(`unable to parse requirement: ${message}`);
}

const BINARY_OPERATORS: ReadonlyMap<TokenKind, SelectorOperator> = new Map([
  ['in', 'in'],
  ['notin', 'notin'],
  ['=', '='],
  ['==', '=='],
  ['!=', '!='],
  ['>', 'gt'],
  ['<', 'lt'],
]);

function parseKey(p: Parser): { key: string; negated: boolean } {
  let token = p.next('values');
  const negated = token.kind === '!';
  if (negated) token = p.next('values');
  if (token.kind !== 'identifier') failRequirement(`${found(token)}, expected: identifier`);
  const problem = validateLabelKey(token.literal);
  if (problem !== undefined) failRequirement(`invalid label key ${JSON.stringify(token.literal)}: ${problem}`);
  return { key: token.literal, negated };
}

function parseOperator(p: Parser): SelectorOperator {
  const token = p.next('operator');
  const operator = BINARY_OPERATORS.get(token.kind);
  if (operator === undefined) failRequirement(`${found(token)}, expected: in, notin, =, ==, !=, gt, lt`);
  return operator;
}

/** The comma-separated list inside "( ... )"; empty entries are the empty value, as in Kubernetes. */
function parseValueList(p: Parser): Set<string> {
  const values = new Set<string>();
  for (;;) {
    const token = p.next('values');
    if (token.kind === 'identifier') {
      values.add(token.literal);
      const after = p.peek('values');
      if (after.kind === ')') return values;
      if (after.kind !== ',') failRequirement(`${found(after)}, expected: ',' or ')'`);
      continue;
    }
    if (token.kind !== ',') failRequirement(`${found(token)}, expected: ',', or identifier`);
    const after = p.peek('values');
    if (values.size === 0 || after.kind === ')' || after.kind === ',') values.add('');
    if (after.kind === ')') return values;
  }
}

function parseSetValues(p: Parser): Set<string> {
  const open = p.next('values');
  if (open.kind !== '(') failRequirement(`${found(open)}, expected: '('`);
  const first = p.peek('values');
  if (first.kind === ')') {
    // Kubernetes reads "k in ()" as the single empty value, and prints that
    // requirement back as "k in ()".
    p.next('values');
    return new Set(['']);
  }
  if (first.kind !== 'identifier' && first.kind !== ',') {
    failRequirement(`${found(first)}, expected: ',', ')' or identifier`);
  }
  const values = parseValueList(p);
  p.next('values');
  return values;
}

function parseExactValue(p: Parser): Set<string> {
  const ahead = p.peek('values');
  if (ahead.kind === 'end' || ahead.kind === ',') return new Set(['']);
  const token = p.next('values');
  if (token.kind !== 'identifier') failRequirement(`${found(token)}, expected: identifier`);
  return new Set([token.literal]);
}

function validateValues(key: string, operator: SelectorOperator, values: readonly string[]): void {
  const problems: string[] = [];
  if (operator === 'gt' || operator === 'lt') {
    for (const value of values) {
      if (parseInt64(value) === undefined) {
        problems.push(`invalid value ${JSON.stringify(value)}: for 'gt', 'lt' operators, the value must be an integer`);
      }
    }
  }
  for (const value of values) {
    const problem = validateLabelValue(value);
    if (problem !== undefined) {
      problems.push(`invalid label value ${JSON.stringify(value)} for key ${JSON.stringify(key)}: ${problem}`);
    }
  }
  if (problems.length > 0) failRequirement(problems.join('; '));
}

function compareStrings(a: string, b: string): number {
  // Code-unit order, like Go's byte order for the ASCII that validation allows.
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedValues(values: Iterable<string>): string[] {
  return [...new Set(values)].sort(compareStrings);
}

function parseRequirement(p: Parser): Requirement {
  const { key, negated } = parseKey(p);
  const ahead = p.peek('values').kind;
  if (negated || ahead === 'end' || ahead === ',') {
    // "!k=v" is not a thing: the requirement ends after "!k" and the caller
    // reports whatever follows.
    return { key, operator: negated ? '!' : 'exists', values: [] };
  }
  const operator = parseOperator(p);
  const values = sortedValues(operator === 'in' || operator === 'notin' ? parseSetValues(p) : parseExactValue(p));
  validateValues(key, operator, values);
  return { key, operator, values };
}

function parseRequirements(p: Parser): Requirement[] {
  const requirements: Requirement[] = [];
  for (;;) {
    const ahead = p.peek('values');
    if (ahead.kind === 'end') return requirements;
    if (ahead.kind !== 'identifier' && ahead.kind !== '!') {
      fail(`${found(ahead)}, expected: !, identifier, or 'end of string'`);
    }
    requirements.push(parseRequirement(p));
    const separator = p.next('values');
    if (separator.kind === 'end') return requirements;
    if (separator.kind !== ',') fail(`${found(separator)}, expected: ',' or 'end of string'`);
    const following = p.peek('values');
    if (following.kind !== 'identifier' && following.kind !== '!') {
      fail(`${found(following)}, expected: identifier after ','`);
    }
  }
}

function sortByKey(requirements: readonly Requirement[]): Requirement[] {
  // Array#sort is stable, so requirements on the same key keep their order.
  return [...requirements].sort((a, b) => compareStrings(a.key, b.key));
}

/**
 * Parses a label selector string. Requirements come back sorted by key and
 * set values sorted and de-duplicated, as labels.Parse returns them.
 * The empty (or all-whitespace) string selects everything.
 */
export function parseSelector(s: string, options: ParseSelectorOptions = {}): LabelSelector {
  const maxLength = options.maxLength ?? DEFAULT_MAX_SELECTOR_LENGTH;
  if (!Number.isSafeInteger(maxLength) || maxLength < 0) {
    throw new RangeError(`maxLength must be a non-negative integer, got ${maxLength}`);
  }
  // Checked before lexing so an oversized selector costs nothing to refuse.
  if (s.length > maxLength) fail(`selector is too long: ${s.length} characters, at most ${maxLength} allowed`);
  return { requirements: sortByKey(parseRequirements(new Parser(lex(s)))) };
}

function formatRequirement(r: Requirement): string {
  const values = sortedValues(r.values).join(',');
  switch (r.operator) {
    case 'exists':
      return r.key;
    case '!':
      return `!${r.key}`;
    case 'in':
    case 'notin':
      return `${r.key} ${r.operator} (${values})`;
    case '=':
    case '==':
      // Both spellings mean the same; one canonical form lets selectors be compared as strings.
      return `${r.key}=${values}`;
    case '!=':
      return `${r.key}!=${values}`;
    case 'gt':
      return `${r.key}>${values}`;
    case 'lt':
      return `${r.key}<${values}`;
  }
}

/** The canonical selector string: requirements sorted by key, set values sorted, "==" written "=". */
export function formatSelector(sel: LabelSelector): string {
  return sortByKey(sel.requirements).map(formatRequirement).join(',');
}

function compareInteger(r: Requirement, actual: string): boolean {
  const have = parseInt64(actual);
  const want = r.values.length === 1 && r.values[0] !== undefined ? parseInt64(r.values[0]) : undefined;
  if (have === undefined || want === undefined) return false;
  return r.operator === 'gt' ? have > want : have < want;
}

function matchesRequirement(r: Requirement, labels: Readonly<Record<string, string>> | null): boolean {
  // Own properties only: "constructor" is a valid label key and must not be
  // found on Object.prototype.
  const actual = labels !== null && Object.hasOwn(labels, r.key) ? labels[r.key] : undefined;
  switch (r.operator) {
    case 'in':
    case '=':
    case '==':
      return actual !== undefined && r.values.includes(actual);
    case 'notin':
    case '!=':
      return actual === undefined || !r.values.includes(actual);
    case 'exists':
      return actual !== undefined;
    case '!':
      return actual === undefined;
    case 'gt':
    case 'lt':
      return actual !== undefined && compareInteger(r, actual);
  }
}

/**
 * Kubernetes matching: every requirement must hold. "!=" and "notin" hold when
 * the key is absent; "gt"/"lt" need the label to be an int64. null means no labels.
 */
export function matchesSelector(sel: LabelSelector, labels: Readonly<Record<string, string>> | null): boolean {
  return sel.requirements.every((r) => matchesRequirement(r, labels));
}

/**
 * The value the selector pins `key` to ("k=v", "k==v" or "k in (v)"), as
 * Selector.RequiresExactMatch: only the first requirement on `key` counts.
 */
export function getEquality(sel: LabelSelector, key: string): string | undefined {
  const r = sel.requirements.find((candidate) => candidate.key === key);
  if (r === undefined || r.values.length !== 1) return undefined;
  return r.operator === '=' || r.operator === '==' || r.operator === 'in' ? r.values[0] : undefined;
}
