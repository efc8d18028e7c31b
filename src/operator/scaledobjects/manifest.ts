// KEDA's custom resources read and validated one object at a time, from YAML documents or from
// the API server's JSON: the same rules for the file store, the cluster watch and the admission
// webhook. Every error names the object and the field, never a secret value.
import type { Document } from 'yaml';
import { isDns1123Label, isDns1123Subdomain } from '../../k8s/names.js';
import { environmentParameters } from '../scalers/index.js';
import { compileFormula, FormulaError } from './formula.js';
import { FALLBACK_BEHAVIORS, type ScalingModifiers, type AuthSpec, type AuthenticationRef, type BoundServiceAccountTokenRef, type Fallback, type Pause, type ScaleTargetRef, type ScaledObject, type SecretTargetRef, type Trigger } from './types.js';

export const KEDA_API_VERSION = 'keda.sh/v1alpha1';

export const SCALED_OBJECT_DEFAULTS = Object.freeze({ pollingInterval: 30, cooldownPeriod: 300, initialCooldownPeriod: 0, minReplicaCount: 0, maxReplicaCount: 100 });

type Obj = Record<string, unknown>;
export type Path = (string | number)[];

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const SECRET_KEY = /^[-._a-zA-Z0-9]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const METRIC_TYPES = ['AverageValue', 'Value', 'Utilization'] as const;
const AUTH_KINDS = ['TriggerAuthentication', 'ClusterTriggerAuthentication'] as const;
const INT32_MAX = 2 ** 31 - 1;

/** A value quoted in a message, for fields that are never secret (kinds, enum values, names). */
export const quote = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v) : typeof v);

/** What is wrong with an object: where it is, which field, never a secret value. */
export class ManifestError extends Error {
  override readonly name = 'ManifestError';
}

export interface Note {
  level: 'warn' | 'debug';
  msg: string;
}

/** Where a YAML object came from, to quote numbers as written. Absent for the API server's JSON. */
export interface YamlSource {
  doc: Document.Parsed;
  path: Path;
}

/** Reads one object, every error prefixed with where it is (`document 2 (ScaledObject ns/name)`, or `ScaledObject ns/name`). */
export class ObjectReader {
  label: string;
  /** What notActedOn was told, one sentence each. */
  readonly unsupported: string[] = [];
  constructor(
    readonly at: string,
    kind: string,
    readonly notes: Note[],
    private readonly source?: YamlSource,
  ) {
    this.label = kind === '' ? at : at === '' ? kind : `${at} (${kind})`;
  }

  named(kind: string, namespace: string | undefined, name: string): void {
    const id = `${kind} ${namespace === undefined ? name : `${namespace}/${name}`}`;
    this.label = this.at === '' ? id : `${this.at} (${id})`;
  }

  fail(field: string, problem: string): never {
    throw new ManifestError(`${this.label}: ${field} ${problem}`);
  }

  warn(msg: string): void {
    this.notes.push({ level: 'warn', msg: `${this.label}: ${msg}` });
  }

  /** A KEDA field set on the object that this operator does not act on: kept for the status, and warned about. */
  notActedOn(field: string, why: string): void {
    this.unsupported.push(`${field} is not supported: ${why}`);
    this.warn(`${field} is not supported: ${why}`);
  }

  debug(msg: string): void {
    this.notes.push({ level: 'debug', msg: `${this.label}: ${msg}` });
  }

  mapping(v: unknown, field: string, required: boolean): Obj | undefined {
    if (v === undefined || v === null) {
      if (required) this.fail(field, 'is required');
      return undefined;
    }
    if (!isObj(v)) this.fail(field, 'must be a mapping');
    return v;
  }

  string(v: unknown, field: string, required: true): string;
  string(v: unknown, field: string, required: false): string | undefined;
  string(v: unknown, field: string, required: boolean): string | undefined {
    if (v === undefined || v === null || v === '') {
      if (required) this.fail(field, 'is required');
      return undefined;
    }
    if (typeof v !== 'string') this.fail(field, 'must be a string');
    return v;
  }

