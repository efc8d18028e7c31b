// Kubernetes Events about our own objects, so that `kubectl describe` shows what the operator did.
// Best effort: an Event that cannot be written is logged, never fatal.
import type { KubeClient } from './client.js';
import type { Logger } from 'pino';

export interface InvolvedObject {
  apiVersion: string;
  kind: string;
  name: string;
  /** Cluster-scoped objects get their Events in `default`, as kubectl looks for them there. */
  namespace?: string;
  uid?: string;
}

export class EventRecorder {
  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    private readonly log: Logger,
  ) {}

  record(obj: InvolvedObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const namespace = obj.namespace ?? 'default';
    const now = new Date().toISOString();
    this.client
      .post(`/api/v1/namespaces/${namespace}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${obj.name}.`, namespace },
        involvedObject: { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.name, ...(obj.namespace ? { namespace: obj.namespace } : {}), ...(obj.uid ? { uid: obj.uid } : {}) },
        type,
        reason,
        message,
        source: { component: this.component },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      })
      .catch((err: unknown) => this.log.warn({ reason: (err as Error).message, event: reason }, 'could not record an Event'));
  }
}
