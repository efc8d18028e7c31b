// What a scaler reads, declared once: for each parameter its name, where it may come from (the
// trigger's metadata, its authentication's parameters, the workload's environment, in which
// order), its type, default,
// whether it is required (always, or while another parameter has some value), whether it is a
// secret or deprecated, and what it is for. The scalers read their values through
// readParameters (so every type is checked, and every message worded, one way), the admission
// webhook's validate-only builds get the same checks, and the README's parameter tables are
// generated from the same declarations (scripts/scaler-docs.mjs; a test keeps them in sync).
//
// Values are read as KEDA (Go) reads them: a blank value is not given, numbers are Go's
// ParseFloat without NaN/Inf/hex, booleans are Go's ParseBool. The third source, `env`, is KEDA's
// "resolved environment": metadata `<name>FromEnv` names a variable of the workload's container,
// whose value is read (see src/operator/scaledobjects/resolve-env.ts).
import type { ScalerContext } from './scaler.js';
import { configError, nonEmpty, parseBool, parseKedaDuration, parseNumber, truncate } from './upstream.js';

export type ParamType = 'string' | 'number' | 'bool' | 'milliseconds' | 'duration' | 'enum' | 'list' | 'map' | 'url';

/** Where a value is looked for, in order (KEDA's order for the parameter); the first non-blank one wins. */
export type ParamSource =
  | 'metadata'
  | 'auth'
  | 'metadata, then auth'
  | 'auth, then metadata'
  | 'auth, then env'
  | 'metadata, then auth, then env'
  | 'metadata, then env, then auth';

type Source = 'metadata' | 'auth' | 'env';
const sourcesOf = (from: ParamSource) => from.split(', then ') as Source[];

/** Where a parameter may come from, in words: "metadata, the trigger authentication or hostFromEnv". */
function where(spec: ParamSpec): string {
  const words = sourcesOf(spec.from).map((s) => (s === 'metadata' ? 'metadata' : s === 'auth' ? 'the trigger authentication' : `${spec.name}FromEnv`));
  return words.length === 1 ? words[0]! : `${words.slice(0, -1).join(', ')} or ${words.at(-1)!}`;
}

/** Does a parameter read from the workload's environment (`<name>FromEnv`)? */
export function readsEnvironment(spec: ParamSpec): boolean {
  return sourcesOf(spec.from).includes('env');
}

export interface ParamSpec {
  name: string;
  type: ParamType;
  from: ParamSource;
  /** enum: the values allowed; list: the items allowed. */
  values?: readonly string[];
  default?: string | number | boolean;
  /** Required always, or as a function of the trigger (say which in `doc`). */
  required?: boolean | ((ctx: ScalerContext) => boolean);
  /** Required while another parameter has this value (an auth mode's credentials); not checked in validate-only builds, which cannot read Secrets. */
  requiredWith?: { param: string; value: string };
  /** Never quoted in a message, and marked in the README. */
  secret?: boolean;
  /** Still read; the README says what replaces it. */
  deprecated?: string;
  doc: string;
}

/** The checked values of one trigger, by parameter name. */
export class Parameters {
  constructor(
    private readonly values: ReadonlyMap<string, unknown>,
    private readonly unseenNames: ReadonlySet<string> = new Set(),
  ) {}

  string(name: string): string | undefined {
    return this.values.get(name) as string | undefined;
  }

  number(name: string): number | undefined {
    return this.values.get(name) as number | undefined;
  }

  bool(name: string): boolean {
    return this.values.get(name) === true;
  }

  list(name: string): string[] {
    return (this.values.get(name) as string[] | undefined) ?? [];
  }

  pairs(name: string): [string, string][] {
    return (this.values.get(name) as [string, string][] | undefined) ?? [];
  }

  url(name: string): URL | undefined {
    const u = this.values.get(name) as URL | undefined;
    return u ? new URL(u.href) : undefined;
  }

  /**
   * Validate-only builds: not given here, but it may be where the build cannot look (the trigger
   * authentication's Secrets, the workload's environment), so its absence proves nothing.
   */
  unseen(name: string): boolean {
    return this.unseenNames.has(name);
  }
}

/** Reads and checks every declared parameter of a trigger; throws ScalerConfigError naming the first problem. */
export function readParameters(type: string, specs: readonly ParamSpec[], ctx: ScalerContext): Parameters {
  const md = ctx.trigger.metadata ?? {};
  const auth = ctx.auth ?? {};
  const fail = (message: string): never => {
    throw configError(type, message);
  };
  const fromEnv = (name: string): string | undefined => {
    const variable = nonEmpty(md[`${name}FromEnv`])?.trim();
    if (variable === undefined || ctx.validateOnly === true) return undefined;
    if (!ctx.env) return fail(`${name}FromEnv: there is no workload environment to read ${variable} from`);
    let value: string | undefined;
    try {
      value = ctx.env.get(variable);
    } catch (err) {
      return fail(`${name}FromEnv: ${(err as Error).message}`);
    }
    if (value === undefined) fail(`${name}FromEnv: ${ctx.env.where} has no variable ${variable}`);
    // As KEDA: a blank variable is not given, and the next source is looked at.
    return nonEmpty(value);
  };
  const raw = (spec: ParamSpec): string | undefined => {
    for (const source of sourcesOf(spec.from)) {
      const v = source === 'metadata' ? nonEmpty(md[spec.name]) : source === 'auth' ? nonEmpty(auth[spec.name]) : fromEnv(spec.name);
      if (v !== undefined) return v;
    }
    return undefined;
  };
  /** Validate-only: could the value be where this build cannot look? */
  const mayBeElsewhere = (spec: ParamSpec): boolean =>
    ctx.validateOnly === true &&
    sourcesOf(spec.from).some((s) => (s === 'auth' && ctx.trigger.authenticationRef !== undefined) || (s === 'env' && nonEmpty(md[`${spec.name}FromEnv`]) !== undefined));
  const values = new Map<string, unknown>();
  const unseen = new Set<string>();
  for (const spec of specs) {
    const text = raw(spec);
    if (text === undefined) {
      if (mayBeElsewhere(spec)) unseen.add(spec.name);
      const required = typeof spec.required === 'function' ? spec.required(ctx) : spec.required === true;
      if (required && !unseen.has(spec.name)) fail(`no ${spec.name} given in ${where(spec)}`);
      if (spec.default !== undefined) values.set(spec.name, spec.type === 'list' ? String(spec.default).split(',') : spec.default);
      continue;
    }
    values.set(spec.name, parseValue(type, spec, text, fail));
  }
  if (ctx.validateOnly !== true) {
    for (const spec of specs) {
      const w = spec.requiredWith;
      if (!w || values.has(spec.name)) continue;
      const v = values.get(w.param);
      if (v === w.value || (Array.isArray(v) && v.includes(w.value))) fail(`${w.param} ${w.value}: no ${spec.name} given in ${where(spec)}`);
    }
  }
  return new Parameters(values, unseen);
}

