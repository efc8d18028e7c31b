// The ScaledObject controller: for every ScaledObject, the HPA it stands for (created, updated,
// removed), its status, and scaling to and from zero, written only while this replica leads.
// Work is keyed by `namespace/name` and queued, as controller-runtime does it: a burst of events
// for one object is one reconcile; a reconcile that failed, or that found the object waiting for
// something (its workload, its TriggerAuthentication, a Secret), is retried with per-object
// exponential backoff (KEDA's defaults: 5 ms doubling to 1000 s, reset on success); and the
// objects it waits for are watched, so that it is re-queued the moment they appear or change.
// Everything is reconciled again every sync period. A reconcile that finds nothing to change
// writes nothing: what is compared is what the API server returned, defaults included.
import type { Logger } from 'pino';
import type { KubeClient } from '../../k8s/client.js';
import type { EventRecorder } from '../../k8s/events.js';
import type { ScalingMetrics } from '../../observability/metrics.js';
import { informer, type Informer } from '../../k8s/informer.js';
import { describeApiError, statusCodeOf } from '../../k8s/kubeconfig.js';
import { metaTime, type KubeList } from '../../k8s/types.js';
import type { MetricsEngine, PollReport } from '../metrics-engine.js';
import type { ClusterScaledObjectStore, ScaledObjectRecord } from '../scaledobjects/cluster-store.js';
import { KEDA_API_VERSION } from '../scaledobjects/manifest.js';
import { fallbackReplicas, type ScaledObject } from '../scaledobjects/types.js';
import { MANAGED_BY, SCALED_OBJECT_LABEL, desiredHpa, hpaDiffers, hpaName, ownedBy, scaleTarget, type Hpa } from './hpa.js';
import type { ScaleTargets } from './scale-targets.js';
import { buildStatus, readyFalse, readyTrue, statusDiffers, type Verdict } from './status.js';

// Reconciles in flight at once: bounded, so that a thousand objects at start-up are a queue, not a burst.
const WORKERS = 16;
const BASE_BACKOFF_MS = 5;
const MAX_BACKOFF_MS = 1000_000;

export interface ControllerOptions {
  client: KubeClient;
  store: ClusterScaledObjectStore;
  engine: MetricsEngine;
  /** The workloads, shared with the engine (which reads their replica counts for the fallback). */
  targets: ScaleTargets;
  events: EventRecorder;
  log: Logger;
  metrics?: ScalingMetrics;
  /** '' for all namespaces. */
  watchNamespace: string;
  syncPeriodMs: number;
  maxBackoffMs?: number;
}

/** A reconcile either reached the desired state, or must be tried again (the object waits for something). */
type Outcome = 'done' | 'retry';

interface KeyState {
  /** The last Ready verdict, for status writes between reconciles. */
  ready?: Verdict;
  hpaName?: string;
  externalMetricNames?: string[];
  /** The status last written (or read), to skip writes that change nothing. */
  written?: Record<string, unknown>;
  /** The last poll that found a trigger active (for the cooldown). */
  lastActive?: number;
  /** status.lastActiveTime: moved when activity starts and when it ends, not on every poll. */
  lastActiveShown?: number;
  wasActive?: boolean;
  /** KEDA's pause annotations as last acted on (status.pausedReplicaCount, the Paused condition). */
  paused?: { replicas?: number };
  /** status.originalReplicaCount: the workload's replicas before this ScaledObject first acted on it. */
  originalReplicas?: number;
  failures: number;
  retry?: NodeJS.Timeout;
}

export class ScaledObjectController {
  private readonly targets: ScaleTargets;
  private readonly states = new Map<string, KeyState>();
  private readonly queue = new Set<string>();
  private readonly running = new Set<string>();
  private hpaInformer: Informer<Hpa> | undefined;
  /**
   * The watched HPAs by the ScaledObject their label names (`namespace/name`), once the first list
   * is in: which HPAs an object has is read here, not LISTed per reconcile (kube-apiserver reads
   * every HPA of the namespace from etcd for each such LIST, whatever the label selector).
   */
  private hpasByObject: Map<string, Map<string, Hpa>> | undefined;
  private resync: NodeJS.Timeout | undefined;
  private leading = false;
  private closed = false;
  private idleWaiters: (() => void)[] = [];