  int(v: unknown, field: string, dflt: number, min: number): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > INT32_MAX) this.fail(field, `must be an integer >= ${min}`);
    return v;
  }

  list(v: unknown, field: string): unknown[] | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v)) this.fail(field, 'must be a list');
    return v;
  }

  /** A string map the API server would insist on (trigger metadata, stringData): numbers and booleans are coerced, with a warning. */
  stringMap(v: Obj, field: string, fieldPath: Path): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v)) {
      if (typeof val === 'string') out[k] = val;
      else if (typeof val === 'number' || typeof val === 'boolean' || typeof val === 'bigint') {
        // The text as written (`0.50` stays `0.50`), so the coercion is what the user meant.
        // A YAML scalar node keeps its source text; read without importing yaml (JSON has no source).
        const node = this.source?.doc.getIn([...this.source.path, ...fieldPath, k], true) as { source?: unknown } | undefined;
        out[k] = typeof node?.source === 'string' ? node.source : String(val);
        this.warn(`${field}.${k} is a ${typeof val}, but Kubernetes requires a string here (quote it); used as a string`);
      } else this.fail(`${field}.${k}`, 'must be a string');
    }
    return out;
  }
}

function objectName(r: ObjectReader, field: string, value: unknown, valid: (s: string) => boolean, what: string): string {
  const s = r.string(value, field, true);
  if (!valid(s)) r.fail(field, `${quote(s)} is not a valid ${what}`);
  return s;
}


export function readMetadata(r: ObjectReader, raw: Obj, kind: string, namespaced: boolean): { namespace: string; name: string } {
  const metadata = r.mapping(raw.metadata, 'metadata', true) as Obj;
  const name = objectName(r, 'metadata.name', metadata.name, isDns1123Subdomain, 'object name (lowercase RFC 1123 subdomain)');
  if (!namespaced) {
    r.named(kind, undefined, name);
    return { namespace: '', name };
  }
  const namespace = metadata.namespace === undefined || metadata.namespace === null ? 'default' : objectName(r, 'metadata.namespace', metadata.namespace, isDns1123Label, 'namespace (lowercase RFC 1123 label)');
  r.named(kind, namespace, name);
  return { namespace, name };
}

export const PAUSE_ANNOTATIONS = {
  replicas: 'autoscaling.keda.sh/paused-replicas',
  paused: 'autoscaling.keda.sh/paused',
  scaleIn: 'autoscaling.keda.sh/paused-scale-in',
  scaleOut: 'autoscaling.keda.sh/paused-scale-out',
} as const;

/** KEDA's pause annotations; undefined when none is set (or all say "false"). */
function readPause(r: ObjectReader, raw: Obj): Pause | undefined {
  const annotations = (isObj(raw.metadata) && isObj(raw.metadata.annotations) ? raw.metadata.annotations : {}) as Record<string, unknown>;
  const flag = (key: string) => {
    const v = annotations[key];
    if (v === undefined) return false;
    if (v !== 'true' && v !== 'false') r.fail(`metadata.annotations[${key}]`, `must be "true" or "false" (got ${quote(String(v))})`);
    return v === 'true';
  };
  let replicas: number | undefined;
  const rawReplicas = annotations[PAUSE_ANNOTATIONS.replicas];
  if (rawReplicas !== undefined) {
    if (typeof rawReplicas !== 'string' || !/^\d+$/.test(rawReplicas) || Number(rawReplicas) > INT32_MAX) r.fail(`metadata.annotations[${PAUSE_ANNOTATIONS.replicas}]`, `must be a replica count, an integer >= 0 (got ${quote(String(rawReplicas))})`);
    replicas = Number(rawReplicas);
  }
  const pause: Pause = { all: replicas !== undefined || flag(PAUSE_ANNOTATIONS.paused), scaleIn: flag(PAUSE_ANNOTATIONS.scaleIn), scaleOut: flag(PAUSE_ANNOTATIONS.scaleOut), ...(replicas !== undefined ? { replicas } : {}) };
  return pause.all || pause.scaleIn || pause.scaleOut ? pause : undefined;
}

