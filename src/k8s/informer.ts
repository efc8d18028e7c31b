// List+watch that never stalls, written the way client-go's reflector behaves: list (in pages),
// then watch from the list's resourceVersion with bookmarks, resume from the last version seen
// after a dropped connection, list again only on 410 Gone, back off on errors (a refused list, a
// kube-apiserver restart) and keep going until stopped. A relist is compared with what was known,
// so only real changes become events (objects gone meanwhile become deletes).
//
// `metadataOnly` asks for PartialObjectMetadata: the object's metadata and nothing else, for
// watches that only need to know that something exists or changed (Secrets, scale targets).
import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { ApiError, type KubeClient } from './client.js';
import type { KubeObject } from './types.js';

export type InformerEvent = 'add' | 'update' | 'delete';

export interface InformerOptions {
  client: KubeClient;
  /** The collection path, e.g. `/api/v1/namespaces/kube-system/configmaps`. */
  path: string;
  fieldSelector?: string;
  labelSelector?: string;
  /** Only metadata (PartialObjectMetadata). */
  metadataOnly?: boolean;
  /** Keep metadata.managedFields (dropped otherwise: often most of an object's size). */
  keepManagedFields?: boolean;
  /** What is kept of each object (and handed to listeners): the fields a caller needs, for memory. */
  transform?: (obj: KubeObject) => KubeObject;
  name: string;
  log: Logger;
  /** Items per list page. */
  pageSize?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * A 403 Forbidden (RBAC) ends the informer instead of being retried: start() rejects with a
   * ForbiddenError, for watches the caller can do without.
   */
  stopOnForbidden?: boolean;
}

export interface Informer<T extends KubeObject> {
  /** Called with every object added, changed (new resourceVersion) or deleted. */
  onObject(listener: (obj: T, event: InformerEvent) => void): void;
  /** Resolves once the first list is in (its objects delivered); later failures are retried. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Objects currently known, by `namespace/name`. */
  readonly size: number;
}

class GoneError extends Error {
  override readonly name = 'GoneError';
}

export class ForbiddenError extends Error {
  override readonly name = 'ForbiddenError';
}

class WatchError extends Error {}

const keyOf = (o: KubeObject) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

