// The ScaledJob controller: every ScaledJob's triggers polled per its pollingInterval (by a
// MetricsEngine of its own: the same scalers, authentication and token handling as ScaledObjects),
// and on each poll KEDA's decision (src/operator/scaledjobs/decide.ts) turned into Jobs created
// from jobTargetRef, owned by the ScaledJob. The Jobs and their Pods are watched (by the
// `scaledjob.keda.sh/name` label KEDA puts on both), so counting running and pending Jobs reads
// memory, not the API server; finished Jobs beyond the history limits are deleted; a spec change
// deletes the Jobs of earlier generations unless rollout.strategy is gradual. Only the leader
// writes. Status: Ready, Active, Paused and FullySupported conditions and lastActiveTime, written
// when they change.
import type { Logger } from 'pino';
import type { KubeClient } from '../../k8s/client.js';
import type { EventRecorder } from '../../k8s/events.js';
import { informer, type Informer, type InformerEvent } from '../../k8s/informer.js';
import { describeApiError, statusCodeOf } from '../../k8s/kubeconfig.js';
import { metaTime, type KubeObject } from '../../k8s/types.js';
import type { ScalingMetrics } from '../../observability/metrics.js';
import { MetricsEngine, type MetricsEngineOptions, type PollReport } from '../metrics-engine.js';
import type { ClusterScaledObjectStore } from '../scaledobjects/cluster-store.js';
import { KEDA_API_VERSION } from '../scaledobjects/manifest.js';
import { EnvironmentError, type PodTemplates } from '../scaledobjects/resolve-env.js';
import type { AuthenticationRef, ScaledObject, ScaledObjectStore } from '../scaledobjects/types.js';
import { activityVerdict, conditionBuilder, statusDiffers, supportedVerdict, type Verdict } from '../scaling/status.js';
import { decide, type JobCounts } from './decide.js';
import { scaledJobFromApi } from './manifest.js';
import type { ScaledJob } from './types.js';

export const SCALED_JOB_LABEL = 'scaledjob.keda.sh/name';
const GENERATION_ANNOTATION = 'scaledjob.keda.sh/generation';
/** KEDA's annotation: labels of the ScaledJob not copied to its Jobs (comma-separated). */
const EXCLUDED_LABELS_ANNOTATION = 'scaledjob.keda.sh/job-excluded-labels';
/** A Job created but not yet seen by the watch still counts as running, for this long at most. */
const EXPECTATION_MS = 30_000;

interface Record_ {
  raw: KubeObject & { status?: Record<string, unknown> };
  job?: ScaledJob;
  error?: string;
}

/** What is kept of a Job. */
interface JobView {
  name: string;
  scaledJob: string;
  generation: number;
  finished?: 'Complete' | 'Failed';
  finishedAt: string;
  created: string;
}

/** What is kept of a Pod of such a Job. */
interface PodView {
  job: string;
  phase: string;
  conditions: Record<string, string>;
}

interface JobState {
  ready?: Verdict;
  /** The last poll's activity; undefined before the first. */
  wasActive?: boolean;
  /** The last poll that found the ScaledJob active. */
  lastActive?: number;
  /** status.lastActiveTime: moved when activity starts and when it ends, as for ScaledObjects. */
  lastActiveShown?: number;
  /** The status last written, to skip writes that change nothing. */
  written?: Record<string, unknown>;
}

export interface ScaledJobControllerOptions {
  client: KubeClient;
  /** The ScaledObject store, for TriggerAuthentications and Secrets (watched once, for both kinds). */
  auth: ClusterScaledObjectStore;
  engine: Omit<MetricsEngineOptions, 'poll' | 'workloads'>;
  events: EventRecorder;
  log: Logger;
  metrics?: ScalingMetrics;
  /** '' for all namespaces. */
  watchNamespace: string;
}

const keyOf = (namespace: string, name: string) => `${namespace}/${name}`;

