// The resource types the fake serves, with the per-type behaviour of their registry strategies
// (k8s.io/kubernetes/pkg/registry/*/strategy.go and the CRD strategy) that clients can observe.
import type { FieldError } from './status.js';
import type { KubeObject } from './types.js';

export interface ResourceDef {
  group: string;
  version: string;
  kind: string;
  /** The resource name in paths: "configmaps". */
  plural: string;
  singular: string;
  namespaced: boolean;
  shortNames?: string[];
  /**
   * CRD-backed (served as unstructured): list items keep apiVersion/kind, strategic merge patch is
   * refused with 415, PUT requires metadata.resourceVersion, create requires apiVersion and kind.
   */
  custom?: boolean;
  /** Has a /status subresource: the main resource ignores status, /status only writes status. */
  statusSubresource?: boolean;
  /** metadata.generation is maintained: 1 on create, +1 when anything but metadata (and status) changes. */
  generation?: boolean;
  /** PUT without metadata.resourceVersion is allowed. Default: false for custom resources, true otherwise. */
  allowUnconditionalUpdate?: boolean;
  /** PUT of an absent object creates it (Leases, Events). */
  allowCreateOnUpdate?: boolean;
  /** DELETE answers with the object instead of a Status (ServiceAccounts, Namespaces). */
  returnDeletedObject?: boolean;
  /** Not stored; POST only (TokenReview, SubjectAccessReview). */
  virtual?: boolean;
  /** Field selectors beyond metadata.name / metadata.namespace. */
  fieldSelectors?: Record<string, (obj: KubeObject) => string | undefined>;
  /** Name rule: DNS-1123 subdomain (default), DNS-1123 label, or a custom check returning an error detail. */
  nameRule?: 'subdomain' | 'label' | ((name: string, obj: KubeObject) => string | undefined);
  /** Defaulting, applied to every write (including the test back door). */
  defaults?: (obj: KubeObject) => void;
  /** PrepareForCreate beyond dropping status: e.g. APIService's Local condition, Namespace phase. */
  prepareForCreate?: (obj: KubeObject) => void;
  /** Extra validation on create and update. */
  validate?: (obj: KubeObject, old: KubeObject | undefined) => FieldError[];
  /** Extra subresources, for discovery: name -> { kind, group?, version?, verbs }. */
  subresources?: Record<string, { kind: string; group?: string; version?: string; verbs: string[] }>;
  /** Strategic merge patch: list fields merged by key ('' = list of primitives, merged as a set). */
  strategicMergeKeys?: Record<string, string>;
}

export const apiVersionOf = (d: { group: string; version: string }): string => (d.group ? `${d.group}/${d.version}` : d.version);

const META_MERGE_KEYS: Record<string, string> = { 'metadata.finalizers': '', 'metadata.ownerReferences': 'uid' };
const POD_TEMPLATE_MERGE_KEYS: Record<string, string> = {
  'spec.template.spec.containers': 'name',
  'spec.template.spec.initContainers': 'name',
  'spec.template.spec.containers.env': 'name',
  'spec.template.spec.initContainers.env': 'name',
  'spec.template.spec.containers.ports': 'containerPort',
  'spec.template.spec.containers.volumeMounts': 'mountPath',
  'spec.template.spec.volumes': 'name',
  'spec.template.spec.imagePullSecrets': 'name',
  'status.conditions': 'type',
};

const s = (v: unknown): string | undefined => (v === undefined || v === null ? undefined : String(v));
const rec = (v: unknown): Record<string, unknown> => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {});