export interface ScaledObjectManifest {
  namespace: string;
  name: string;
  spec: ScaledObject['spec'];
  pause?: Pause;
  /** Fields KEDA has and this operator does not act on, one sentence each; also noted as warnings. */
  unsupported: string[];
}

// The fields this operator reads; any other field set is named as not acted on.
const KNOWN_SPEC = new Set(['scaleTargetRef', 'pollingInterval', 'cooldownPeriod', 'initialCooldownPeriod', 'minReplicaCount', 'maxReplicaCount', 'idleReplicaCount', 'advanced', 'triggers', 'fallback']);
const KNOWN_TRIGGER = new Set(['type', 'name', 'metadata', 'metricType', 'useCachedMetrics', 'authenticationRef']);

export function readScaledObject(r: ObjectReader, raw: Obj): ScaledObjectManifest {
  const { namespace, name } = readMetadata(r, raw, 'ScaledObject', true);
  const spec = r.mapping(raw.spec, 'spec', true) as Obj;
  const ref = r.mapping(spec.scaleTargetRef, 'spec.scaleTargetRef', true) as Obj;
  const scaleTargetRef: ScaleTargetRef = { name: r.string(ref.name, 'spec.scaleTargetRef.name', true) };
  const refKind = r.string(ref.kind, 'spec.scaleTargetRef.kind', false);
  const refApiVersion = r.string(ref.apiVersion, 'spec.scaleTargetRef.apiVersion', false);
  if (refKind !== undefined) scaleTargetRef.kind = refKind;
  if (refApiVersion !== undefined) scaleTargetRef.apiVersion = refApiVersion;
  const envSourceContainerName = r.string(ref.envSourceContainerName, 'spec.scaleTargetRef.envSourceContainerName', false);
  if (envSourceContainerName !== undefined) scaleTargetRef.envSourceContainerName = envSourceContainerName;

  const d = SCALED_OBJECT_DEFAULTS;
  const pollingInterval = r.int(spec.pollingInterval, 'spec.pollingInterval', d.pollingInterval, 1);
  const cooldownPeriod = r.int(spec.cooldownPeriod, 'spec.cooldownPeriod', d.cooldownPeriod, 0);
  const initialCooldownPeriod = r.int(spec.initialCooldownPeriod, 'spec.initialCooldownPeriod', d.initialCooldownPeriod, 0);
  const minReplicaCount = r.int(spec.minReplicaCount, 'spec.minReplicaCount', d.minReplicaCount, 0);
  const maxReplicaCount = r.int(spec.maxReplicaCount, 'spec.maxReplicaCount', d.maxReplicaCount, 1);
  if (minReplicaCount > maxReplicaCount) r.fail('spec.minReplicaCount', `(${minReplicaCount}) must not be greater than spec.maxReplicaCount (${maxReplicaCount})`);
  let idleReplicaCount: number | undefined;
  if (spec.idleReplicaCount !== undefined && spec.idleReplicaCount !== null) {
    idleReplicaCount = r.int(spec.idleReplicaCount, 'spec.idleReplicaCount', 0, 0);
    // As KEDA documents: at any other count the HPA (minReplicas = minReplicaCount) scales the
    // workload straight back up, so the setting would silently do nothing.
    if (idleReplicaCount !== 0) r.fail('spec.idleReplicaCount', `(${idleReplicaCount}) must be 0: at any other count the HPA scales the workload straight back to minReplicaCount`);
    if (idleReplicaCount >= minReplicaCount) r.fail('spec.idleReplicaCount', `(${idleReplicaCount}) must be less than spec.minReplicaCount (${minReplicaCount})`);
  }

  const triggers = readTriggers(r, spec.triggers);

  const out: ScaledObject['spec'] = { scaleTargetRef, pollingInterval, cooldownPeriod, initialCooldownPeriod, minReplicaCount, maxReplicaCount, triggers };
  if (idleReplicaCount !== undefined) out.idleReplicaCount = idleReplicaCount;
  const fallback = readFallback(r, spec.fallback, triggers);
  if (fallback) out.fallback = fallback;
  const advanced = r.mapping(spec.advanced, 'spec.advanced', false);
  if (advanced) {
    out.advanced = {};
    if (advanced.restoreToOriginalReplicaCount !== undefined && advanced.restoreToOriginalReplicaCount !== null) {
      if (typeof advanced.restoreToOriginalReplicaCount !== 'boolean') r.fail('spec.advanced.restoreToOriginalReplicaCount', 'must be true or false');
      out.advanced.restoreToOriginalReplicaCount = advanced.restoreToOriginalReplicaCount;
    }
    const hpa = r.mapping(advanced.horizontalPodAutoscalerConfig, 'spec.advanced.horizontalPodAutoscalerConfig', false);
    if (hpa) {
      const config: NonNullable<NonNullable<ScaledObject['spec']['advanced']>['horizontalPodAutoscalerConfig']> = {};
      const hpaName = r.string(hpa.name, 'spec.advanced.horizontalPodAutoscalerConfig.name', false);
      if (hpaName !== undefined) {
        if (!isDns1123Subdomain(hpaName)) r.fail('spec.advanced.horizontalPodAutoscalerConfig.name', `${quote(hpaName)} is not a valid object name`);
        config.name = hpaName;
      }
      // Passed to the HPA as written: the API server validates it when the HPA is written.
      const behavior = r.mapping(hpa.behavior, 'spec.advanced.horizontalPodAutoscalerConfig.behavior', false);
      if (behavior) config.behavior = behavior;
      out.advanced.horizontalPodAutoscalerConfig = config;
    }
    const modifiers = readScalingModifiers(r, advanced.scalingModifiers, triggers);
    if (modifiers) out.advanced.scalingModifiers = modifiers;
    for (const [k, v] of Object.entries(advanced)) {
      if (v !== undefined && v !== null && !['horizontalPodAutoscalerConfig', 'restoreToOriginalReplicaCount', 'scalingModifiers'].includes(k)) r.notActedOn(`spec.advanced.${k}`, 'this field is unknown');
    }
    if (Object.keys(out.advanced).length === 0) delete out.advanced;
  }
  for (const [k, v] of Object.entries(spec)) if (v !== undefined && v !== null && !KNOWN_SPEC.has(k)) r.notActedOn(`spec.${k}`, 'this field is unknown');
  const pause = readPause(r, raw);
  return { namespace, name, spec: out, ...(pause ? { pause } : {}), unsupported: r.unsupported };
}