export class ScaledJobController {
  private readonly records = new Map<string, Record_>();
  /** By ScaledJob key: its Jobs, by name. */
  private readonly jobs = new Map<string, Map<string, JobView>>();
  /** By `namespace/job name`: the Pods of ScaledJobs' Jobs, by Pod name. */
  private readonly pods = new Map<string, Map<string, PodView>>();
  /** By ScaledJob key: its Jobs created and not yet seen by the watch, by name -> when. */
  private readonly expected = new Map<string, Map<string, number>>();
  private readonly busy = new Set<string>();
  private readonly informers: Informer<KubeObject>[] = [];
  private readonly storeListeners: (() => void)[] = [];
  private readonly engine: MetricsEngine;
  private readonly state = new Map<string, JobState>();
  private leading = false;

  constructor(private readonly o: ScaledJobControllerOptions) {
    this.engine = new MetricsEngine(this.engineStore(), { ...o.engine, poll: true, podTemplates: this.podTemplates() });
    this.engine.onPoll((report) => void this.onPoll(report));
  }

  async start(): Promise<void> {
    const ns = this.o.watchNamespace;
    const collection = (prefix: string, plural: string) => `${prefix}/${ns ? `namespaces/${ns}/` : ''}${plural}`;
    const watch = (path: string, name: string, onObject: (obj: KubeObject, event: InformerEvent) => void, extra: { labelSelector?: string; transform?: (o: KubeObject) => KubeObject } = {}) => {
      const i = informer<KubeObject>({ client: this.o.client, path, name, log: this.o.log, ...extra });
      i.onObject(onObject);
      this.informers.push(i);
      return i;
    };
    await Promise.all([
      watch(collection('/apis/batch/v1', 'jobs'), 'scaledjob jobs', (o, e) => this.onJob(o, e), { labelSelector: SCALED_JOB_LABEL, transform: keepJob }).start(),
      watch(collection('/api/v1', 'pods'), 'scaledjob pods', (o, e) => this.onPod(o, e), { labelSelector: SCALED_JOB_LABEL, transform: keepPod }).start(),
    ]);
    await watch(collection(`/apis/${KEDA_API_VERSION}`, 'scaledjobs'), 'scaledjobs', (o, e) => this.onScaledJob(o, e)).start();
  }

  setLeading(leading: boolean): void {
    this.leading = leading;
    if (leading) for (const key of this.records.keys()) void this.reconcile(key);
  }

  async close(): Promise<void> {
    this.engine.close();
    await Promise.all(this.informers.map((i) => i.stop()));
  }

  /** The ScaledJobs' counterpart of the ScaledObject store, for the engine: triggers and polling only. */
  private engineStore(): ScaledObjectStore {
    const asScaledObject = (job: ScaledJob): ScaledObject => ({
      namespace: job.namespace,
      name: job.name,
      uid: job.uid,
      generation: job.generation,
      spec: { scaleTargetRef: { name: '' }, pollingInterval: job.spec.pollingInterval, cooldownPeriod: 0, initialCooldownPeriod: 0, minReplicaCount: job.spec.minReplicaCount, maxReplicaCount: job.spec.maxReplicaCount, triggers: job.spec.triggers },
      unsupported: [],
    });
    const served = new Map<string, ScaledObject>();
    const view = (key: string) => {
      const job = this.records.get(key)?.job;
      if (!job) return undefined;
      let so = served.get(key);
      if (so?.uid !== job.uid || so.generation !== job.generation) served.set(key, (so = asScaledObject(job)));
      return so;
    };
    return {
      get: (namespace, name) => view(keyOf(namespace, name)),
      list: () => [...this.records.keys()].flatMap((k) => view(k) ?? []),
      lookupAuth: (namespace: string, ref: AuthenticationRef) => this.o.auth.lookupAuth(namespace, ref),
      readSecret: (namespace, name) => this.o.auth.readSecret(namespace, name),
      readConfigMap: (namespace, name) => this.o.auth.readConfigMap(namespace, name),
      dependencyVersion: (key) => this.o.auth.dependencyVersion(key),
      onDependencyChange: (l) => this.o.auth.onDependencyChange(l),
      onChange: (l) => void this.storeListeners.push(l),
      start: () => Promise.resolve(),
      close: () => Promise.resolve(),
    };
  }

