// Kubernetes Events about our own objects, so that `kubectl describe` shows what the operator did.
// Best effort: an Event that cannot be written is logged, never fatal.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
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
  private readonly api: CoreV1Api;

  constructor(kc: KubeConfig, private readonly component: string, private readonly log: Logger) {
    this.api = kc.makeApiClient(CoreV1Api);
  }

  record(obj: InvolvedObject, type: 'Normal' | 'Warning', reason: string, message: string): void {
    const namespace = obj.namespace ?? 'default';
    const now = new Date();
    this.api
      .createNamespacedEvent({
        namespace,
        body: {
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
        },
      })
      .catch((err: unknown) => this.log.warn({ reason: (err as Error).message, event: reason }, 'could not record an Event'));
  }
}