function labelSelectorString(sel: unknown): string {
  const { matchLabels, matchExpressions } = rec(sel) as { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
  const parts = Object.entries(matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of matchExpressions ?? []) {
    const op = e.operator;
    if (op === 'In' || op === 'NotIn') parts.push(`${e.key} ${op.toLowerCase()} (${(e.values ?? []).join(',')})`);
    else if (op === 'Exists') parts.push(e.key);
    else if (op === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}
export { labelSelectorString };

function apiServiceName(name: string, obj: KubeObject): string | undefined {
  const spec = rec(obj.spec);
  const want = `${String(spec.version ?? '')}.${String(spec.group ?? '')}`;
  return name === want ? undefined : 'must be spec.version+"."+spec.group';
}

export const BUILTIN_RESOURCES: ResourceDef[] = [
  // core/v1
  {
    group: '', version: 'v1', kind: 'Namespace', plural: 'namespaces', singular: 'namespace', namespaced: false, shortNames: ['ns'],
    statusSubresource: true, returnDeletedObject: true, nameRule: 'label',
    fieldSelectors: { 'status.phase': (o) => s(rec(o.status).phase) },
    defaults: (o) => {
      const meta = o.metadata!;
      meta.labels = { ...(meta.labels ?? {}), 'kubernetes.io/metadata.name': meta.name ?? '' };
    },
    prepareForCreate: (o) => {
      o.spec = { finalizers: ['kubernetes'], ...rec(o.spec) };
      o.status = { phase: 'Active' };
    },
    subresources: { status: { kind: 'Namespace', verbs: ['get', 'patch', 'update'] }, finalize: { kind: 'Namespace', verbs: ['update'] } },
  },
  {
    group: '', version: 'v1', kind: 'ConfigMap', plural: 'configmaps', singular: 'configmap', namespaced: true, shortNames: ['cm'],
    strategicMergeKeys: META_MERGE_KEYS,
  },
  {
    group: '', version: 'v1', kind: 'Secret', plural: 'secrets', singular: 'secret', namespaced: true,
    fieldSelectors: { type: (o) => s(o.type) },
    strategicMergeKeys: META_MERGE_KEYS,
    defaults: (o) => {
      o.type ??= 'Opaque';
      // stringData is write-only: merged into data and dropped (pkg/apis/core/v1 conversion).
      if (o.stringData && typeof o.stringData === 'object') {
        const data = { ...rec(o.data) } as Record<string, string>;
        for (const [k, v] of Object.entries(o.stringData as Record<string, unknown>)) data[k] = Buffer.from(String(v)).toString('base64');
        o.data = data;
        delete o.stringData;
      }
    },
  },
  {
    group: '', version: 'v1', kind: 'ServiceAccount', plural: 'serviceaccounts', singular: 'serviceaccount', namespaced: true, shortNames: ['sa'],
    returnDeletedObject: true,
    strategicMergeKeys: { ...META_MERGE_KEYS, secrets: 'name', imagePullSecrets: 'name' },
    subresources: { token: { kind: 'TokenRequest', group: 'authentication.k8s.io', version: 'v1', verbs: ['create'] } },
  },
  {
    group: '', version: 'v1', kind: 'Event', plural: 'events', singular: 'event', namespaced: true, shortNames: ['ev'],
    allowCreateOnUpdate: true,
    strategicMergeKeys: META_MERGE_KEYS,
    fieldSelectors: {
      'involvedObject.kind': (o) => s(rec(o.involvedObject).kind),
      'involvedObject.namespace': (o) => s(rec(o.involvedObject).namespace),
      'involvedObject.name': (o) => s(rec(o.involvedObject).name),
      'involvedObject.uid': (o) => s(rec(o.involvedObject).uid),
      'involvedObject.apiVersion': (o) => s(rec(o.involvedObject).apiVersion),
      'involvedObject.resourceVersion': (o) => s(rec(o.involvedObject).resourceVersion),
      'involvedObject.fieldPath': (o) => s(rec(o.involvedObject).fieldPath),
      reason: (o) => s(o.reason),
      reportingComponent: (o) => s(o.reportingComponent),
      source: (o) => s(rec(o.source).component),
      type: (o) => s(o.type),
    },
  },
  // apps/v1
  {
    group: 'apps', version: 'v1', kind: 'Deployment', plural: 'deployments', singular: 'deployment', namespaced: true, shortNames: ['deploy'],
    statusSubresource: true, generation: true,
    strategicMergeKeys: { ...META_MERGE_KEYS, ...POD_TEMPLATE_MERGE_KEYS },
    defaults: (o) => {
      const spec = (o.spec = rec(o.spec));
      spec.replicas ??= 1;
      spec.revisionHistoryLimit ??= 10;
      spec.progressDeadlineSeconds ??= 600;
      spec.strategy ??= { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } };
    },
    subresources: {
      status: { kind: 'Deployment', verbs: ['get', 'patch', 'update'] },
      scale: { kind: 'Scale', group: 'autoscaling', version: 'v1', verbs: ['get', 'patch', 'update'] },
    },
  },
  // autoscaling/v2
  {
    group: 'autoscaling', version: 'v2', kind: 'HorizontalPodAutoscaler', plural: 'horizontalpodautoscalers', singular: 'horizontalpodautoscaler',
    namespaced: true, shortNames: ['hpa'], statusSubresource: true, generation: true,
    strategicMergeKeys: { ...META_MERGE_KEYS, 'status.conditions': 'type' },
    defaults: (o) => {
      const spec = (o.spec = rec(o.spec));
      spec.minReplicas ??= 1;
    },
  },
  // coordination.k8s.io/v1
  {
    group: 'coordination.k8s.io', version: 'v1', kind: 'Lease', plural: 'leases', singular: 'lease', namespaced: true,
    allowUnconditionalUpdate: false, allowCreateOnUpdate: true, strategicMergeKeys: META_MERGE_KEYS,
  },
  // apiregistration.k8s.io/v1
  {
    group: 'apiregistration.k8s.io', version: 'v1', kind: 'APIService', plural: 'apiservices', singular: 'apiservice', namespaced: false,
    statusSubresource: true, allowUnconditionalUpdate: false, nameRule: apiServiceName,
    strategicMergeKeys: { ...META_MERGE_KEYS, 'status.conditions': 'type' },
    prepareForCreate: (o) => {
      // kube-aggregator marks local API services available immediately.
      if (!rec(o.spec).service) {
        o.status = {
          conditions: [{ type: 'Available', status: 'True', lastTransitionTime: nowSeconds(), reason: 'Local', message: 'Local APIServices are always available' }],
        };
      }
    },
  },
  // admissionregistration.k8s.io/v1
  {
    group: 'admissionregistration.k8s.io', version: 'v1', kind: 'ValidatingWebhookConfiguration', plural: 'validatingwebhookconfigurations',
    singular: 'validatingwebhookconfiguration', namespaced: false, generation: true, allowUnconditionalUpdate: false,
    strategicMergeKeys: { ...META_MERGE_KEYS, webhooks: 'name' },
  },
  // keda.sh/v1alpha1 (CRDs)
  ...(['ScaledObject', 'TriggerAuthentication', 'ClusterTriggerAuthentication'] as const).map(
    (kind): ResourceDef => ({
      group: 'keda.sh', version: 'v1alpha1', kind, plural: `${kind.toLowerCase()}s`, singular: kind.toLowerCase(),
      namespaced: kind !== 'ClusterTriggerAuthentication', custom: true, statusSubresource: true, generation: true,
      shortNames: { ScaledObject: ['so'], TriggerAuthentication: ['ta', 'triggerauth'], ClusterTriggerAuthentication: ['cta', 'clustertriggerauth'] }[kind],
    }),
  ),
  // Reviews: virtual, create only.
  { group: 'authentication.k8s.io', version: 'v1', kind: 'TokenReview', plural: 'tokenreviews', singular: 'tokenreview', namespaced: false, virtual: true },
  { group: 'authorization.k8s.io', version: 'v1', kind: 'SubjectAccessReview', plural: 'subjectaccessreviews', singular: 'subjectaccessreview', namespaced: false, virtual: true },
  { group: 'authorization.k8s.io', version: 'v1', kind: 'SelfSubjectAccessReview', plural: 'selfsubjectaccessreviews', singular: 'selfsubjectaccessreview', namespaced: false, virtual: true },
  { group: 'authorization.k8s.io', version: 'v1', kind: 'LocalSubjectAccessReview', plural: 'localsubjectaccessreviews', singular: 'localsubjectaccessreview', namespaced: true, virtual: true },
];

/** RFC 3339 with seconds precision, as metav1.Time serialises. */
export function nowSeconds(d = new Date()): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

export class ResourceRegistry {
  readonly defs: ResourceDef[] = [];

  constructor(defs: ResourceDef[]) {
    for (const d of defs) this.add(d);
  }

  add(def: ResourceDef): void {
    const i = this.defs.findIndex((d) => d.group === def.group && d.version === def.version && d.plural === def.plural);
    if (i >= 0) this.defs[i] = def;
    else this.defs.push(def);
  }

  byPath(group: string, version: string, plural: string): ResourceDef | undefined {
    return this.defs.find((d) => d.group === group && d.version === version && d.plural === plural);
  }

  byKind(apiVersion: string, kind: string): ResourceDef | undefined {
    return this.defs.find((d) => apiVersionOf(d) === apiVersion && d.kind === kind);
  }

  groupVersions(): { group: string; versions: string[] }[] {
    const out = new Map<string, string[]>();
    for (const d of this.defs) {
      const vs = out.get(d.group) ?? [];
      if (!vs.includes(d.version)) vs.push(d.version);
      out.set(d.group, vs);
    }
    return [...out].map(([group, versions]) => ({ group, versions }));
  }

  hasGroupVersion(group: string, version: string): boolean {
    return this.defs.some((d) => d.group === group && d.version === version);
  }

  /** GET /api */
  apiVersions(serverAddress: string): Record<string, unknown> {
    return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
  }

  private apiGroup(group: string, versions: string[]): Record<string, unknown> {
    const gvs = versions.map((version) => ({ groupVersion: `${group}/${version}`, version }));
    return { name: group, versions: gvs, preferredVersion: gvs[0] };
  }

  /** GET /apis */
  apiGroupList(): Record<string, unknown> {
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: this.groupVersions()
        .filter((g) => g.group !== '')
        .map((g) => this.apiGroup(g.group, g.versions)),
    };
  }

  /** GET /apis/<group> */
  apiGroupDoc(group: string): Record<string, unknown> | undefined {
    const g = this.groupVersions().find((x) => x.group === group && group !== '');
    return g ? { kind: 'APIGroup', apiVersion: 'v1', ...this.apiGroup(g.group, g.versions) } : undefined;
  }

  /** GET /api/v1, /apis/<group>/<version> */
  apiResourceList(group: string, version: string): Record<string, unknown> {
    const resources: Record<string, unknown>[] = [];
    for (const d of this.defs.filter((x) => x.group === group && x.version === version)) {
      resources.push({
        name: d.plural,
        singularName: d.singular,
        namespaced: d.namespaced,
        kind: d.kind,
        verbs: d.virtual ? ['create'] : ALL_VERBS,
        ...(d.shortNames ? { shortNames: d.shortNames } : {}),
      });
      const subs: NonNullable<ResourceDef['subresources']> = { ...(d.statusSubresource && !d.subresources?.status ? { status: { kind: d.kind, verbs: ['get', 'patch', 'update'] } } : {}), ...d.subresources };
      for (const [name, sub] of Object.entries(subs)) {
        resources.push({
          name: `${d.plural}/${name}`,
          singularName: '',
          namespaced: d.namespaced,
          ...(sub.group !== undefined ? { group: sub.group, version: sub.version } : {}),
          kind: sub.kind,
          verbs: sub.verbs,
        });
      }
    }
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
  }
}