  /** `*FromEnv` reads the container of the ScaledJob's own Job template: versioned by the ScaledJob's generation. */
  private podTemplates(): PodTemplates {
    return {
      read: (so) => {
        const job = this.records.get(keyOf(so.namespace, so.name))?.job;
        const workload = `ScaledJob ${so.namespace}/${so.name} jobTargetRef`;
        if (!job) return Promise.reject(new EnvironmentError(`${workload}: the ScaledJob is gone`));
        const template = job.spec.jobTargetRef.template as { spec?: unknown } | undefined;
        return Promise.resolve({ spec: template?.spec, workload, ...(job.spec.envSourceContainerName ? { containerName: job.spec.envSourceContainerName } : {}) });
      },
      version: () => undefined,
    };
  }

  // --- watches --------------------------------------------------------------------------------

  private onScaledJob(obj: KubeObject, event: InformerEvent): void {
    const key = keyOf(obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
    if (event === 'delete') {
      this.records.delete(key);
      this.state.delete(key);
      this.expected.delete(key);
    } else {
      const prev = this.records.get(key);
      const rec: Record_ = { raw: obj };
      try {
        const m = scaledJobFromApi(obj);
        rec.job = Object.freeze({ ...m, uid: obj.metadata?.uid ?? '', generation: obj.metadata?.generation ?? 0 });
      } catch (err) {
        rec.error = (err as Error).message;
        this.o.log.warn({ scaledJob: key, reason: rec.error }, 'invalid ScaledJob: not served');
      }
      this.records.set(key, rec);
      const changed = !prev || prev.raw.metadata?.generation !== obj.metadata?.generation || JSON.stringify(prev.raw.metadata?.annotations) !== JSON.stringify(obj.metadata?.annotations);
      if (!changed) return;
      void this.reconcile(key);
    }
    for (const l of this.storeListeners) l();
  }

  private onJob(obj: KubeObject, event: InformerEvent): void {
    const m = obj.metadata ?? {};
    const owner = m.labels?.[SCALED_JOB_LABEL];
    if (!owner || !m.name) return;
    const key = keyOf(m.namespace ?? '', owner);
    this.expected.get(key)?.delete(m.name);
    let jobs = this.jobs.get(key);
    if (event === 'delete') {
      jobs?.delete(m.name);
      return;
    }
    if (!jobs) this.jobs.set(key, (jobs = new Map()));
    const status = (obj as { status?: { conditions?: { type: string; status: string; lastTransitionTime?: string }[]; completionTime?: string } }).status;
    const done = status?.conditions?.find((c) => (c.type === 'Complete' || c.type === 'Failed') && c.status === 'True');
    jobs.set(m.name, {
      name: m.name,
      scaledJob: owner,
      generation: Number(m.annotations?.[GENERATION_ANNOTATION] ?? 0),
      ...(done ? { finished: done.type as 'Complete' | 'Failed' } : {}),
      finishedAt: status?.completionTime ?? done?.lastTransitionTime ?? m.creationTimestamp ?? '',
      created: m.creationTimestamp ?? '',
    });
  }

  private onPod(obj: KubeObject, event: InformerEvent): void {
    const m = obj.metadata ?? {};
    const job = m.labels?.['job-name'] ?? m.labels?.['batch.kubernetes.io/job-name'];
    if (!job || !m.name) return;
    const key = keyOf(m.namespace ?? '', job);
    let pods = this.pods.get(key);
    if (event === 'delete') {
      pods?.delete(m.name);
      if (pods?.size === 0) this.pods.delete(key);
      return;
    }
    if (!pods) this.pods.set(key, (pods = new Map()));
    const status = (obj as { status?: { phase?: string; conditions?: { type: string; status: string }[] } }).status;
    pods.set(m.name, { job, phase: status?.phase ?? '', conditions: Object.fromEntries((status?.conditions ?? []).map((c) => [c.type, c.status])) });
  }

  // --- acting ---------------------------------------------------------------------------------

  /** A ScaledJob created or changed: the rollout of a new generation, and its status. */
  private async reconcile(key: string): Promise<void> {
    if (!this.leading) return;
    const rec = this.records.get(key);
    if (!rec) return;
    try {
      if (rec.job && rec.job.spec.rollout.strategy === 'default') await this.deleteEarlierGenerations(rec.job);
      const s = this.stateOf(key);
      s.ready = rec.job ? (s.ready ?? { status: 'True', reason: 'ScaledJobReady', message: 'ScaledJob is defined correctly and is ready for scaling' }) : { status: 'False', reason: 'ScaledJobCheckFailed', message: rec.error ?? 'invalid' };
      await this.writeStatus(key, rec);
    } catch (err) {
      this.o.log.warn({ scaledJob: key, reason: describeApiError(err) }, 'reconcile failed');
    }
  }

  private async onPoll(report: PollReport): Promise<void> {
    const key = keyOf(report.namespace, report.name);
    const rec = this.records.get(key);
    const job = rec?.job;
    if (!this.leading || !job || job.generation !== report.generation || rec.raw.metadata?.deletionTimestamp || this.busy.has(key)) return;
    this.busy.add(key);
    try {
      const usable = report.triggers.filter((t) => t.error === undefined && t.value !== undefined && t.targetValue !== undefined);
      const failing = report.triggers.filter((t) => t.error !== undefined || t.buildError !== undefined);
      const decision = decide(job.spec, usable.map((t) => ({ value: t.value!, target: t.targetValue!, active: t.active === true })), this.counts(job));
      const s = this.stateOf(key);
      s.ready =
        failing.length === 0 ? { status: 'True', reason: 'ScaledJobReady', message: 'ScaledJob is defined correctly and is ready for scaling' }
        : decision.active ? { status: 'Unknown', reason: 'PartialTriggerError', message: `Some triggers defined in ScaledJob are not working correctly: ${failing.map((t) => t.error ?? t.buildError).join('; ')}` }
        : { status: 'False', reason: 'TriggerError', message: `Triggers defined in ScaledJob are not working correctly: ${failing.map((t) => t.error ?? t.buildError).join('; ')}` };
      if (decision.active) s.lastActive = Date.now();
      if (decision.active !== s.wasActive && (decision.active || s.lastActive !== undefined)) s.lastActiveShown = s.lastActive;
      s.wasActive = decision.active;
      if (decision.active && !job.paused && decision.create > 0) await this.createJobs(job, decision.create);
      await this.cleanUp(job);
      await this.writeStatus(key, rec);
    } catch (err) {
      this.o.log.warn({ scaledJob: key, reason: describeApiError(err) }, 'acting on a poll failed');
    } finally {
      this.busy.delete(key);
    }
  }

  private counts(job: ScaledJob): JobCounts {
    const now = Date.now();
    let running = 0;
    let pending = 0;
    const seen = this.jobs.get(keyOf(job.namespace, job.name)) ?? new Map<string, JobView>();
    for (const j of seen.values()) {
      if (j.finished) continue;
      running++;
      if (this.isPending(job, j)) pending++;
    }
    // Created, not seen yet: running and pending. The watch may have delivered a Job before its
    // create call returned (and so before it was expected): one already seen is not counted twice.
    const expected = this.expected.get(keyOf(job.namespace, job.name)) ?? new Map<string, number>();
    for (const [name, at] of expected) {
      if (seen.has(name) || now - at > EXPECTATION_MS) expected.delete(name);
      else {
        running++;
        pending++;
      }
    }
    return { running, pending };
  }

  /** KEDA's rule: without pendingPodConditions, pending until a Pod runs or succeeded; with them, until a Pod has them all True. */
  private isPending(job: ScaledJob, j: JobView): boolean {
    const pods = [...(this.pods.get(keyOf(job.namespace, j.name))?.values() ?? [])];
    const wanted = job.spec.scalingStrategy.pendingPodConditions;
    if (wanted.length === 0) return !pods.some((p) => p.phase === 'Running' || p.phase === 'Succeeded');
    return !pods.some((p) => wanted.every((c) => p.conditions[c] === 'True'));
  }

  private async createJobs(job: ScaledJob, count: number): Promise<void> {
    const body = jobFor(job);
    let created = 0;
    for (let i = 0; i < count; i++) {
      try {
        const res = await this.o.client.post<KubeObject>(`/apis/batch/v1/namespaces/${job.namespace}/jobs`, body);
        this.o.metrics?.apiWrites.inc({ resource: 'jobs', verb: 'create' });
        if (res.metadata?.name) {
          const key = keyOf(job.namespace, job.name);
          let expected = this.expected.get(key);
          if (!expected) this.expected.set(key, (expected = new Map()));
          expected.set(res.metadata.name, Date.now());
        }
        created++;
      } catch (err) {
        this.o.log.warn({ scaledJob: keyOf(job.namespace, job.name), reason: describeApiError(err) }, 'cannot create a Job');
        this.event(job, 'Warning', 'KEDAJobCreateFailed', `Failed to create job ${job.name}-: ${describeApiError(err)}`);
        break;
      }
    }
    if (created === 0) return;
    this.o.log.info({ scaledJob: keyOf(job.namespace, job.name), jobs: created }, 'jobs created');
    this.event(job, 'Normal', 'KEDAJobsCreated', `Created ${created} jobs`);
  }

  /** Finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit, oldest first. */
  private async cleanUp(job: ScaledJob): Promise<void> {
    const all = [...(this.jobs.get(keyOf(job.namespace, job.name))?.values() ?? [])];
    for (const [kind, limit] of [['Complete', job.spec.successfulJobsHistoryLimit], ['Failed', job.spec.failedJobsHistoryLimit]] as const) {
      const finished = all.filter((j) => j.finished === kind).sort((a, b) => a.finishedAt.localeCompare(b.finishedAt));
      for (const j of finished.slice(0, Math.max(0, finished.length - limit))) await this.deleteJob(job, j, 'Background', `beyond the ${kind === 'Complete' ? 'successful' : 'failed'} jobs history limit (${limit})`);
    }
  }

  private async deleteEarlierGenerations(job: ScaledJob): Promise<void> {
    const jobs = [...(this.jobs.get(keyOf(job.namespace, job.name))?.values() ?? [])];
    const policy = job.spec.rollout.propagationPolicy === 'foreground' ? 'Foreground' : 'Background';
    for (const j of jobs) if (j.generation < job.generation) await this.deleteJob(job, j, policy, `of generation ${j.generation}, before ${job.generation} (rollout.strategy default)`);
  }

  private async deleteJob(job: ScaledJob, j: JobView, propagationPolicy: 'Background' | 'Foreground', why: string): Promise<void> {
    try {
      await this.o.client.delete(`/apis/batch/v1/namespaces/${job.namespace}/jobs/${j.name}`, { body: { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy } });
      this.o.metrics?.apiWrites.inc({ resource: 'jobs', verb: 'delete' });
      this.o.log.info({ scaledJob: keyOf(job.namespace, job.name), job: j.name, reason: why }, 'job deleted');
    } catch (err) {
      if (statusCodeOf(err) !== 404) throw err;
    }
  }

  private stateOf(key: string): JobState {
    let s = this.state.get(key);
    if (!s) this.state.set(key, (s = {}));
    return s;
  }

  private async writeStatus(key: string, rec: Record_): Promise<void> {
    const s = this.stateOf(key);
    const previous = s.written ?? rec.raw.status;
    const condition = conditionBuilder(previous, new Date());
    const job = rec.job;
    const paused: Verdict = job?.paused ? { status: 'True', reason: 'ScaledJobPaused', message: 'ScaledJob is paused: no Job is created' } : { status: 'False', reason: 'ScaledJobUnpaused', message: 'ScaledJob is not paused' };
    const next: Record<string, unknown> = {
      conditions: [condition('Ready', s.ready!), condition('Active', activityVerdict(s.wasActive)), condition('Paused', paused), condition('FullySupported', supportedVerdict(job?.unsupported ?? []))],
    };
    // KEDA moves lastActiveTime on every active poll; here only when activity starts or ends.
    if (s.lastActiveShown !== undefined) next.lastActiveTime = metaTime(new Date(s.lastActiveShown));
    if (!statusDiffers(previous, next)) return;
    try {
      await this.o.client.patch(`/apis/${KEDA_API_VERSION}/namespaces/${rec.raw.metadata?.namespace}/scaledjobs/${rec.raw.metadata?.name}/status`, { status: next }, 'merge');
      this.o.metrics?.apiWrites.inc({ resource: 'scaledjobs/status', verb: 'patch' });
      s.written = next;
    } catch (err) {
      if (statusCodeOf(err) !== 404) throw err;
    }
  }

  private event(job: ScaledJob, type: 'Normal' | 'Warning', reason: string, message: string): void {
    this.o.metrics?.apiWrites.inc({ resource: 'events', verb: 'create' });
    this.o.events.record({ apiVersion: KEDA_API_VERSION, kind: 'ScaledJob', name: job.name, namespace: job.namespace, uid: job.uid }, type, reason, message);
  }
}

/** The Job KEDA creates for a ScaledJob: jobTargetRef, its labels and annotations, owned by it. */
export function jobFor(job: ScaledJob): KubeObject & { spec: Record<string, unknown> } {
  const excluded = new Set((job.annotations[EXCLUDED_LABELS_ANNOTATION] ?? '').split(',').map((l) => l.trim()).filter(Boolean));
  const labels: Record<string, string> = {
    'app.kubernetes.io/name': job.name,
    'app.kubernetes.io/part-of': job.name,
    'app.kubernetes.io/managed-by': 'keda-operator',
    [SCALED_JOB_LABEL]: job.name,
  };
  for (const [k, v] of Object.entries(job.labels)) if (!excluded.has(k)) labels[k] = v;
  const annotations: Record<string, string> = { [GENERATION_ANNOTATION]: String(job.generation) };
  for (const [k, v] of Object.entries(job.annotations)) if (k !== 'kubectl.kubernetes.io/last-applied-configuration') annotations[k] = v;
  const spec = structuredClone(job.spec.jobTargetRef) as { template: { metadata?: { labels?: Record<string, string> }; spec?: { restartPolicy?: string } } };
  spec.template.metadata = { ...(spec.template.metadata ?? {}), labels: { ...(spec.template.metadata?.labels ?? {}), [SCALED_JOB_LABEL]: job.name } };
  // A Job refuses restartPolicy Always, which is what an unset one would become.
  if (spec.template.spec && !spec.template.spec.restartPolicy) spec.template.spec.restartPolicy = 'OnFailure';
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: {
      generateName: `${job.name}-`,
      namespace: job.namespace,
      labels,
      annotations,
      ownerReferences: [{ apiVersion: KEDA_API_VERSION, kind: 'ScaledJob', name: job.name, uid: job.uid, controller: true, blockOwnerDeletion: true }],
    },
    spec: spec as unknown as Record<string, unknown>,
  } as KubeObject & { spec: Record<string, unknown> };
}

function keepJob(obj: KubeObject): KubeObject {
  const m = obj.metadata ?? {};
  const status = (obj as { status?: { conditions?: unknown; completionTime?: unknown } }).status;
  return { metadata: { name: m.name, namespace: m.namespace, labels: m.labels, annotations: m.annotations, creationTimestamp: m.creationTimestamp, resourceVersion: m.resourceVersion, uid: m.uid }, status: { conditions: status?.conditions, completionTime: status?.completionTime } } as KubeObject;
}

function keepPod(obj: KubeObject): KubeObject {
  const m = obj.metadata ?? {};
  const status = (obj as { status?: { phase?: unknown; conditions?: { type: string; status: string }[] } }).status;
  return { metadata: { name: m.name, namespace: m.namespace, labels: m.labels, resourceVersion: m.resourceVersion, uid: m.uid }, status: { phase: status?.phase, conditions: status?.conditions?.map((c) => ({ type: c.type, status: c.status })) } } as KubeObject;
}
