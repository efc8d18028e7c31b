// Every Prometheus metric a component exports is declared here, on a registry owned by the
// process (not prom-client's global one, so tests can run several servers side by side).
import type { X509Certificate } from 'node:crypto';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { KubeClient } from '../k8s/client.js';
import type { MaterialError } from '../tls/pem.js';

export function createRegistry(component: string, withDefaults = true): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  if (withDefaults) collectDefaultMetrics({ register: registry });
  return registry;
}

export class CertificateMetrics {
  private readonly notAfter: Gauge<'file' | 'subject' | 'serial'>;
  private readonly reloads: Counter<'file'>;
  private readonly failures: Counter<'file' | 'problem'>;
  /** The label sets last set per file, so a replaced certificate's series disappears. */
  private readonly series = new Map<string, { file: string; subject: string; serial: string }[]>();

  constructor(registry: Registry) {
    this.notAfter = new Gauge({
      name: 'certificate_expiration_timestamp_seconds',
      help: 'Not-after time of each certificate currently loaded, as a Unix timestamp',
      labelNames: ['file', 'subject', 'serial'],
      registers: [registry],
    });
    this.reloads = new Counter({
      name: 'certificate_reloads_total',
      help: 'Certificate files loaded successfully, at start-up and on change',
      labelNames: ['file'],
      registers: [registry],
    });
    this.failures = new Counter({
      name: 'certificate_reload_failures_total',
      help: 'Certificate file changes rejected; the last good material kept serving',
      labelNames: ['file', 'problem'],
      registers: [registry],
    });
  }

  loaded(files: readonly string[], certsByFile: ReadonlyMap<string, readonly X509Certificate[]>): void {
    for (const f of files) this.reloads.inc({ file: f });
    for (const [file, certs] of certsByFile) {
      for (const old of this.series.get(file) ?? []) this.notAfter.remove(old);
      const fresh = certs.map((c) => ({ file, subject: c.subject.replace(/\n/g, ','), serial: c.serialNumber }));
      certs.forEach((c, i) => this.notAfter.set(fresh[i] as (typeof fresh)[number], Date.parse(c.validTo) / 1000));
      this.series.set(file, fresh);
    }
  }

  failed(err: MaterialError): void {
    this.failures.inc({ file: err.file, problem: err.problem });
  }
}

export class HttpMetrics {
  readonly requests: Counter<'verb' | 'path' | 'code'>;
  readonly duration: Histogram<'verb' | 'path'>;
  readonly inFlight: Gauge;

