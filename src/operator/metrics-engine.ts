// The operator's metric values. Answers GetMetrics (the scaled object, the trigger behind the
// metric name, its scaler) and polls every scaled object per its pollingInterval, so that:
// - triggers with `useCachedMetrics` are answered from the last poll, not the upstream;
// - activity (for scaling to and from zero) and trigger health are known without a query;
// - a failing trigger never costs a healthy one its value.
// Scalers are built once per trigger and rebuilt when the object changes, when anything it was
// built from changes (its TriggerAuthentication, a Secret, appearing, changing or going), when a
// token in it is due for renewal, or when the scaler failed (as KEDA does). Which objects were
// built from what is indexed, so that a change reaches exactly the objects that use it.
import { status } from '../channel/status.js';
import type { Logger } from 'pino';
import { formatQuantity, quantityFromNumber } from '../k8s/quantity.js';
import { ChannelError, type MetricsHandler } from '../channel/server.js';
import { toWireTime, type ExternalMetricValueList, type ScaledObjectRef } from '../channel/service.js';
import type { CustomCaTrust } from '../tls/custom-ca.js';
import { createScaler, usesEnvironment } from './scalers/index.js';
import type { PodCounter } from './scalers/pod-index.js';
import { ScalerError, type Scaler } from './scalers/scaler.js';
import { resolveAuth, type TokenSource } from './scaledobjects/resolve-auth.js';
import { EnvironmentError, resolveEnvironment, type ContainerEnvironment, type EnvironmentReader, type PodTemplates } from './scaledobjects/resolve-env.js';
import type { AuthLookup, AuthenticationRef, ScaledObject, ScaledObjectStore, Trigger } from './scaledobjects/types.js';
import { COMPOSITE_METRIC_NAME, dependencyKey, fallbackReplicas } from './scaledobjects/types.js';
import { compileFormula, type Formula } from './scaledobjects/formula.js';
import { formulaNames } from './scaledobjects/manifest.js';

/** One trigger as the HPA and the status see it. */
export interface TriggerReport {
  index: number;
  type: string;
  /** KEDA's metric name; absent when the scaler could not be built. */
  metricName?: string;
  metricType: NonNullable<Trigger['metricType']>;
  /** useCachedMetrics: queries are answered from the last poll. */
  cached: boolean;
  targetValue?: number;
  /** Why the scaler could not be built (configuration, authentication): fix the object. */
  buildError?: string;
  /** The last poll's value, and whether it makes the workload needed. */
  value?: number;
  active?: boolean;
  /** The last read's failure, and how many reads (polls and queries) in a row failed. */
  error?: string;
  failures: number;
  /** Failed more than spec.fallback.failureThreshold times in a row: its metric is answered with the fallback. */
  fallback: boolean;
}

export interface PollReport {
  namespace: string;
  name: string;
  generation: number;
  /** Seconds between polls. */
  pollingInterval: number;
  triggers: TriggerReport[];
  /** Any trigger active (with scalingModifiers: the formula's value above activationTarget). Triggers that failed count as not active. */
  active: boolean;
  /** With scalingModifiers: the formula's value over this poll's values, or why there is none. */
  composite?: { value: number } | { error: string };
  at: Date;
}

export interface MetricsEngineOptions {
  trust: CustomCaTrust;
  scalerTimeoutMs: number;
  log: Logger;
  /** Short-lived service-account tokens; absent when the feature is off. */
  tokens?: TokenSource;
  /** Poll every object per its pollingInterval (the operator does; tests of queries alone may not). */
  poll?: boolean;
  /** The workloads' replica counts (a cluster); without them only the static fallback of AverageValue metrics is answered. */
  workloads?: Workloads;
  /** The cluster's Pods (kubernetes-workload triggers); absent without a cluster. */
  pods?: PodCounter;
  /** Where `*FromEnv` values come from; absent without a cluster (such triggers then fail to build, saying why). */
  podTemplates?: PodTemplates;
}

/** A ScaledObject's workload as the fallback needs it; undefined when it cannot be read. */
export interface Workloads {
  replicas(so: ScaledObject): Promise<number | undefined>;
  readyReplicas(so: ScaledObject): Promise<number | undefined>;
}