export function informer<T extends KubeObject>(o: InformerOptions): Informer<T> {
  const listeners: ((obj: T, event: InformerEvent) => void)[] = [];
  const known = new Map<string, T>();
  const initialBackoff = o.initialBackoffMs ?? 250;
  let resourceVersion = '';
  let stopped = false;
  /** Aborted by stop(): ends whatever request is in flight, or about to be. */
  let stopping = new AbortController();
  let sleeper: { timer: NodeJS.Timeout; wake: () => void } | undefined;
  let loop: Promise<void> | undefined;
  let backoff = initialBackoff;

  const trim = (obj: T): T => {
    if (!o.keepManagedFields && obj.metadata?.managedFields) delete obj.metadata.managedFields;
    return (o.transform ? o.transform(obj) : obj) as T;
  };

  const emit = (obj: T, event: InformerEvent) => {
    for (const l of listeners) {
      try {
        l(obj, event);
      } catch (err) {
        o.log.error({ informer: o.name, err: (err as Error).message }, 'an informer listener failed');
      }
    }
  };

  const accept = (list: boolean) => (o.metadataOnly ? `application/json;as=PartialObjectMetadata${list ? 'List' : ''};g=meta.k8s.io;v=v1,application/json` : 'application/json');
  const selectors = { labelSelector: o.labelSelector, fieldSelector: o.fieldSelector };
  /** Turns the cases the loop treats specially into their own errors. */
  const classify = (err: unknown): never => {
    if (err instanceof ApiError && err.code === 410) throw new GoneError(err.body?.message ?? 'Gone');
    if (err instanceof ApiError && err.code === 403 && o.stopOnForbidden) throw new ForbiddenError(err.body?.message ?? err.message);
    throw err;
  };

  /** Lists every page, then turns the difference with what was known into events. */
  const list = async () => {
    const items: T[] = [];
    let cont = '';
    let rv: string;
    do {
      const page = await o.client
        .get<{ items?: T[]; metadata?: { resourceVersion?: string; continue?: string } }>(o.path, { query: { ...selectors, limit: o.pageSize ?? 500, continue: cont || undefined }, accept: accept(true), signal: stopping.signal, timeoutMs: 60_000 })
        .catch(classify);
      backoff = initialBackoff;
      for (const item of page.items ?? []) items.push(trim(item));
      cont = page.metadata?.continue ?? '';
      rv = page.metadata?.resourceVersion ?? '';
    } while (cont);
    const seen = new Set<string>();
    for (const item of items) {
      const key = keyOf(item);
      seen.add(key);
      const prev = known.get(key);
      known.set(key, item);
      if (!prev) emit(item, 'add');
      else if (prev.metadata?.resourceVersion !== item.metadata?.resourceVersion) emit(item, 'update');
    }
    for (const [key, prev] of known) {
      if (seen.has(key)) continue;
      known.delete(key);
      emit(prev, 'delete');
    }
    resourceVersion = rv;
  };

  /** One watch, until the server ends it (normal) or it fails (thrown). */
  const watch = async () => {
    // As client-go: a random server-side timeout, so that watches do not all renew at once.
    const timeoutSeconds = randomInt(300, 600);
    // A connection that went silent (peer gone without a FIN) is given up once the server would
    // have ended the watch anyway.
    const silence = new AbortController();
    const silent = setTimeout(() => silence.abort(new Error('watch went silent')), (timeoutSeconds + 30) * 1000);
    silent.unref();
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      const body = await o.client
        .stream(o.path, { query: { ...selectors, watch: 1, resourceVersion, allowWatchBookmarks: true, timeoutSeconds }, accept: accept(false), signal: AbortSignal.any([stopping.signal, silence.signal]) })
        .catch(classify);
      backoff = initialBackoff;
      for await (const chunk of body) {
        silent.refresh();
        buffered += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line.trim() !== '') handle(JSON.parse(line) as { type: string; object: T & { code?: number; message?: string } });
        }
      }
    } finally {
      clearTimeout(silent);
    }
  };

  const handle = (ev: { type: string; object: T & { code?: number; message?: string } }) => {
    if (ev.type === 'ERROR') {
      const status = ev.object;
      if (status.code === 410) throw new GoneError(status.message ?? 'Gone');
      throw new WatchError(`watch error: HTTP ${status.code ?? 500}: ${status.message ?? 'unknown'}`);
    }
    const obj = trim(ev.object);
    const rv = obj.metadata?.resourceVersion;
    if (rv) resourceVersion = rv;
    if (ev.type === 'BOOKMARK') return;
    const key = keyOf(obj);
    if (ev.type === 'DELETED') {
      known.delete(key);
      emit(obj, 'delete');
      return;
    }
    const prev = known.get(key);
    known.set(key, obj);
    emit(obj, prev ? 'update' : 'add');
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      sleeper = { timer, wake: resolve };
    });

  const run = async (firstList: { resolve: () => void; reject: (e: Error) => void }) => {
    let listed = false;
    while (!stopped) {
      try {
        if (!resourceVersion) {
          await list();
          if (!listed) {
            listed = true;
            firstList.resolve();
          }
        }
        await watch();
        // Ended by the server (timeoutSeconds, shutdown): resume from the last version seen.
      } catch (err) {
        if (stopped) break;
        if (err instanceof ForbiddenError) {
          if (!listed) firstList.reject(err);
          stopped = true;
          break;
        }
        if (err instanceof GoneError) {
          o.log.info({ informer: o.name }, 'watch history expired: listing again');
          resourceVersion = '';
          continue;
        }
        o.log.warn({ informer: o.name, reason: (err as Error).message, retryInMs: backoff }, 'watch interrupted, restarting');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, o.maxBackoffMs ?? 10_000);
      }
    }
    if (!listed) firstList.reject(new Error(`${o.name}: stopped before the first list`));
  };

  return {
    onObject: (l) => void listeners.push(l),
    get size() {
      return known.size;
    },
    start() {
      stopped = false;
      stopping = new AbortController();
      return new Promise<void>((resolve, reject) => {
        loop = run({ resolve, reject });
      });
    },
    async stop() {
      stopped = true;
      stopping.abort();
      if (sleeper) {
        clearTimeout(sleeper.timer);
        sleeper.wake();
      }
      await loop?.catch(() => undefined);
    },
  };
}