/** KEDA's fallback, with its webhook's rules: both counts set and >= 0, and no trigger it cannot stand in for. */
function readFallback(r: ObjectReader, raw: unknown, triggers: Trigger[]): Fallback | undefined {
  const f = r.mapping(raw, 'spec.fallback', false);
  if (!f) return undefined;
  for (const field of ['failureThreshold', 'replicas']) if (f[field] === undefined || f[field] === null) r.fail(`spec.fallback.${field}`, 'is required');
  const failureThreshold = r.int(f.failureThreshold, 'spec.fallback.failureThreshold', 0, 0);
  const replicas = r.int(f.replicas, 'spec.fallback.replicas', 0, 0);
  const behavior = r.string(f.behavior, 'spec.fallback.behavior', false) ?? 'static';
  if (!(FALLBACK_BEHAVIORS as readonly string[]).includes(behavior)) r.fail('spec.fallback.behavior', `must be one of ${FALLBACK_BEHAVIORS.join(', ')} (got ${quote(behavior)})`);
  triggers.forEach((t, i) => {
    if (t.type === 'cpu' || t.type === 'memory') r.fail(`spec.triggers[${i}].type`, `is ${quote(t.type)}, but spec.fallback is not supported by the cpu and memory scalers`);
    if (t.metricType === 'Utilization') r.fail(`spec.triggers[${i}].metricType`, 'is "Utilization", but spec.fallback works only with the AverageValue and Value metric types');
  });
  for (const k of Object.keys(f)) if (!['failureThreshold', 'replicas', 'behavior'].includes(k)) r.notActedOn(`spec.fallback.${k}`, 'this field is unknown');
  return { failureThreshold, replicas, behavior: behavior as Fallback['behavior'] };
}