interface TriggerState {
  trigger: Trigger;
  index: number;
  scaler?: Scaler;
  buildError?: string;
  last?: { value: number; at: number };
  error?: string;
  failures: number;
  /** Rebuild before the next use (scaler failed). */
  stale: boolean;
  /** The fallback value was last answered for it (to log when that starts and stops). */
  fallingBack?: boolean;
  /** Why the fallback could not be answered, as last logged (said once, not on every query). */
  fallbackBlocked?: string;
}

interface ObjectState {
  key: string;
  so: ScaledObject;
  /** What the scalers were built from: dependencyKey -> its version then (undefined: absent). */
  deps: Map<string, string | undefined>;
  triggers: TriggerState[];
  /** When a token in some trigger's authentication is due for renewal. */
  refreshAt: number;
  building: Promise<void> | undefined;
  timer: NodeJS.Timeout | undefined;
  polling: Promise<PollReport> | undefined;
  report: PollReport | undefined;
  /** advanced.scalingModifiers' formula, compiled (the webhook and the store checked it). */
  formula?: Formula;
}

const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;

function metricList(metricName: string, value: number): ExternalMetricValueList {
  return { metadata: {}, items: [{ metricName, metricLabels: {}, timestamp: toWireTime(new Date()), value: { string: formatQuantity(quantityFromNumber(value)) } }] };
}

export class MetricsEngine implements MetricsHandler {
  private readonly objects = new Map<string, ObjectState>();
  /** dependencyKey -> the objects built from it. */
  private readonly dependents = new Map<string, Set<string>>();
  private readonly listeners: ((report: PollReport) => void)[] = [];
  private readonly log: Logger;
  private closed = false;

  constructor(
    private readonly store: ScaledObjectStore,
    private readonly opts: MetricsEngineOptions,
  ) {
    this.log = opts.log;
    store.onChange(() => this.sync());
  }

  /** Called after every poll of every object. */
  onPoll(listener: (report: PollReport) => void): void {
    this.listeners.push(listener);
  }

  /** The last poll of an object, if any. */
  lastReport(namespace: string, name: string): PollReport | undefined {
    return this.objects.get(keyOf(namespace, name))?.report;
  }

  async getMetrics(ref: ScaledObjectRef, signal: AbortSignal): Promise<ExternalMetricValueList> {
    const so = this.store.get(ref.namespace, ref.name);
    if (!so) throw new ChannelError(status.NOT_FOUND, `scaledobject ${ref.namespace}/${ref.name} not found`);
    const state = await this.ready(so);
    if (ref.metricName === COMPOSITE_METRIC_NAME && state.formula) return metricList(ref.metricName, await this.composite(state, signal));
    const t = state.triggers.find((x) => (x.scaler ? x.scaler.metricName === ref.metricName : ref.metricName.startsWith(`s${x.index}-`)));
    if (!t) {
      const names = state.triggers.map((x) => x.scaler?.metricName ?? `s${x.index}-*`).join(', ');
      throw new ChannelError(status.NOT_FOUND, `scaledobject ${ref.namespace}/${ref.name} has no metric "${ref.metricName}" (its metrics: ${names || 'none'})`);
    }
    if (!t.scaler) throw new ChannelError(status.FAILED_PRECONDITION, `scaledobject ${ref.namespace}/${ref.name}: ${t.buildError ?? 'scaler not built'}`);
    let value: number;
    if (t.trigger.useCachedMetrics && t.last && !t.error) {
      value = t.last.value;
    } else {
      const read = await this.read(state, t, signal);
      if ('error' in read) {
        const fallback = await this.fallbackValue(state, t, read.error, t.scaler.targetValue, t.trigger.metricType === 'Value' ? 'Value' : 'AverageValue');
        if (fallback === undefined) throw new ChannelError(status.UNKNOWN, read.error);
        value = fallback;
      } else value = read.value;
    }
    return metricList(ref.metricName, value);
  }

