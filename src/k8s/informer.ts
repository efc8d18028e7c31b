// A list+watch that does not stall: client-node's ListWatch relists on 410 Gone and reconnects on
// timeouts, but stops for good on any other error. This restarts it with backoff, so a dropped
// connection or a kube-apiserver restart is a pause, never a silent end of updates.
import { ListWatch, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { describeApiError } from './kubeconfig.js';

export interface ResilientInformerOptions<T extends KubernetesObject> {
  kc: KubeConfig;
  /** The collection path, e.g. `/api/v1/namespaces/kube-system/configmaps`. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  fieldSelector?: string;
  labelSelector?: string;
  name: string;
  log: Logger;
  maxBackoffMs?: number;
}

export interface ResilientInformer<T extends KubernetesObject> {
  /** Called with every object on add and update, and with `undefined` when deleted. */
  onObject(listener: (obj: T | undefined, event: 'add' | 'update' | 'delete') => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function resilientInformer<T extends KubernetesObject>(o: ResilientInformerOptions<T>): ResilientInformer<T> {
  const lw = new ListWatch<T>(o.path, new Watch(o.kc), o.list, false, o.labelSelector, o.fieldSelector);
  const listeners: ((obj: T | undefined, event: 'add' | 'update' | 'delete') => void)[] = [];
  let stopped = false;
  let backoffMs = 500;
  let timer: NodeJS.Timeout | undefined;

  lw.on('add', (obj) => listeners.forEach((l) => l(obj, 'add')));
  lw.on('update', (obj) => listeners.forEach((l) => l(obj, 'update')));
  lw.on('delete', (obj) => listeners.forEach((l) => l(obj, 'delete')));
  lw.on('connect', () => {
    backoffMs = 500;
  });
  lw.on('error', (err: unknown) => {
    if (stopped) return;
    o.log.warn({ informer: o.name, reason: describeApiError(err), retryInMs: backoffMs }, 'watch interrupted, restarting');
    clearTimeout(timer);
    timer = setTimeout(() => {
      if (!stopped) lw.start().catch(() => undefined);
    }, backoffMs);
    timer.unref();
    backoffMs = Math.min(backoffMs * 2, o.maxBackoffMs ?? 30_000);
  });

  return {
    onObject: (l) => void listeners.push(l),
    start: () => lw.start(),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await lw.stop();
    },
  };
}
