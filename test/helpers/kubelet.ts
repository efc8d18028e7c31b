// The kubelet's part in certificate rotation, for tests: it projects a Secret from the API server
// (real or fake) into a pod's volume with the atomic `..data` swap, a short while after it changes.
import type { FakeApiServer } from './fake-apiserver.js';
import { ProjectedDir } from './certdir.js';
import type { Kube } from './kube.js';

export interface SecretMount {
  dir: string;
  /** Number of projections written so far. */
  readonly syncs: number;
  stop(): void;
}

type Secret = { metadata?: { resourceVersion?: string }; data?: Record<string, string> };

/** Mounts Secret namespace/name into `dir`, read from a real API server (Kube) or the fake's store. */
export function mountSecret(from: Kube | FakeApiServer, namespace: string, name: string, dir: string, periodMs = 100): SecretMount {
  const read = async (): Promise<Secret | undefined> =>
    'request' in from ? from.get<Secret & { apiVersion?: string }>('v1', 'Secret', namespace, name) : from.get<Secret & { apiVersion?: string }>('v1', 'Secret', namespace, name);
  const projected = new ProjectedDir(dir);
  let lastVersion = '';
  let syncs = 0;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void (async () => {
      const secret = await read().catch(() => undefined);
      const version = secret?.metadata?.resourceVersion ?? '';
      if (!secret || version === lastVersion) return;
      const files = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
      await projected.write(files);
      lastVersion = version;
      syncs++;
    })().finally(() => (busy = false));
  }, periodMs);
  timer.unref();
  return {
    dir,
    get syncs() {
      return syncs;
    },
    stop: () => clearInterval(timer),
  };
}
