// The environment a trigger's `<parameter>FromEnv` reads (KEDA's "resolved environment"): the
// variables of one container of the workload's pod template, as the kubelet would give them, with
// the ConfigMaps and Secrets it names read now. As KEDA's resolver:
// - the container is the one named by envSourceContainerName, else the first;
// - envFrom first (ConfigMaps and Secrets, with their prefix), then env, later names winning;
// - `$(VAR)` in a value is expanded from the variables before it (`$$` is a literal `$`);
// - a reference marked optional that cannot be resolved is left out; fieldRef and
//   resourceFieldRef (known only in a running Pod) are left out.
// Values are never logged and never appear in a message.
import type { ScaledObject } from './types.js';

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Where an object's pod template is: its workload's (a ScaledObject) or its own (a ScaledJob). */
export interface PodTemplates {
  /**
   * The pod spec and the container named for the environment; `workload` names their owner in
   * messages. `use` gets the dependency key that versions the template before it is read (none
   * when it is part of the object). Throws EnvironmentError when there is none to read.
   */
  read(so: ScaledObject, use: (key: string) => void): Promise<{ spec: unknown; containerName?: string; workload: string }>;
  /** The version of a key given to `use`, as known now; undefined while its object does not exist. */
  version(key: string): string | undefined;
}

/** Reads what the variables refer to; each returns undefined when the object does not exist. */
export interface EnvironmentReader {
  readSecret(namespace: string, name: string): Promise<Map<string, string> | undefined>;
  readConfigMap(namespace: string, name: string): Promise<Map<string, string> | undefined>;
}

/** What the user must change: a missing container, ConfigMap, Secret or key, named. */
export class EnvironmentError extends Error {
  override readonly name = 'EnvironmentError';
}

/**
 * One container's variables. A variable whose source could not be read is known with its problem,
 * which is raised only when it is looked up: a broken reference matters to the triggers that read
 * it, not to the others (the kubelet would not start the container either way).
 */
export class ContainerEnvironment {
  constructor(
    /** The container, for messages (e.g. `Deployment default/web container "app"`). */
    readonly where: string,
    private readonly vars: ReadonlyMap<string, string | { problem: string }>,
    /** envFrom sources that could not be read: any name may have come from them. */
    private readonly unread: readonly string[] = [],
  ) {}

  /** The variable's value, undefined when the container does not define it; throws EnvironmentError when its source could not be read. */
  get(name: string): string | undefined {
    const v = this.vars.get(name);
    if (typeof v === 'string') return v;
    if (v) throw new EnvironmentError(`${this.where}: ${v.problem}`);
    if (this.unread.length > 0) throw new EnvironmentError(`${this.where} has no variable ${name} that could be read (${this.unread.join('; ')})`);
    return undefined;
  }
}

/**
 * The container's variables. `workload` names the pod template's owner in messages (e.g.
 * `Deployment default/web`); a pod template without the container is an EnvironmentError.
 */
export async function resolveEnvironment(reader: EnvironmentReader, namespace: string, podSpec: unknown, containerName: string | undefined, workload: string): Promise<ContainerEnvironment> {
  const containers = isObj(podSpec) && Array.isArray(podSpec.containers) ? podSpec.containers.filter(isObj) : [];
  if (containers.length === 0) throw new EnvironmentError(`${workload} has no containers to read *FromEnv values from`);
  const container = containerName ? containers.find((c) => c.name === containerName) : containers[0];
  if (!container) throw new EnvironmentError(`${workload} has no container named "${containerName}" (envSourceContainerName)`);
  const where = `${workload} container ${typeof container.name === 'string' ? `"${container.name}"` : '0'}`;

  const objects = new Map<string, Promise<Map<string, string> | undefined>>();
  /** The object's values, or why there are none (undefined: optional and absent). */
  const values = async (kind: 'ConfigMap' | 'Secret', ref: Obj): Promise<Map<string, string> | { problem: string } | undefined> => {
    const name = typeof ref.name === 'string' ? ref.name : '';
    const what = `${kind.toLowerCase()} ${namespace}/${name}`;
    let p = objects.get(`${kind}/${name}`);
    if (!p) objects.set(`${kind}/${name}`, (p = kind === 'Secret' ? reader.readSecret(namespace, name) : reader.readConfigMap(namespace, name)));
    try {
      const found = await p;
      return found ?? (ref.optional === true ? undefined : { problem: `${what} not found` });
    } catch (err) {
      // Optional does not excuse a read that failed (RBAC, the API server): the object may exist.
      return { problem: `${what}: ${(err as Error).message}` };
    }
  };
  const refOf = (o: Obj, configMap: string, secret: string): ['ConfigMap' | 'Secret', Obj] | undefined => (isObj(o[configMap]) ? ['ConfigMap', o[configMap]] : isObj(o[secret]) ? ['Secret', o[secret]] : undefined);

  const vars = new Map<string, string | { problem: string }>();
  /** The variables with a value so far, for `$(NAME)`. */
  const known = new Map<string, string>();
  const set = (name: string, value: string | { problem: string }) => {
    vars.set(name, value);
    if (typeof value === 'string') known.set(name, value);
    else known.delete(name);
  };
  const unread: string[] = [];
  const envFrom = Array.isArray(container.envFrom) ? container.envFrom.filter(isObj) : [];
  for (const [i, source] of envFrom.entries()) {
    const ref = refOf(source, 'configMapRef', 'secretRef');
    if (!ref) continue;
    const found = await values(...ref);
    if (found instanceof Map) for (const [k, v] of found) set((typeof source.prefix === 'string' ? source.prefix : '') + k, v);
    else if (found) unread.push(`envFrom[${i}]: ${found.problem}`);
  }
  const env = Array.isArray(container.env) ? container.env.filter(isObj) : [];
  for (const v of env) {
    if (typeof v.name !== 'string') continue;
    if (!isObj(v.valueFrom)) {
      set(v.name, expand(typeof v.value === 'string' ? v.value : '', known));
      continue;
    }
    const ref = refOf(v.valueFrom, 'configMapKeyRef', 'secretKeyRef');
    // fieldRef and resourceFieldRef: known only in a running Pod.
    if (!ref) continue;
    const found = await values(...ref);
    if (!(found instanceof Map)) {
      if (found) set(v.name, { problem: `variable ${v.name}: ${found.problem}` });
      continue;
    }
    const key = typeof ref[1].key === 'string' ? ref[1].key : '';
    const value = found.get(key);
    if (value !== undefined) set(v.name, value);
    else if (ref[1].optional !== true) set(v.name, { problem: `variable ${v.name}: ${ref[0].toLowerCase()} ${namespace}/${String(ref[1].name)} has no key ${JSON.stringify(key)}` });
  }
  return new ContainerEnvironment(where, vars, unread);
}

/** Kubernetes' expansion of `$(NAME)` from the variables defined so far; unknown names stay as written. */
export function expand(value: string, env: ReadonlyMap<string, string>): string {
  let out = '';
  for (let i = 0; i < value.length; i++) {
    const c = value[i]!;
    if (c !== '$' || i + 1 === value.length) {
      out += c;
      continue;
    }
    const next = value[i + 1]!;
    if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const close = value.indexOf(')', i + 2);
      if (close < 0) {
        out += '$(';
        i++;
        continue;
      }
      const name = value.slice(i + 2, close);
      out += env.get(name) ?? `$(${name})`;
      i = close;
    } else {
      out += `$${next}`;
      i++;
    }
  }
  return out;
}
