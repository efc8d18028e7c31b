// The shapes of the Kubernetes objects this project reads and writes, as on the wire (JSON), for
// the fields it uses. Everything else an object carries passes through untouched.

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  time?: string;
  fieldsV1?: unknown;
  subresource?: string;
}

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  finalizers?: string[];
  managedFields?: ManagedFieldsEntry[];
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
}

export interface KubeList<T> {
  items: T[];
  metadata?: { resourceVersion?: string; continue?: string };
}

export interface Secret extends KubeObject {
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  type?: string;
}

export interface ConfigMap extends KubeObject {
  data?: Record<string, string>;
}

export interface APIResourceList {
  groupVersion: string;
  resources: { name: string; kind: string; namespaced?: boolean; verbs?: string[] }[];
}

let lastSecond = NaN;
let lastText = '';

/** RFC 3339 in whole seconds, as metav1.Time is written (conditions, metric timestamps). */
export function metaTime(d: Date): string {
  // The last one is kept: the metric path writes the same few timestamps on every request.
  const second = Math.floor(d.getTime() / 1000);
  if (second !== lastSecond) {
    lastText = `${new Date(second * 1000).toISOString().slice(0, 19)}Z`;
    lastSecond = second;
  }
  return lastText;
}

/** RFC 3339 with microseconds, as metav1.MicroTime is written (Lease times). */
export function microTime(d: Date = new Date()): string {
  return d.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