  /**
   * KEDA's composite metric: every trigger's value (from the last poll for useCachedMetrics
   * triggers, else read now), named by trigger name, through the formula. A trigger that fails
   * fails the formula, unless it is past the fallback threshold: then the fallback answers for the
   * composite metric, against scalingModifiers' target.
   */
  private async composite(state: ObjectState, signal: AbortSignal): Promise<number> {
    const values: Record<string, number> = {};
    const failed: { t: TriggerState; error: string }[] = [];
    await Promise.all(
      state.triggers.map(async (t) => {
        if (!t.scaler) {
          failed.push({ t, error: t.buildError ?? `trigger ${t.index}: scaler not built` });
          return;
        }
        const read: { value: number } | { error: string } = t.trigger.useCachedMetrics && t.last && !t.error ? { value: t.last.value } : await this.read(state, t, signal);
        if ('error' in read) failed.push({ t, error: read.error });
        else if (t.trigger.name !== undefined) values[t.trigger.name] = read.value;
      }),
    );
    if (failed.length > 0) {
      const modifiers = state.so.spec.advanced!.scalingModifiers!;
      for (const { t, error } of failed) {
        const fallback = await this.fallbackValue(state, t, error, modifiers.target, modifiers.metricType);
        if (fallback !== undefined) return fallback;
      }
      throw new ChannelError(status.UNKNOWN, failed.map((f) => f.error).join('; '));
    }
    try {
      return state.formula!.evaluate(values);
    } catch (err) {
      throw new ChannelError(status.UNKNOWN, `scalingModifiers formula: ${(err as Error).message}`);
    }
  }