/** The triggers a formula can name: KEDA leaves cpu and memory out (they stay HPA resource metrics). */
export function formulaNames(triggers: readonly Trigger[]): string[] {
  return triggers.flatMap((t) => (t.name !== undefined && t.type !== 'cpu' && t.type !== 'memory' ? [t.name] : []));
}

/** KEDA's scalingModifiers, with its webhook's rules; the formula compiled against the named triggers. */
function readScalingModifiers(r: ObjectReader, raw: unknown, triggers: Trigger[]): ScalingModifiers | undefined {
  const m = r.mapping(raw, 'spec.advanced.scalingModifiers', false);
  if (!m || Object.values(m).every((v) => v === undefined || v === null || v === '')) return undefined;
  const at = 'spec.advanced.scalingModifiers';
  const formula = r.string(m.formula, `${at}.formula`, true);
  const number = (field: string, required: boolean, min: number, strict: boolean): number => {
    const text = required ? r.string(m[field], `${at}.${field}`, true) : r.string(m[field], `${at}.${field}`, false);
    if (text === undefined) return 0;
    const v = Number(text.trim());
    if (text.trim() === '' || !Number.isFinite(v) || v < min || (strict && v === min)) r.fail(`${at}.${field}`, `must be a number ${strict ? 'greater than' : 'at least'} ${min} (got ${quote(text)})`);
    return v;
  };
  const target = number('target', true, 0, true);
  const activationTarget = number('activationTarget', false, 0, false);
  const metricType = r.string(m.metricType, `${at}.metricType`, false) ?? 'AverageValue';
  if (metricType !== 'AverageValue' && metricType !== 'Value') r.fail(`${at}.metricType`, `must be AverageValue or Value for the composite metric (got ${quote(metricType)})`);
  try {
    compileFormula(formula, formulaNames(triggers));
  } catch (err) {
    if (err instanceof FormulaError) r.fail(`${at}.formula`, `is invalid: ${err.message}`);
    throw err;
  }
  return { formula, target, activationTarget, metricType };
}

/** spec.triggers, as ScaledObjects and ScaledJobs share them: at least one, names unique. */
export function readTriggers(r: ObjectReader, raw: unknown): Trigger[] {
  const list = r.list(raw, 'spec.triggers');
  if (list === undefined) r.fail('spec.triggers', 'is required');
  if (list.length === 0) r.fail('spec.triggers', 'must hold at least one trigger');
  const names = new Map<string, number>();
  return list.map((t, i) => readTrigger(r, t, i, names));
}