  constructor(private readonly o: ControllerOptions) {
    this.targets = o.targets;
    o.store.onRecordChange((key) => this.enqueue(key));
    const dependencyChanged = (dep: string) => {
      for (const key of o.engine.dependentsOf(dep)) this.enqueue(key);
    };
    o.store.onDependencyChange(dependencyChanged);
    o.targets.onTemplateChange(dependencyChanged);
    this.targets.onTargetChange((key) => this.enqueue(key));
    o.engine.onPoll((report) => void this.onPoll(report));
  }

  /** Watches the HPAs we manage, so an edit or deletion by someone else is undone. */
  async start(): Promise<void> {
    const ns = this.o.watchNamespace;
    const path = ns ? `/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers` : '/apis/autoscaling/v2/horizontalpodautoscalers';
    const labelSelector = `app.kubernetes.io/managed-by=${MANAGED_BY},${SCALED_OBJECT_LABEL}`;
    this.hpaInformer = informer<Hpa>({ client: this.o.client, path, labelSelector, name: 'keda horizontalpodautoscalers', log: this.o.log });
    // The HPA controller writes status on its syncs: only a change of what we own (HPAs have no
    // metadata.generation), a deletion or an HPA that stops matching the selector (a label
    // removed) is news here.
    /** HPA key -> what we last saw of it: what we own of it, and the object key it is indexed under. */
    const seen = new Map<string, { fingerprint: string; objectKey: string | undefined }>();
    const byObject = new Map<string, Map<string, Hpa>>();
    this.hpaInformer.onObject((hpa, event) => {
      const key = `${hpa.metadata.namespace}/${hpa.metadata.name}`;
      const fingerprint = JSON.stringify([hpa.spec, hpa.metadata.labels, hpa.metadata.ownerReferences]);
      const owner = hpa.metadata.labels?.[SCALED_OBJECT_LABEL];
      const objectKey = owner ? `${hpa.metadata.namespace}/${owner}` : undefined;
      const before = seen.get(key);
      const moved = event !== 'update' || before?.fingerprint !== fingerprint;
      if (before?.objectKey !== undefined && (event === 'delete' || before.objectKey !== objectKey)) {
        const hpas = byObject.get(before.objectKey);
        hpas?.delete(hpa.metadata.name);
        if (hpas?.size === 0) byObject.delete(before.objectKey);
      }
      if (event === 'delete') seen.delete(key);
      else {
        seen.set(key, { fingerprint, objectKey });
        if (objectKey !== undefined) {
          let hpas = byObject.get(objectKey);
          if (!hpas) byObject.set(objectKey, (hpas = new Map()));
          hpas.set(hpa.metadata.name, hpa);
        }
      }
      if (objectKey && moved) this.enqueue(objectKey);
    });
    await this.hpaInformer.start();
    this.hpasByObject = byObject;
    this.resync = setInterval(() => this.enqueueAll(), this.o.syncPeriodMs);
    this.resync.unref();
  }

