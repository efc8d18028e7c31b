// The cluster's Pods as the kubernetes-workload scaler counts them: one watch for every trigger
// of every ScaledObject (metadata, labels and phase only), started when the first such trigger is
// built. A count reads memory: no request per poll, however many ScaledObjects ask.
import type { Logger } from 'pino';
import type { KubeClient } from '../../k8s/client.js';
import { informer, type Informer } from '../../k8s/informer.js';
import { matchesSelector, type LabelSelector } from '../../k8s/labels.js';
import type { KubeObject } from '../../k8s/types.js';

interface PodView {
  labels: Record<string, string>;
  phase: string;
}

export interface PodCounter {
  /** Pods matching the selector in the namespace ('' for all) and not Succeeded or Failed; undefined until the first list is in. */
  count(namespace: string, selector: LabelSelector): number | undefined;
}

export class PodIndex implements PodCounter {
  /** namespace -> pod name -> view */
  private readonly pods = new Map<string, Map<string, PodView>>();
  private watch: Informer<KubeObject> | undefined;
  private synced = false;

  constructor(private readonly o: { client: KubeClient; log: Logger; watchNamespace: string }) {}

  count(namespace: string, selector: LabelSelector): number | undefined {
    this.start();
    if (!this.synced) return undefined;
    let n = 0;
    const namespaces = namespace === '' ? [...this.pods.values()] : [this.pods.get(namespace) ?? new Map<string, PodView>()];
    for (const pods of namespaces) for (const p of pods.values()) if (p.phase !== 'Succeeded' && p.phase !== 'Failed' && matchesSelector(selector, p.labels)) n++;
    return n;
  }

  async close(): Promise<void> {
    await this.watch?.stop();
  }

  private start(): void {
    if (this.watch) return;
    const ns = this.o.watchNamespace;
    this.watch = informer<KubeObject>({ client: this.o.client, path: ns ? `/api/v1/namespaces/${ns}/pods` : '/api/v1/pods', name: 'pods (kubernetes-workload)', log: this.o.log, transform: keepPod });
    this.watch.onObject((obj, event) => {
      const namespace = obj.metadata?.namespace ?? '';
      const name = obj.metadata?.name ?? '';
      let pods = this.pods.get(namespace);
      if (event === 'delete') {
        pods?.delete(name);
        if (pods?.size === 0) this.pods.delete(namespace);
        return;
      }
      if (!pods) this.pods.set(namespace, (pods = new Map()));
      pods.set(name, { labels: obj.metadata?.labels ?? {}, phase: (obj as { status?: { phase?: string } }).status?.phase ?? '' });
    });
    this.watch.start().then(
      () => (this.synced = true),
      (err: unknown) => this.o.log.warn({ reason: (err as Error).message }, 'the Pod watch for kubernetes-workload triggers ended'),
    );
  }
}

function keepPod(obj: KubeObject): KubeObject {
  const m = obj.metadata ?? {};
  return { metadata: { name: m.name, namespace: m.namespace, labels: m.labels, resourceVersion: m.resourceVersion, uid: m.uid }, status: { phase: (obj as { status?: { phase?: string } }).status?.phase } } as KubeObject;
}