function readTrigger(r: ObjectReader, raw: unknown, i: number, names: Map<string, number>): Trigger {
  const at = `spec.triggers[${i}]`;
  const t = r.mapping(raw, at, true) as Obj;
  const type = r.string(t.type, `${at}.type`, true);
  const metadata = r.stringMap(r.mapping(t.metadata, `${at}.metadata`, true) as Obj, `${at}.metadata`, ['spec', 'triggers', i, 'metadata']);
  const trigger: Trigger = { type, metadata };
  const fromEnv = environmentParameters(type);
  for (const k of Object.keys(metadata)) {
    const parameter = k.slice(0, -'FromEnv'.length);
    if (fromEnv && k.endsWith('FromEnv') && !fromEnv.includes(parameter)) {
      r.notActedOn(`${at}.metadata.${k}`, `${type} does not read ${parameter} from the workload's environment (as in KEDA); give the value itself`);
    }
  }
  for (const k of Object.keys(t)) if (!KNOWN_TRIGGER.has(k) && t[k] !== undefined && t[k] !== null) r.notActedOn(`${at}.${k}`, 'this field is unknown');

  const name = r.string(t.name, `${at}.name`, false);
  if (name !== undefined) {
    const first = names.get(name);
    if (first !== undefined) r.fail(`${at}.name`, `${quote(name)} is already used by spec.triggers[${first}]; trigger names must be unique`);
    names.set(name, i);
    trigger.name = name;
  }

  const metricType = r.string(t.metricType, `${at}.metricType`, false);
  if (metricType !== undefined) {
    if (!(METRIC_TYPES as readonly string[]).includes(metricType)) r.fail(`${at}.metricType`, `must be one of ${METRIC_TYPES.join(', ')} (got ${quote(metricType)})`);
    trigger.metricType = metricType as Trigger['metricType'];
  }

  if (t.useCachedMetrics !== undefined && t.useCachedMetrics !== null) {
    if (typeof t.useCachedMetrics !== 'boolean') r.fail(`${at}.useCachedMetrics`, 'must be true or false');
    if (t.useCachedMetrics && ['cpu', 'memory', 'cron'].includes(type)) r.fail(`${at}.useCachedMetrics`, `is not supported for the ${quote(type)} trigger`);
    trigger.useCachedMetrics = t.useCachedMetrics;
  }

  const authRef = r.mapping(t.authenticationRef, `${at}.authenticationRef`, false);
  if (authRef !== undefined) {
    const ref: AuthenticationRef = { name: r.string(authRef.name, `${at}.authenticationRef.name`, true) };
    const kind = r.string(authRef.kind, `${at}.authenticationRef.kind`, false);
    if (kind !== undefined) {
      if (!(AUTH_KINDS as readonly string[]).includes(kind)) r.fail(`${at}.authenticationRef.kind`, `must be one of ${AUTH_KINDS.join(', ')} (got ${quote(kind)})`);
      ref.kind = kind as AuthenticationRef['kind'];
    }
    trigger.authenticationRef = ref;
  }
  return trigger;
}

export interface TriggerAuthManifest {
  kind: 'TriggerAuthentication' | 'ClusterTriggerAuthentication';
  /** '' for a ClusterTriggerAuthentication. */
  namespace: string;
  name: string;
  auth: AuthSpec;
}