  /** Leadership changed: a leader reconciles everything at once; a follower stops writing. */
  setLeading(leading: boolean): void {
    this.leading = leading;
    if (leading) this.enqueueAll();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.resync);
    for (const s of this.states.values()) clearTimeout(s.retry);
    await Promise.all([this.hpaInformer?.stop(), this.targets.close()]);
  }

  /** Resolves when no reconcile is queued or running (for tests and orderly shutdown). */
  idle(): Promise<void> {
    if (this.queue.size === 0 && this.running.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  // --- queue ----------------------------------------------------------------------------------

  private enqueueAll(): void {
    for (const r of this.o.store.allRecords()) this.enqueue(`${r.namespace}/${r.name}`);
  }

  private enqueue(key: string): void {
    if (this.closed || !this.leading) return;
    this.queue.add(key);
    this.pump();
  }

  private pump(): void {
    for (const key of this.queue) {
      if (this.running.size >= WORKERS) return;
      if (this.running.has(key)) continue; // queued again; runs after the current pass
      this.queue.delete(key);
      this.running.add(key);
      void this.reconcile(key)
        .then(
          (outcome) => (outcome === 'done' ? this.succeeded(key) : this.retry(key, 'requeue')),
          (err: unknown) => this.failed(key, err),
        )
        .finally(() => {
          this.running.delete(key);
          this.pump();
          if (this.queue.size === 0 && this.running.size === 0) for (const w of this.idleWaiters.splice(0)) w();
        });
    }
  }

  private state(key: string): KeyState {
    let s = this.states.get(key);
    if (!s) this.states.set(key, (s = { failures: 0 }));
    return s;
  }

  private succeeded(key: string): void {
    const s = this.states.get(key);
    if (s) {
      s.failures = 0;
      clearTimeout(s.retry);
    }
    this.o.metrics?.reconciles.inc({ result: 'ok' });
  }

  private failed(key: string, err: unknown): void {
    const delay = this.retry(key, 'error');
    this.o.log.warn({ scaledObject: key, reason: describeApiError(err), retryInMs: delay }, 'reconcile failed');
  }

  /** Schedules the next attempt with this object's backoff; returns the delay. */
  private retry(key: string, result: 'error' | 'requeue'): number {
    this.o.metrics?.reconciles.inc({ result });
    const s = this.states.get(key);
    if (!s) return 0; // deleted meanwhile
    s.failures++;
    const delay = Math.min(BASE_BACKOFF_MS * 2 ** (s.failures - 1), this.o.maxBackoffMs ?? MAX_BACKOFF_MS);
    clearTimeout(s.retry);
    s.retry = setTimeout(() => this.enqueue(key), delay);
    s.retry.unref();
    return delay;
  }

  private wrote(resource: string, verb: string): void {
    this.o.metrics?.apiWrites.inc({ resource, verb });
  }

  private event(...args: Parameters<EventRecorder['record']>): void {
    this.wrote('events', 'create');
    this.o.events.record(...args);
  }

  // --- reconcile ------------------------------------------------------------------------------

  private async reconcile(key: string): Promise<Outcome> {
    if (!this.leading) return 'done';
    const [namespace, name] = key.split('/') as [string, string];
    const rec = this.o.store.record(namespace, name);
    if (!rec) {
      await this.deleteHpas(namespace, name, () => true);
      const s = this.states.get(key);
      clearTimeout(s?.retry);
      this.states.delete(key);
      this.targets.unfollow(key);
      return 'done';
    }
    // Being deleted (our finalizer, or foreground deletion with the garbage collector removing the
    // HPA first): nothing is created or restored for it any more.
    if (rec.raw.metadata?.deletionTimestamp) {
      if (rec.raw.metadata.finalizers?.includes(FINALIZER)) await this.finalize(rec);
      return 'done';
    }
    await this.keepFinalizer(rec);
    const s = this.state(key);
    if (rec.error !== undefined || !rec.object) {
      // Only an edit can fix it, and an edit is an event: no retries.
      s.ready = readyFalse('ScaledObjectCheckFailed', rec.error ?? 'invalid');
      await this.writeStatus(rec, s);
      return 'done';
    }
    const so = rec.object;
    if (so.pause?.all) return this.reconcilePaused(key, rec, so, s);
    s.paused = undefined;
    s.hpaName = hpaName(so);
    if (!(await this.targetReady(key, rec, so, s))) return 'retry';
    const triggers = await this.o.engine.describe(so);
    const desired = desiredHpa(so, triggers, rec.raw.metadata?.labels ?? {});
    s.externalMetricNames = triggers.flatMap((t) => (t.metricName ? [t.metricName] : []));
    if (!desired.hpa) {
      const why = so.spec.advanced?.scalingModifiers ? ' (scalingModifiers: the formula needs every trigger)' : '';
      s.ready = readyFalse('TriggerError', `${desired.skipped.join('; ')}${why}`);
      await this.writeStatus(rec, s);
      return 'retry';
    }
    const hpa = desired.hpa;
    const conflict = await this.applyHpa(so, hpa);
    // An HPA left behind under an old name (advanced.horizontalPodAutoscalerConfig.name changed).
    await this.deleteHpas(namespace, name, (h) => ownedBy(h, so.uid) && h.metadata.name !== hpa.metadata.name);
    s.ready =
      conflict ? readyFalse('HPAOwnedByOther', conflict)
      : desired.skipped.length > 0 ? readyFalse('TriggerError', `${desired.skipped.join('; ')} (the other triggers scale)`)
      : readyTrue();
    await this.writeStatus(rec, s);
    return s.ready.status === 'True' ? 'done' : 'retry';
  }

  /**
   * KEDA's paused-replicas (scale to that count and hold it) and paused (hold where it is): no HPA,
   * no scaling to or from zero, until the annotation goes.
   */
  private async reconcilePaused(key: string, rec: ScaledObjectRecord, so: ScaledObject, s: KeyState): Promise<Outcome> {
    const target = scaleTarget(so);
    const replicas = so.pause!.replicas;
    s.paused = replicas === undefined ? {} : { replicas };
    await this.deleteHpas(so.namespace, so.name, (h) => ownedBy(h, so.uid));
    if (!(await this.targetReady(key, rec, so, s))) return 'retry';
    const current = replicas === undefined ? undefined : await this.targets.replicas(so.namespace, target);
    if (replicas !== undefined && current !== replicas) {
      await this.targets.scale(so.namespace, target, replicas);
      this.wrote('scale', 'patch');
      this.o.log.info({ scaledObject: key, from: current, replicas }, 'paused: scaled to the paused replica count');
      this.event(involved(so), 'Normal', 'KEDAScaleTargetPaused', `Scaled ${target.kind.toLowerCase()} ${so.namespace}/${target.name} to ${replicas} (paused-replicas)`);
    }
    s.ready = readyTrue();
    await this.writeStatus(rec, s);
    return 'done';
  }

  /**
   * Follows the object's workload and checks it can be scaled; false (Ready False, written) when
   * it cannot. Its replica count is noted the first time, before anything of ours changes it.
   */
  private async targetReady(key: string, rec: ScaledObjectRecord, so: ScaledObject, s: KeyState): Promise<boolean> {
    const target = scaleTarget(so);
    await this.targets.follow(key, so.namespace, target);
    const problem = await this.targets.check(so.namespace, target);
    if (problem) {
      s.ready = readyFalse(problem.reason, problem.message);
      await this.writeStatus(rec, s);
      return false;
    }
    await this.noteOriginalReplicas(rec, so, s);
    return true;
  }

  /** The workload's replica count before anything of ours changed it, read once and kept in status. */
  private async noteOriginalReplicas(rec: ScaledObjectRecord, so: ScaledObject, s: KeyState): Promise<void> {
    if (s.originalReplicas !== undefined) return;
    const recorded = rec.raw.status?.originalReplicaCount;
    s.originalReplicas = typeof recorded === 'number' ? recorded : await this.targets.replicas(so.namespace, scaleTarget(so));
  }

  /**
   * Our finalizer (KEDA's name, so that objects moved from KEDA keep working) is on the object
   * exactly while advanced.restoreToOriginalReplicaCount asks for work at deletion: a finalizer
   * nobody needs would only make deletion wait for this operator.
   */
  private async keepFinalizer(rec: ScaledObjectRecord): Promise<void> {
    const finalizers = rec.raw.metadata?.finalizers ?? [];
    const wanted = rec.object?.spec.advanced?.restoreToOriginalReplicaCount === true;
    if (wanted === finalizers.includes(FINALIZER)) return;
    await this.setFinalizers(rec, wanted ? [...finalizers, FINALIZER] : finalizers.filter((f) => f !== FINALIZER));
  }

  /** KEDA's restoreToOriginalReplicaCount: the HPA goes first (it would scale back), then the workload returns to its count. */
  private async finalize(rec: ScaledObjectRecord): Promise<void> {
    const so = rec.object;
    const original = rec.raw.status?.originalReplicaCount;
    if (so?.spec.advanced?.restoreToOriginalReplicaCount && typeof original === 'number') {
      const target = scaleTarget(so);
      await this.deleteHpas(so.namespace, so.name, (h) => ownedBy(h, so.uid));
      const problem = await this.targets.check(so.namespace, target);
      if (problem) {
        this.o.log.warn({ scaledObject: `${so.namespace}/${so.name}`, reason: problem.message }, 'deleted: the workload cannot be restored');
      } else if ((await this.targets.replicas(so.namespace, target)) !== original) {
        await this.targets.scale(so.namespace, target, original);
        this.wrote('scale', 'patch');
        this.o.log.info({ scaledObject: `${so.namespace}/${so.name}`, replicas: original }, 'deleted: workload restored to its original replica count');
        this.event(involved(so), 'Normal', 'KEDAScaleTargetRestored', `Restored ${target.kind.toLowerCase()} ${so.namespace}/${target.name} to its original ${original} replicas`);
      }
    }
    await this.setFinalizers(rec, (rec.raw.metadata?.finalizers ?? []).filter((f) => f !== FINALIZER));
  }

  /** Replaces metadata.finalizers, guarded by the resourceVersion seen (a conflict is retried with backoff). */
  private async setFinalizers(rec: ScaledObjectRecord, finalizers: string[]): Promise<void> {
    const metadata = { finalizers, resourceVersion: rec.raw.metadata?.resourceVersion };
    try {
      await this.o.client.patch(`/apis/keda.sh/v1alpha1/namespaces/${rec.namespace}/scaledobjects/${rec.name}`, { metadata }, 'merge');
      this.wrote('scaledobjects', 'patch');
    } catch (err) {
      if (statusCodeOf(err) !== 404) throw err;
    }
  }

  /**
   * Creates or updates the HPA; returns a message when an HPA of that name belongs to someone else.
   * The live HPA comes from the watch. One it has not delivered, or one without our labels, makes
   * the create or the update fail (409): only then is it read from kube-apiserver.
   */
  private async applyHpa(so: ScaledObject, desired: Hpa): Promise<string | undefined> {
    const { namespace, name } = desired.metadata;
    if (this.hpasByObject) {
      const watched = this.hpasByObject.get(`${so.namespace}/${so.name}`)?.get(name);
      try {
        return watched ? await this.updateHpa(so, watched, desired) : await this.createHpa(so, desired);
      } catch (err) {
        const code = statusCodeOf(err);
        // 404 on an update: deleted since the watch saw it.
        if (code !== 409 && !(watched && code === 404)) throw err;
      }
    }
    let live: Hpa | undefined;
    try {
      live = await this.o.client.get<Hpa>(hpaPath(namespace, name));
    } catch (err) {
      if (statusCodeOf(err) !== 404) throw err;
    }
    return live ? this.updateHpa(so, live, desired) : this.createHpa(so, desired);
  }

  private async createHpa(so: ScaledObject, desired: Hpa): Promise<undefined> {
    await this.o.client.post(hpaPath(desired.metadata.namespace), desired);
    this.wrote('horizontalpodautoscalers', 'create');
    this.o.log.info({ scaledObject: `${so.namespace}/${so.name}`, hpa: desired.metadata.name }, 'HPA created');
    this.event(involved(so), 'Normal', 'KEDAHPACreated', `Created HPA ${desired.metadata.name}`);
    return undefined;
  }

  /** Updates `live` (guarded by its resourceVersion) when it differs; a message when it is not ours to update. */
  private async updateHpa(so: ScaledObject, live: Hpa, desired: Hpa): Promise<string | undefined> {
    const { namespace, name } = desired.metadata;
    if (!ownedBy(live, so.uid)) {
      // A ScaledObject deleted and created again under the same name: its HPA is ours to take over.
      const labels = live.metadata.labels ?? {};
      const previousIncarnation = labels['app.kubernetes.io/managed-by'] === MANAGED_BY && labels[SCALED_OBJECT_LABEL] === so.name;
      if (!previousIncarnation) return `HPA ${namespace}/${name} already exists and is not managed by this ScaledObject; delete it or set spec.advanced.horizontalPodAutoscalerConfig.name`;
    } else if (!hpaDiffers(live, desired)) {
      return undefined;
    }
    const body: Hpa = { ...desired, metadata: { ...desired.metadata, resourceVersion: live.metadata.resourceVersion! } };
    await this.o.client.put(hpaPath(namespace, name), body);
    this.wrote('horizontalpodautoscalers', 'update');
    this.o.log.info({ scaledObject: `${so.namespace}/${so.name}`, hpa: name }, 'HPA updated');
    this.event(involved(so), 'Normal', 'KEDAHPAUpdated', `Updated HPA ${name}`);
    return undefined;
  }

  /**
   * Deletes the HPAs labelled for this ScaledObject name that `which` selects (ours by owner
   * reference). From the watch: one it has not delivered yet is deleted when it arrives, since its
   * arrival reconciles the object again.
   */
  private async deleteHpas(namespace: string, soName: string, which: (h: Hpa) => boolean): Promise<void> {
    const items = this.hpasByObject
      ? [...(this.hpasByObject.get(`${namespace}/${soName}`)?.values() ?? [])]
      : (await this.o.client.get<KubeList<Hpa>>(hpaPath(namespace), { query: { labelSelector: `${SCALED_OBJECT_LABEL}=${soName},app.kubernetes.io/managed-by=${MANAGED_BY}` } })).items;
    const live = this.o.store.record(namespace, soName);
    for (const h of items) {
      // Never one that the current object owns unless asked to, never one owned by another live object.
      if (live && !ownedBy(h, live.uid) && (h.metadata.ownerReferences ?? []).length > 0) continue;
      if (!which(h)) continue;
      try {
        await this.o.client.delete(hpaPath(namespace, h.metadata.name));
        this.wrote('horizontalpodautoscalers', 'delete');
        this.o.log.info({ scaledObject: `${namespace}/${soName}`, hpa: h.metadata.name }, 'HPA deleted');
      } catch (err) {
        if (statusCodeOf(err) !== 404) throw err;
      }
    }
  }

  // --- polls: activity, scaling to and from zero, status --------------------------------------

  private async onPoll(report: PollReport): Promise<void> {
    if (!this.leading || this.closed) return;
    const key = `${report.namespace}/${report.name}`;
    const rec = this.o.store.record(report.namespace, report.name);
    if (!rec?.object || rec.object.generation !== report.generation || rec.raw.metadata?.deletionTimestamp) return;
    const s = this.state(key);
    const so = rec.object;
    const now = Date.now();
    if (report.active) s.lastActive = now;
    // Written when activity starts (now) and when it ends (the last active poll): a status write
    // per poll while active would be a write per poll per object for nothing.
    if (report.active !== s.wasActive && (report.active || s.lastActive !== undefined)) s.lastActiveShown = s.lastActive;
    s.wasActive = report.active;
    try {
      await this.scaleToOrFromZero(rec, so, report, s, now);
      if (s.ready) await this.writeStatus(rec, s);
    } catch (err) {
      this.o.log.warn({ scaledObject: key, reason: describeApiError(err) }, 'acting on a poll failed');
    }
  }

  /**
   * KEDA's activation: with minReplicaCount 0 (or idleReplicaCount 0) the workload goes to zero
   * once no trigger has been active for cooldownPeriod (a never-active object: initialCooldownPeriod
   * after its creation), and back to max(minReplicaCount, 1) when one is: the HPA cannot do either
   * (it stops at minReplicas and does nothing at 0). Never to zero on errors: a broken upstream is
   * not an idle one. At zero with a trigger falling back, to the fallback count instead.
   */
  private async scaleToOrFromZero(rec: ScaledObjectRecord, so: ScaledObject, report: PollReport, s: KeyState, now: number): Promise<void> {
    if (s.ready?.status !== 'True' && s.ready?.reason !== 'TriggerError') return;
    if (so.pause?.all) return;
    const target = scaleTarget(so);
    const replicas = await this.targets.replicas(so.namespace, target);
    if (replicas === undefined) return;
    const { minReplicaCount: min, idleReplicaCount: idle } = so.spec;
    const floor = idle ?? min;
    if (replicas === 0) {
      if (so.pause?.scaleOut) return;
      const to =
        report.active || floor > 0 ? Math.max(min, 1)
        : report.triggers.some((t) => t.fallback) && so.spec.fallback ? fallbackReplicas(so.spec.fallback, 0)
        : 0;
      if (to === 0) return;
      await this.targets.scale(so.namespace, target, to);
      this.wrote('scale', 'patch');
      this.o.metrics?.replicaChanges.inc({ direction: 'from_zero' });
      const reason = report.active ? 'a trigger is active' : floor > 0 ? 'minReplicaCount' : 'fallback: a trigger is failing';
      this.o.log.info({ scaledObject: `${so.namespace}/${so.name}`, replicas: to, reason }, 'scaled from zero');
      this.event(involved(so), 'Normal', 'KEDAScaleTargetActivated', `Scaled ${target.kind.toLowerCase()} ${so.namespace}/${target.name} from 0 to ${to} (${reason})`);
      return;
    }
    if (floor !== 0 || report.active || so.pause?.scaleIn) return;
    if (report.triggers.some((t) => t.error !== undefined)) return;
    const lastActive = s.lastActive ?? lastActiveFromStatus(rec);
    const created = Date.parse(rec.raw.metadata?.creationTimestamp ?? '');
    const due = lastActive !== undefined ? lastActive + so.spec.cooldownPeriod * 1000 : (Number.isFinite(created) ? created : now) + so.spec.initialCooldownPeriod * 1000;
    if (now < due) return;
    await this.targets.scale(so.namespace, target, 0);
    this.wrote('scale', 'patch');
    this.o.metrics?.replicaChanges.inc({ direction: 'to_zero' });
    this.o.log.info({ scaledObject: `${so.namespace}/${so.name}`, from: replicas }, 'scaled to zero');
    this.event(involved(so), 'Normal', 'KEDAScaleTargetDeactivated', `Deactivated ${target.kind.toLowerCase()} ${so.namespace}/${target.name} from ${replicas} to 0`);
  }

  private async writeStatus(rec: ScaledObjectRecord, s: KeyState): Promise<void> {
    if (!this.leading) return;
    const previous = s.written ?? rec.raw.status;
    const so = rec.object;
    const target = so ? scaleTarget(so) : undefined;
    const next = buildStatus({
      ready: s.ready!,
      report: so ? this.o.engine.lastReport(rec.namespace, rec.name) : undefined,
      unsupported: so?.unsupported ?? [],
      ...(target ? { scaleTargetKind: `${target.apiVersion}.${target.kind}` } : {}),
      ...(s.hpaName !== undefined ? { hpaName: s.hpaName } : {}),
      ...(s.externalMetricNames !== undefined ? { externalMetricNames: s.externalMetricNames } : {}),
      ...(s.lastActiveShown !== undefined ? { lastActiveTime: metaTime(new Date(s.lastActiveShown)) } : {}),
      ...(s.paused ? { paused: s.paused } : {}),
      ...(s.originalReplicas !== undefined ? { originalReplicaCount: s.originalReplicas } : {}),
      previous,
      now: new Date(),
    });
    if (!statusDiffers(previous, next)) return;
    try {
      await this.o.client.patch(`/apis/keda.sh/v1alpha1/namespaces/${rec.namespace}/scaledobjects/${rec.name}/status`, { status: next }, 'merge');
      this.wrote('scaledobjects/status', 'patch');
      s.written = next;
    } catch (err) {
      // Deleted meanwhile: the delete event brings the HPA cleanup.
      if (statusCodeOf(err) === 404) return;
      throw err;
    }
  }
}

/** KEDA's finalizer name. */
const FINALIZER = 'finalizer.keda.sh';

const hpaPath = (namespace: string, name?: string) => `/apis/autoscaling/v2/namespaces/${namespace}/horizontalpodautoscalers${name ? `/${name}` : ''}`;

function involved(so: ScaledObject) {
  return { apiVersion: KEDA_API_VERSION, kind: 'ScaledObject', name: so.name, namespace: so.namespace, uid: so.uid };
}

function lastActiveFromStatus(rec: ScaledObjectRecord): number | undefined {
  const t = rec.raw.status?.lastActiveTime;
  const ms = typeof t === 'string' ? Date.parse(t) : NaN;
  return Number.isFinite(ms) ? ms : undefined;
}