  constructor(registry: Registry, prefix: string) {
    this.requests = new Counter({
      name: `${prefix}_http_requests_total`,
      help: 'Requests served, by HTTP verb, path class and status code',
      labelNames: ['verb', 'path', 'code'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: `${prefix}_http_request_duration_seconds`,
      help: 'Time from request received to response sent, by HTTP verb and path class',
      labelNames: ['verb', 'path'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    });
    this.inFlight = new Gauge({
      name: `${prefix}_http_requests_in_flight`,
      help: 'Requests currently being served',
      registers: [registry],
    });
  }
}

/** gRPC call metrics in go-grpc-prometheus' names, which dashboards already know. */
export class GrpcMetrics {
  readonly handled: Counter<'grpc_service' | 'grpc_method' | 'grpc_code'>;
  readonly handling: Histogram<'grpc_service' | 'grpc_method'>;
  /** Client: 1 for the channel's current connectivity state. Server: 1 while serving. */
  readonly state: Gauge<'state'>;
  /** The labelled children per method and code: a call then costs no label hashing. */
  private readonly series = new Map<string, { handled: { inc(): void }; handling: { observe(value: number): void } }>();

  constructor(registry: Registry, side: 'client' | 'server') {
    this.handled = new Counter({
      name: `grpc_${side}_handled_total`,
      help: `gRPC calls completed by the ${side}, by method and status code`,
      labelNames: ['grpc_service', 'grpc_method', 'grpc_code'],
      registers: [registry],
    });
    this.handling = new Histogram({
      name: `grpc_${side}_handling_seconds`,
      help: `gRPC call latency seen by the ${side}`,
      labelNames: ['grpc_service', 'grpc_method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
    this.state = new Gauge({
      name: side === 'client' ? 'grpc_client_connection_state' : 'grpc_server_serving',
      help: side === 'client' ? 'Connectivity state of the channel to the operator (1 = current state)' : '1 while the gRPC server accepts calls',
      labelNames: side === 'client' ? ['state'] : [],
      registers: [registry],
    });
  }

  observe(method: string, code: string, seconds: number): void {
    const key = `${method} ${code}`;
    let series = this.series.get(key);
    if (!series) {
      const [service = '', name = method] = method.replace(/^\//, '').split('/');
      series = { handled: this.handled.labels({ grpc_service: service, grpc_method: name, grpc_code: code }), handling: this.handling.labels({ grpc_service: service, grpc_method: name }) };
      this.series.set(key, series);
    }
    series.handled.inc();
    series.handling.observe(seconds);
  }

  setState(current: string, all: readonly string[]): void {
    for (const s of all) this.state.set({ state: s }, s === current ? 1 : 0);
  }
}

/** The adapter's copy of the operator's cached metric values (kedats.v1.MetricsMirror). */
export class MirrorMetrics {
  readonly lookups: Counter<'result'>;
  readonly entries: Gauge;
  readonly live: Gauge;

  constructor(registry: Registry) {
    this.lookups = new Counter({
      name: 'metrics_mirror_lookups_total',
      help: 'Metric queries looked up in the mirror: hit (answered here), miss (asked the operator with GetMetrics), by result',
      labelNames: ['result'],
      registers: [registry],
    });
    this.entries = new Gauge({ name: 'metrics_mirror_entries', help: 'Cached metric values the mirror holds', registers: [registry] });
    this.live = new Gauge({ name: 'metrics_mirror_live', help: '1 while the mirror stream from the operator is up (0: every query uses GetMetrics)', registers: [registry] });
  }
}

/** TokenReview and SubjectAccessReview traffic to kube-apiserver, and how often the cache spared it. */
export class DelegatedAuthMetrics {
  readonly reviews: Counter<'review' | 'result'>;
  readonly cache: Counter<'review' | 'result'>;
  readonly duration: Histogram<'review'>;

  constructor(registry: Registry) {
    this.reviews = new Counter({
      name: 'delegated_auth_reviews_total',
      help: 'Reviews sent to kube-apiserver, by review (token, subject_access) and result (allowed, denied, authenticated, unauthenticated, error)',
      labelNames: ['review', 'result'],
      registers: [registry],
    });
    this.cache = new Counter({
      name: 'delegated_auth_cache_requests_total',
      help: 'Review look-ups by cache outcome (hit, miss, coalesced into a review already in flight)',
      labelNames: ['review', 'result'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'delegated_auth_review_duration_seconds',
      help: 'Time kube-apiserver took to answer a review',
      labelNames: ['review'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
  }
}

/** Whether this operator replica holds the Lease, and so may write. */
export class LeaderElectionMetrics {
  readonly leader: Gauge;

  constructor(registry: Registry) {
    this.leader = new Gauge({ name: 'leader_election_is_leader', help: '1 while this replica holds the operator Lease and may write', registers: [registry] });
  }
}

/** The operator's certificate lifecycle: what it wrote, what it patched. */
export class CertificateLifecycleMetrics {
  readonly rotations: Counter<'kind'>;
  readonly patches: Counter<'target' | 'result'>;
  readonly conflicts: Counter<'target'>;
  readonly notAfter: Gauge<'secret' | 'role'>;

  constructor(registry: Registry) {
    this.rotations = new Counter({
      name: 'certificate_rotations_total',
      help: 'Writes of the certificate Secret, by kind (create, replace-corrupt, renew-leaf, reissue-leaf, rollover-publish, rollover-move-leaf, rollover-finish)',
      labelNames: ['kind'],
      registers: [registry],
    });
    this.patches = new Counter({
      name: 'cabundle_patches_total',
      help: 'caBundle writes to the APIService and the webhook configuration, by target kind and result',
      labelNames: ['target', 'result'],
      registers: [registry],
    });
    this.conflicts = new Counter({
      name: 'cabundle_patch_conflicts_total',
      help: 'caBundle writes refused with 409 Conflict and retried after a fresh read',
      labelNames: ['target'],
      registers: [registry],
    });
    this.notAfter = new Gauge({
      name: 'managed_certificate_expiration_timestamp_seconds',
      help: 'Not-after of the certificates in the managed Secret (role ca or leaf), as a Unix timestamp',
      labelNames: ['secret', 'role'],
      registers: [registry],
    });
  }
}

/** The operator's validating admission webhooks (KEDA's keda-admission), one series per resource. */
export class AdmissionMetrics {
  readonly requests: Counter<'resource' | 'operation' | 'allowed'>;
  readonly duration: Histogram<'resource' | 'operation'>;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: 'keda_webhook_admission_requests_total',
      help: 'Admission reviews answered, by resource (scaledobjects, triggerauthentications, clustertriggerauthentications), operation and allowed (true, false, or error: not a valid review, answered with an HTTP error)',
      labelNames: ['resource', 'operation', 'allowed'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'keda_webhook_admission_duration_seconds',
      help: 'Time from an admission review received to its answer sent, by resource and operation',
      labelNames: ['resource', 'operation'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    });
  }

  observe(resource: string, operation: string, allowed: 'true' | 'false' | 'error', seconds: number): void {
    this.requests.inc({ resource, operation, allowed });
    this.duration.observe({ resource, operation }, seconds);
  }
}

/** What the operator's polls saw, per trigger (KEDA's keda_scaler_* family), and what its controller did. */
export class ScalingMetrics {
  readonly value: Gauge<'namespace' | 'scaled_object' | 'trigger_index' | 'scaler' | 'metric'>;
  readonly active: Gauge<'namespace' | 'scaled_object' | 'trigger_index' | 'scaler' | 'metric'>;
  readonly errors: Counter<'namespace' | 'scaled_object' | 'trigger_index' | 'scaler'>;
  readonly reconciles: Counter<'result'>;
  readonly replicaChanges: Counter<'direction'>;
  readonly tokenRequests: Counter<'outcome'>;
  readonly apiWrites: Counter<'resource' | 'verb'>;
  /** Label sets written per `namespace/name`, so a deleted ScaledObject's series go with it. */
  private readonly series = new Map<string, Record<string, string>[]>();

  constructor(registry: Registry) {
    const labelNames = ['namespace', 'scaled_object', 'trigger_index', 'scaler', 'metric'] as const;
    this.value = new Gauge({ name: 'keda_scaler_metrics_value', help: 'The last value a trigger\'s poll read, as the HPA gets it', labelNames, registers: [registry] });
    this.active = new Gauge({ name: 'keda_scaler_active', help: '1 when the trigger\'s last value was above its activation threshold', labelNames, registers: [registry] });
    this.errors = new Counter({
      name: 'keda_scaler_errors_total',
      help: 'Polls of a trigger that failed (upstream unreachable, refused, or answering nothing usable)',
      labelNames: ['namespace', 'scaled_object', 'trigger_index', 'scaler'],
      registers: [registry],
    });
    this.reconciles = new Counter({ name: 'keda_scaledobject_reconciles_total', help: 'ScaledObject reconciles (HPA and status), by result (ok; requeue: waiting for its workload, authentication or a Secret; error)', labelNames: ['result'], registers: [registry] });
    this.replicaChanges = new Counter({
      name: 'keda_scale_target_replica_changes_total',
      help: 'Scale targets moved by the operator itself, by direction (to_zero, from_zero)',
      labelNames: ['direction'],
      registers: [registry],
    });
    this.apiWrites = new Counter({
      name: 'keda_kube_api_writes_total',
      help: 'Writes the ScaledObject controller made to kube-apiserver (HPAs, ScaledObject status, scale subresources, Events), by resource and verb; flat while nothing changes',
      labelNames: ['resource', 'verb'],
      registers: [registry],
    });
    this.tokenRequests = new Counter({
      name: 'keda_service_account_token_requests_total',
      help: 'TokenRequest calls for boundServiceAccountToken, by outcome (ok, forbidden, not_found, error)',
      labelNames: ['outcome'],
      registers: [registry],
    });
  }

  /** One poll of one ScaledObject. */
  observePoll(report: { namespace: string; name: string; triggers: { index: number; type: string; metricName?: string; value?: number; active?: boolean; error?: string }[] }): void {
    const key = `${report.namespace}/${report.name}`;
    const written: Record<string, string>[] = [];
    for (const t of report.triggers) {
      if (t.metricName === undefined) continue;
      const labels = { namespace: report.namespace, scaled_object: report.name, trigger_index: String(t.index), scaler: t.type, metric: t.metricName };
      written.push(labels);
      if (t.error !== undefined) {
        const { metric: _, ...errorLabels } = labels;
        this.errors.inc(errorLabels);
      } else if (t.value !== undefined) {
        this.value.set(labels, t.value);
        this.active.set(labels, t.active ? 1 : 0);
      }
    }
    this.series.set(key, written);
  }

  /** Drops the series of ScaledObjects no longer present. */
  retain(present: ReadonlySet<string>): void {
    for (const [key, labelSets] of this.series) {
      if (present.has(key)) continue;
      for (const labels of labelSets) {
        this.value.remove(labels);
        this.active.remove(labels);
      }
      this.series.delete(key);
    }
  }
}

/** client-go's REST client metrics in its names, so that dashboards made for Kubernetes components read ours: every call to kube-apiserver, watches included. */
export class KubeClientMetrics {
  readonly requests: Counter<'code' | 'method' | 'host'>;
  readonly duration: Histogram<'verb' | 'host'>;

  constructor(registry: Registry) {
    this.requests = new Counter({
      name: 'rest_client_requests_total',
      help: 'Requests to kube-apiserver, by status code (<error> when no answer came), method and host',
      labelNames: ['code', 'method', 'host'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'rest_client_request_duration_seconds',
      help: 'Time until kube-apiserver\'s answer (its headers, for watches), by verb and host',
      labelNames: ['verb', 'host'],
      buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60],
      registers: [registry],
    });
  }

  /** Counts every request `client` makes from now on. */
  observe(client: Pick<KubeClient, 'server' | 'observe'>): void {
    const host = new URL(client.server).host;
    client.observe((method, code, seconds) => {
      this.requests.inc({ code, method, host });
      this.duration.observe({ verb: method, host }, seconds);
    });
  }
}
