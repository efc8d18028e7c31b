// The kubelet's part in certificate rotation, for tests: it projects a Secret from the (fake)
// API server into a pod's volume with the atomic `..data` swap, a short while after it changes.
import type { FakeApiServer } from './fake-apiserver.js';
import { ProjectedDir } from './certdir.js';

export interface SecretMount {
  dir: string;
  /** Number of projections written so far. */
  readonly syncs: number;
  stop(): void;
}

export function mountSecret(api: FakeApiServer, namespace: string, name: string, dir: string, periodMs = 100): SecretMount {
  const projected = new ProjectedDir(dir);
  let lastVersion = '';
  let syncs = 0;
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    const secret = api.get('v1', 'Secret', namespace, name) as { metadata?: { resourceVersion?: string }; data?: Record<string, string> } | undefined;
    const version = secret?.metadata?.resourceVersion ?? '';
    if (!secret || version === lastVersion) return;
    busy = true;
    const files = Object.fromEntries(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
    projected
      .write(files)
      .then(() => {
        lastVersion = version;
        syncs++;
      })
      .finally(() => (busy = false));
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