function parseValue(type: string, spec: ParamSpec, text: string, fail: (message: string) => never): unknown {
  const subject = spec.secret ? `${spec.name}'s value` : `${spec.name} "${truncate(text.trim(), 100)}"`;
  switch (spec.type) {
    case 'string':
      return text;
    case 'number':
      return parseNumber(type, spec.name, text);
    case 'bool':
      return parseBool(type, spec.name, text);
    case 'milliseconds': {
      const s = text.trim();
      if (!/^\d+$/.test(s) || Number(s) <= 0) fail(`${subject} is not a positive whole number of milliseconds`);
      return Number(s);
    }
    case 'duration': {
      const ms = parseKedaDuration(text.trim());
      if (ms === undefined || ms <= 0) fail(`${subject} is not a positive duration (milliseconds, or Go's form: 30s, 1m30s, 500ms)`);
      return ms;
    }
    case 'enum': {
      const s = text.trim();
      if (!spec.values!.includes(s)) fail(`${subject} is not supported (one of: ${spec.values!.join(', ')})`);
      return s;
    }
    case 'list': {
      const items: string[] = [];
      for (const item of text.split(',').map((i) => i.trim())) {
        if (item === '' || items.includes(item)) continue;
        if (spec.values && !spec.values.includes(item)) fail(`${spec.name}: "${truncate(item, 32)}" is not supported (one of: ${spec.values.join(', ')})`);
        items.push(item);
      }
      return items;
    }
    case 'map': {
      const out: [string, string][] = [];
      for (const entry of text.split(',')) {
        if (entry.trim() === '') continue;
        const eq = entry.indexOf('=');
        if (eq < 0) fail(`${spec.name}: "${truncate(entry.trim(), 64)}" is not key=value (the format is k1=v1,k2=v2)`);
        const key = entry.slice(0, eq).trim();
        if (key === '') fail(`${spec.name}: "${truncate(entry.trim(), 64)}" has an empty key`);
        out.push([key, entry.slice(eq + 1).trim()]);
      }
      return out;
    }
    case 'url': {
      let url: URL;
      try {
        url = new URL(text.trim());
      } catch {
        // The value itself is not quoted: a URL may carry credentials.
        return fail(`${spec.name} is not a valid URL`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(`${spec.name} must be http or https, not ${url.protocol.replace(/:$/, '')}`);
      return url;
    }
  }
}

/** The README's table for one scaler's parameters (generated: see scripts/scaler-docs.mjs). */
export function parameterTable(specs: readonly ParamSpec[]): string {
  const cell = (s: string) => s.replace(/\|/g, '\\|');
  const rows = specs.map((s) => {
    const typeText = s.type === 'enum' || (s.type === 'list' && s.values) ? `${s.type}: ${s.values!.map((v) => `\`${v}\``).join(', ')}` : s.type;
    const required = s.requiredWith ? `with \`${s.requiredWith.param}\` \`${s.requiredWith.value}\`` : s.required === true ? 'yes' : typeof s.required === 'function' ? 'see notes' : '';
    const notes = [s.doc, s.secret ? 'Secret: give it through a TriggerAuthentication.' : '', s.deprecated ? `Deprecated: ${s.deprecated}.` : ''].filter(Boolean).join(' ');
    return `| \`${s.name}\` | ${s.from} | ${cell(typeText)} | ${s.default === undefined ? '' : `\`${String(s.default)}\``} | ${required} | ${cell(notes)} |`;
  });
  return ['| parameter | from | type | default | required | notes |', '|---|---|---|---|---|---|', ...rows].join('\n');
}

/**
 * The README with each scaler's generated table between `<!-- parameters: <type> -->` and
 * `<!-- /parameters -->`; a marker pair for a type not declared is an error (a renamed scaler).
 */
export function withParameterTables(readme: string, declarations: Readonly<Record<string, readonly ParamSpec[]>>): string {
  return readme.replace(/(<!-- parameters: ([\w-]+) -->\n)[\s\S]*?(<!-- \/parameters -->)/g, (_, open: string, type: string, close: string) => {
    const specs = declarations[type];
    if (!specs) throw new Error(`README: no scaler "${type}" declares parameters`);
    return `${open}${parameterTable(specs)}\n${close}`;
  });
}