  /** The formula over the last poll's values, for activity (no upstream is asked). */
  private compositeOfLastValues(state: ObjectState): { value: number } | { error: string } {
    const values: Record<string, number> = {};
    for (const t of state.triggers) {
      if (t.error !== undefined || !t.last) return { error: t.error ?? t.buildError ?? `trigger ${t.index}: no value yet` };
      if (t.trigger.name !== undefined) values[t.trigger.name] = t.last.value;
    }
    try {
      return { value: state.formula!.evaluate(values) };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  /** Builds (if needed, and again where a build failed) and describes an object's triggers, without asking any upstream. */
  async describe(so: ScaledObject): Promise<TriggerReport[]> {
    const state = await this.ready(so, true);
    return state.triggers.map((t) => this.triggerReport(t, state.so));
  }

  /** The objects (`namespace/name`) whose scalers were built from this dependency (see dependencyKey). */
  dependentsOf(key: string): string[] {
    return [...(this.dependents.get(key) ?? [])];
  }

  /** Polls one object now (coalesced with a poll already running). */
  poll(namespace: string, name: string): Promise<PollReport | undefined> {
    const so = this.store.get(namespace, name);
    if (!so) return Promise.resolve(undefined);
    return this.pollObject(so);
  }

  close(): void {
    this.closed = true;
    for (const state of this.objects.values()) this.drop(state);
  }

  // --- building -------------------------------------------------------------------------------

  private async ready(so: ScaledObject, retryFailedBuilds = false): Promise<ObjectState> {
    const key = keyOf(so.namespace, so.name);
    let state = this.objects.get(key);
    if (state && state.so.uid !== so.uid) {
      this.drop(state);
      state = undefined;
    }
    if (!state) {
      state = { key, so, deps: new Map(), triggers: [], refreshAt: Infinity, building: undefined, timer: undefined, polling: undefined, report: undefined };
      this.objects.set(key, state);
      this.schedule(state);
    }
    if (this.needsBuild(state, so) || (retryFailedBuilds && state.triggers.some((t) => t.buildError !== undefined))) {
      const s = state;
      s.building ??= this.build(s, so).finally(() => (s.building = undefined));
      await s.building;
    }
    return state;
  }

  private needsBuild(state: ObjectState, so: ScaledObject): boolean {
    return (
      state.so.generation !== so.generation ||
      [...state.deps].some(([key, version]) => this.dependencyVersion(key) !== version) ||
      state.triggers.length === 0 ||
      Date.now() >= state.refreshAt ||
      state.triggers.some((t) => t.stale)
    );
  }

  private async build(state: ObjectState, so: ScaledObject): Promise<void> {
    // Versions are taken before reading, so a change during the build means another build.
    const deps = new Map<string, string | undefined>();
    const use = (key: string) => void (deps.has(key) || deps.set(key, this.dependencyVersion(key)));
    const recorded: EnvironmentReader & Parameters<typeof resolveAuth>[0] = {
      lookupAuth: (namespace: string, ref: AuthenticationRef): AuthLookup => {
        use(dependencyKey(ref.kind ?? 'TriggerAuthentication', namespace, ref.name));
        return this.store.lookupAuth(namespace, ref);
      },
      readSecret: (namespace: string, name: string) => {
        use(dependencyKey('Secret', namespace, name));
        return this.store.readSecret(namespace, name);
      },
      readConfigMap: (namespace: string, name: string) => {
        use(dependencyKey('ConfigMap', namespace, name));
        if (!this.store.readConfigMap) throw new EnvironmentError('ConfigMaps are read only in a cluster');
        return this.store.readConfigMap(namespace, name);
      },
    };
    // One container environment for all the object's triggers, read when one needs it.
    let env: Promise<ContainerEnvironment> | undefined;
    const environment = () => (env ??= this.environment(so, recorded, use));
    const sameSpec = state.so.generation === so.generation && state.triggers.length === so.spec.triggers.length;
    let refreshAt = Infinity;
    const triggers = await Promise.all(
      so.spec.triggers.map(async (trigger, index): Promise<TriggerState> => {
        const old = sameSpec ? state.triggers[index] : undefined;
        const next: TriggerState = { trigger, index, failures: old?.failures ?? 0, stale: false, ...(old?.last ? { last: old.last } : {}), ...(old?.error ? { error: old.error } : {}), ...(old?.fallingBack ? { fallingBack: true } : {}), ...(old?.fallbackBlocked ? { fallbackBlocked: old.fallbackBlocked } : {}) };
        try {
          const auth = trigger.authenticationRef ? await resolveAuth(recorded, this.opts.tokens, so.namespace, trigger.authenticationRef) : { params: {} };
          if (auth.refreshAt !== undefined) refreshAt = Math.min(refreshAt, auth.refreshAt);
          const context = { triggerIndex: index, trigger, auth: auth.params, trust: this.opts.trust, timeoutMs: this.opts.scalerTimeoutMs, log: this.log, namespace: so.namespace };
          next.scaler = createScaler({ ...context, ...(this.opts.pods ? { pods: this.opts.pods } : {}), ...(usesEnvironment(trigger) ? { env: await environment() } : {}) });
        } catch (err) {
          next.buildError = `trigger ${index} (${trigger.type}): ${(err as Error).message}`;
          this.log.warn({ scaledObject: state.key, reason: next.buildError }, 'cannot build scaler');
        }
        // A value from before a spec change may mean something else now.
        if (!sameSpec || next.scaler?.metricName !== old?.scaler?.metricName) {
          delete next.last;
          delete next.error;
          delete next.fallingBack;
          delete next.fallbackBlocked;
          next.failures = 0;
        }
        return next;
      }),
    );
    for (const t of state.triggers) t.scaler?.close();
    if (this.closed) {
      for (const t of triggers) t.scaler?.close();
      return;
    }
    const intervalChanged = state.so.spec.pollingInterval !== so.spec.pollingInterval;
    this.index(state.key, state.deps, deps);
    const modifiers = so.spec.advanced?.scalingModifiers;
    Object.assign(state, { so, deps, triggers, refreshAt, formula: modifiers ? compileFormula(modifiers.formula, formulaNames(so.spec.triggers)) : undefined });
    if (intervalChanged) this.schedule(state);
  }

  private async environment(so: ScaledObject, reader: EnvironmentReader, use: (key: string) => void): Promise<ContainerEnvironment> {
    const templates = this.opts.podTemplates;
    if (!templates) throw new EnvironmentError('*FromEnv reads the workload\'s environment, which is read only in a cluster: give the value itself');
    const template = await templates.read(so, use);
    return resolveEnvironment(reader, so.namespace, template.spec, template.containerName, template.workload);
  }

  /** What a dependency is now: workloads' pod templates are versioned by their source, the rest by the store. */
  private dependencyVersion(key: string): string | undefined {
    return key.startsWith('Workload/') ? this.opts.podTemplates?.version(key) : this.store.dependencyVersion(key);
  }

  // --- reading --------------------------------------------------------------------------------

  private async read(state: ObjectState, t: TriggerState, signal: AbortSignal): Promise<{ value: number } | { error: string }> {
    const scaler = t.scaler!;
    try {
      const value = await scaler.getMetricValue(signal);
      t.last = { value, at: Date.now() };
      delete t.error;
      t.failures = 0;
      delete t.fallbackBlocked;
      if (t.fallingBack) {
        t.fallingBack = false;
        this.log.info({ scaledObject: state.key, metric: scaler.metricName }, 'trigger recovered: fallback over');
      }
      return { value };
    } catch (err) {
      const error = err instanceof ScalerError ? err.message : `scaler failed: ${(err as Error).message}`;
      // An abort by the caller says nothing about the upstream.
      if (!signal.aborted) {
        t.error = error;
        t.failures++;
        t.stale = true;
        this.log.warn({ scaledObject: state.key, metric: scaler.metricName, reason: error }, 'scaler error');
      }
      return { error };
    }
  }

  /**
   * KEDA's fallback: the value that makes the HPA settle on the fallback replica count, once the
   * trigger failed more than failureThreshold times in a row. An AverageValue metric is
   * replicas x target (the HPA divides by the target); a Value metric is divided by the ready
   * replicas as well (the HPA multiplies by them), so it needs at least one ready replica.
   */
  private async fallbackValue(state: ObjectState, t: TriggerState, error: string, target: number, metricType: 'AverageValue' | 'Value'): Promise<number | undefined> {
    const fb = state.so.spec.fallback;
    if (!fb || !t.scaler || t.failures <= fb.failureThreshold) return undefined;
    const why = (reason: string) => {
      if (t.fallbackBlocked !== reason) this.log.warn({ scaledObject: state.key, metric: t.scaler!.metricName, reason }, 'fallback not possible');
      t.fallbackBlocked = reason;
      return undefined;
    };
    // The static behaviour needs no read of the workload.
    const current = fb.behavior === 'static' ? 0 : await this.opts.workloads?.replicas(state.so).catch(() => undefined);
    if (current === undefined) return why(`fallback.behavior ${fb.behavior} needs the workload's current replica count, which cannot be read`);
    let replicas = fallbackReplicas(fb, current);
    if (metricType === 'Value') {
      const ready = await this.opts.workloads?.readyReplicas(state.so).catch(() => undefined);
      if (!ready) return why('a Value metric falls back only while the workload has ready replicas (status.readyReplicas)');
      replicas /= ready;
    }
    delete t.fallbackBlocked;
    if (!t.fallingBack) {
      t.fallingBack = true;
      this.log.warn({ scaledObject: state.key, metric: t.scaler.metricName, failures: t.failures, behavior: fb.behavior, replicas, reason: error }, 'trigger failing: answering with the fallback');
    }
    return replicas * target;
  }

  private triggerReport(t: TriggerState, so: ScaledObject): TriggerReport {
    const threshold = so.spec.fallback?.failureThreshold;
    const r: TriggerReport = {
      index: t.index,
      type: t.trigger.type,
      metricType: t.trigger.metricType ?? 'AverageValue',
      cached: t.trigger.useCachedMetrics === true,
      failures: t.failures,
      fallback: t.scaler !== undefined && threshold !== undefined && t.failures > threshold,
    };
    if (t.scaler) {
      r.metricName = t.scaler.metricName;
      r.targetValue = t.scaler.targetValue;
    }
    if (t.buildError !== undefined) r.buildError = t.buildError;
    if (t.last) {
      r.value = t.last.value;
      r.active = t.scaler ? t.scaler.isActive(t.last.value) : false;
    }
    if (t.error !== undefined) r.error = t.error;
    return r;
  }

  // --- polling --------------------------------------------------------------------------------

  private pollObject(so: ScaledObject): Promise<PollReport> {
    const key = keyOf(so.namespace, so.name);
    const existing = this.objects.get(key);
    if (existing?.polling) return existing.polling;
    const run = (async () => {
      const state = await this.ready(so);
      // A cleared timer, not AbortSignal.timeout: that one fires, and builds a DOMException with
      // its stack, for every poll of every object, long after the poll ended.
      const deadline = new AbortController();
      const timer = setTimeout(() => deadline.abort(), this.opts.scalerTimeoutMs + 1000);
      try {
        await Promise.all(state.triggers.filter((t) => t.scaler).map((t) => this.read(state, t, deadline.signal)));
      } finally {
        clearTimeout(timer);
      }
      const triggers = state.triggers.map((t) => this.triggerReport(t, state.so));
      const modifiers = state.so.spec.advanced?.scalingModifiers;
      const composite = modifiers ? this.compositeOfLastValues(state) : undefined;
      const report: PollReport = {
        namespace: so.namespace,
        name: so.name,
        generation: state.so.generation,
        pollingInterval: state.so.spec.pollingInterval,
        triggers,
        active: modifiers ? composite !== undefined && 'value' in composite && composite.value > modifiers.activationTarget : triggers.some((t) => t.error === undefined && t.active === true),
        ...(composite ? { composite } : {}),
        at: new Date(),
      };
      state.report = report;
      for (const l of this.listeners) {
        try {
          l(report);
        } catch (err) {
          this.log.error({ scaledObject: key, err: (err as Error).message }, 'a poll listener failed');
        }
      }
      return report;
    })();
    const state = this.objects.get(key);
    const tracked = run.finally(() => {
      const s = this.objects.get(key);
      if (s) s.polling = undefined;
    });
    if (state) state.polling = tracked;
    return tracked;
  }

  private schedule(state: ObjectState): void {
    if (!this.opts.poll || this.closed) return;
    if (state.timer) clearTimeout(state.timer);
    const intervalMs = state.so.spec.pollingInterval * 1000;
    // The first poll within 5 s (a value soon after a start), the second anywhere within one
    // interval, then one per interval: objects started together (a thousand after a restart) poll
    // spread over the interval instead of together in one 5 s window every interval.
    const first = state.report ? intervalMs : Math.floor(Math.random() * Math.min(intervalMs, 5000));
    let spread = state.report === undefined;
    const tick = (delay: number) => {
      state.timer = setTimeout(() => {
        const so = this.store.get(state.so.namespace, state.so.name);
        if (!so || this.closed) return;
        this.pollObject(so)
          .catch((err: unknown) => this.log.error({ scaledObject: state.key, err: (err as Error).message }, 'poll failed'))
          .finally(() => {
            const next = so.spec.pollingInterval * 1000;
            if (this.objects.get(state.key) === state) tick(spread ? Math.ceil(Math.random() * next) : next);
            spread = false;
          });
      }, delay);
      state.timer.unref();
    };
    tick(first);
  }

  /** The store changed: forget removed objects, start polling new ones; changed ones rebuild on next use. */
  private sync(): void {
    if (this.closed) return;
    const present = new Set<string>();
    for (const so of this.store.list()) {
      const key = keyOf(so.namespace, so.name);
      present.add(key);
      const state = this.objects.get(key);
      if (state && state.so.uid !== so.uid) this.drop(state);
      if (this.opts.poll && !this.objects.has(key)) {
        void this.ready(so).catch((err: unknown) => this.log.error({ scaledObject: key, err: (err as Error).message }, 'cannot prepare scaled object'));
      }
    }
    for (const [key, state] of this.objects) if (!present.has(key)) this.drop(state);
  }

  /** Forgets an object: its timer stops and its scalers close. */
  private drop(state: ObjectState): void {
    this.objects.delete(state.key);
    this.index(state.key, state.deps, new Map());
    if (state.timer) clearTimeout(state.timer);
    state.timer = undefined;
    for (const t of state.triggers) t.scaler?.close();
  }

  private index(key: string, before: ReadonlyMap<string, unknown>, after: ReadonlyMap<string, unknown>): void {
    for (const dep of before.keys()) {
      if (after.has(dep)) continue;
      const set = this.dependents.get(dep);
      set?.delete(key);
      if (set?.size === 0) this.dependents.delete(dep);
    }
    for (const dep of after.keys()) {
      let set = this.dependents.get(dep);
      if (!set) this.dependents.set(dep, (set = new Set()));
      set.add(key);
    }
  }
}