export function readTriggerAuthentication(r: ObjectReader, raw: Obj): TriggerAuthManifest {
  const kind = raw.kind as TriggerAuthManifest['kind'];
  const { namespace, name } = readMetadata(r, raw, kind, kind === 'TriggerAuthentication');
  const spec = r.mapping(raw.spec, 'spec', true) as Obj;

  const secretTargetRef = (r.list(spec.secretTargetRef, 'spec.secretTargetRef') ?? []).map((item, i): SecretTargetRef => {
    const at = `spec.secretTargetRef[${i}]`;
    const ref = r.mapping(item, at, true) as Obj;
    return { parameter: r.string(ref.parameter, `${at}.parameter`, true), name: r.string(ref.name, `${at}.name`, true), key: r.string(ref.key, `${at}.key`, true) };
  });
  const boundServiceAccountToken = (r.list(spec.boundServiceAccountToken, 'spec.boundServiceAccountToken') ?? []).map((item, i): BoundServiceAccountTokenRef => {
    const at = `spec.boundServiceAccountToken[${i}]`;
    const ref = r.mapping(item, at, true) as Obj;
    const out: BoundServiceAccountTokenRef = {
      parameter: r.string(ref.parameter, `${at}.parameter`, true),
      serviceAccountName: objectName(r, `${at}.serviceAccountName`, ref.serviceAccountName, isDns1123Subdomain, 'service account name'),
    };
    // Our additions to KEDA's schema: KEDA itself takes the API server's default audience and lifetime.
    const audiences = r.list(ref.audiences, `${at}.audiences`);
    if (audiences) out.audiences = audiences.map((a, j) => r.string(a, `${at}.audiences[${j}]`, true));
    if (ref.expirationSeconds !== undefined && ref.expirationSeconds !== null) out.expirationSeconds = r.int(ref.expirationSeconds, `${at}.expirationSeconds`, 3600, 600);
    return out;
  });
  const unsupported = Object.keys(spec)
    .filter((k) => k !== 'secretTargetRef' && k !== 'boundServiceAccountToken' && spec[k] !== null && spec[k] !== undefined)
    .map((k) => `spec.${k} is not supported (only spec.secretTargetRef and spec.boundServiceAccountToken are resolved); parameters from it will be missing`);
  for (const u of unsupported) r.warn(u);
  return { kind, namespace, name, auth: { secretTargetRef, boundServiceAccountToken, unsupported } };
}

export function readSecret(r: ObjectReader, raw: Obj): { namespace: string; name: string; values: Map<string, string> } {
  const { namespace, name } = readMetadata(r, raw, 'Secret', true);
  const values = new Map<string, string>();
  const data = r.mapping(raw.data, 'data', false);
  for (const [k, v] of Object.entries(data ?? {})) {
    if (k.length > 253 || !SECRET_KEY.test(k)) r.fail(`data.${k}`, 'is not a valid key (letters, digits, "-", "_" and "." only)');
    if (typeof v !== 'string') r.fail(`data.${k}`, 'must be a base64 string');
    const compact = v.replace(/[\r\n]/g, '');
    if (!BASE64.test(compact)) r.fail(`data.${k}`, 'is not valid base64 (use stringData for plain text)');
    values.set(k, Buffer.from(compact, 'base64').toString('utf8'));
  }
  const stringData = r.mapping(raw.stringData, 'stringData', false);
  if (stringData) {
    // As the API server does: stringData is merged over data, key by key.
    for (const [k, v] of Object.entries(r.stringMap(stringData, 'stringData', ['stringData']))) {
      if (k.length > 253 || !SECRET_KEY.test(k)) r.fail(`stringData.${k}`, 'is not a valid key (letters, digits, "-", "_" and "." only)');
      values.set(k, v);
    }
  }
  return { namespace, name, values };
}

/** A ScaledObject as the API server returns it (JSON): throws ManifestError naming the field. */
export function scaledObjectFromApi(raw: unknown, notes: Note[] = []): ScaledObjectManifest {
  if (!isObj(raw)) throw new ManifestError('ScaledObject: expected an object');
  return readScaledObject(new ObjectReader('', 'ScaledObject', notes), raw);
}

/** A TriggerAuthentication or ClusterTriggerAuthentication as the API server returns it. */
export function triggerAuthenticationFromApi(raw: unknown, kind: TriggerAuthManifest['kind'], notes: Note[] = []): TriggerAuthManifest {
  if (!isObj(raw)) throw new ManifestError(`${kind}: expected an object`);
  return readTriggerAuthentication(new ObjectReader('', kind, notes), { ...raw, kind });
}

/** The values of a Secret as the API server returns it (base64 data). Never logged. */
export function secretValuesFromApi(raw: unknown): Map<string, string> {
  if (!isObj(raw)) throw new ManifestError('Secret: expected an object');
  return readSecret(new ObjectReader('', 'Secret', []), raw).values;
}
