// Command-line flags in the pflag style Kubernetes operators know: `--name=value`, `--name value`,
// bare `--bool`, comma-separated and repeatable lists, Go durations. Every flag may also come from
// an environment variable; the command line wins over the environment, which wins over the default.
import { parseDuration, formatDuration } from './duration.js';

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

interface FlagBase<T> {
  readonly name: string;
  readonly help: string;
  readonly default: T;
  /** Environment variables read when the flag is absent, first set wins. */
  readonly env: readonly string[];
  // Method syntax on purpose: parameters stay bivariant, so a Flag<number> is a Flag<unknown>.
  parse(raw: string, previous: T, repeated: boolean): T;
  show(value: T): string;
  readonly isBool?: boolean;
}
export type Flag<T> = FlagBase<T>;
export type FlagSpecs = Record<string, Flag<unknown>>;
export type FlagValues<S extends FlagSpecs> = { [K in keyof S]: S[K] extends Flag<infer T> ? T : never };

interface Options { env?: string | string[] }
const envList = (o?: Options): string[] => (o?.env === undefined ? [] : Array.isArray(o.env) ? o.env : [o.env]);

export function stringFlag(name: string, def: string, help: string, o?: Options): Flag<string> {
  return { name, help, default: def, env: envList(o), parse: (raw) => raw, show: (v) => JSON.stringify(v) };
}

export function intFlag(name: string, def: number, help: string, o?: Options & { min?: number; max?: number }): Flag<number> {
  return {
    name, help, default: def, env: envList(o), show: String,
    parse: (raw) => {
      if (!/^-?\d+$/.test(raw.trim())) throw new UsageError(`invalid argument "${raw}" for "--${name}": not an integer`);
      const n = Number(raw);
      if (o?.min !== undefined && n < o.min) throw new UsageError(`invalid argument "${raw}" for "--${name}": must be >= ${o.min}`);
      if (o?.max !== undefined && n > o.max) throw new UsageError(`invalid argument "${raw}" for "--${name}": must be <= ${o.max}`);
      return n;
    },
  };
}

export function boolFlag(name: string, def: boolean, help: string, o?: Options): Flag<boolean> {
  return {
    name, help, default: def, env: envList(o), show: String, isBool: true,
    parse: (raw) => {
      const v = raw.trim().toLowerCase();
      if (['true', '1', 't', 'yes'].includes(v)) return true;
      if (['false', '0', 'f', 'no'].includes(v)) return false;
      throw new UsageError(`invalid argument "${raw}" for "--${name}": not a boolean`);
    },
  };
}

/** Durations in milliseconds, written the Go way (`10s`, `1m30s`, `8760h`). */
export function durationFlag(name: string, defMs: number, help: string, o?: Options): Flag<number> {
  return {
    name, help, default: defMs, env: envList(o), show: formatDuration,
    parse: (raw) => {
      const ms = parseDuration(raw);
      if (ms === undefined) throw new UsageError(`invalid argument "${raw}" for "--${name}": not a duration (e.g. 10s, 1m30s, 8760h)`);
      return ms;
    },
  };
}

export function enumFlag<const V extends string>(name: string, values: readonly V[], def: V, help: string, o?: Options): Flag<V> {
  return {
    name, help: `${help} (one of: ${values.join(', ')})`, default: def, env: envList(o), show: (v) => v,
    parse: (raw) => {
      if (!(values as readonly string[]).includes(raw)) {
        throw new UsageError(`invalid argument "${raw}" for "--${name}": must be one of ${values.join(', ')}`);
      }
      return raw as V;
    },
  };
}

/** A list: comma-separated, and repeating the flag appends (pflag's StringSlice). */
export function listFlag(name: string, def: readonly string[], help: string, o?: Options): Flag<string[]> {
  return {
    name, help, default: [...def], env: envList(o), show: (v) => `[${v.join(',')}]`,
    parse: (raw, previous, repeated) => {
      const items = raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
      return repeated ? [...previous, ...items] : items;
    },
  };
}

export function parseFlags<S extends FlagSpecs>(specs: S, argv: readonly string[], env: NodeJS.ProcessEnv = {}): FlagValues<S> {
  const byName = new Map<string, [keyof S, Flag<unknown>]>();
  for (const key of Object.keys(specs) as (keyof S)[]) {
    const flag = specs[key] as Flag<unknown>;
    byName.set(flag.name, [key, flag]);
  }
  const values = {} as Record<keyof S, unknown>;
  const seen = new Set<keyof S>();

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--') || arg === '--') throw new UsageError(`unexpected argument "${arg}"`);
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq === -1 ? undefined : eq);
    const entry = byName.get(name);
    if (!entry) throw new UsageError(`unknown flag: --${name}`);
    const [key, flag] = entry;
    let raw: string;
    if (eq !== -1) raw = arg.slice(eq + 1);
    else if (flag.isBool) raw = 'true';
    else {
      const next = argv[i + 1];
      if (next === undefined) throw new UsageError(`flag needs an argument: --${name}`);
      raw = next;
      i++;
    }
    values[key] = flag.parse(raw, seen.has(key) ? values[key] : flag.default, seen.has(key));
    seen.add(key);
  }

  for (const key of Object.keys(specs) as (keyof S)[]) {
    if (seen.has(key)) continue;
    const flag = specs[key] as Flag<unknown>;
    const fromEnv = flag.env.map((e) => [e, env[e]] as const).find(([, v]) => v !== undefined && v !== '');
    if (fromEnv) {
      try {
        values[key] = flag.parse(fromEnv[1] as string, flag.default, false);
      } catch (err) {
        throw new UsageError(`${(err as Error).message} (from environment variable ${fromEnv[0]})`);
      }
    } else values[key] = flag.default;
  }
  return values as FlagValues<S>;
}

export function formatHelp(usage: string, specs: FlagSpecs): string {
  const lines = [`Usage: ${usage}`, '', 'Flags:'];
  for (const flag of Object.values(specs)) {
    const env = flag.env.length > 0 ? ` [env ${flag.env.join(', ')}]` : '';
    // No default shown when the help already says it, or when there is none to speak of.
    const shown = flag.show(flag.default);
    const def = flag.help.includes('(default') || ['""', '[]', 'false'].includes(shown) ? '' : ` (default ${shown})`;
    lines.push(`  --${flag.name}`, `        ${flag.help}${def}${env}`);
  }
  return lines.join('\n') + '\n';
}
