// Where a component's Kubernetes credentials come from (a kubeconfig file, or the pod's service
// account when running in a cluster; otherwise there is no cluster to talk to), and how failed
// calls are read.
import { KubeClient } from './client.js';

export function loadKubeClient(path: string, env: NodeJS.ProcessEnv = process.env): KubeClient | undefined {
  return KubeClient.load(path, env);
}

/** The HTTP status of a failed call, when it carries one. */
export function statusCodeOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown; response?: { statusCode?: unknown } };
  for (const c of [e?.code, e?.statusCode, e?.response?.statusCode]) if (typeof c === 'number') return c;
  return undefined;
}

/** Resolves like `p`, or rejects after `ms`. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from kube-apiserver within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** A failed API call in one short line: the code and the Status message, not the whole response. */
export function describeApiError(err: unknown): string {
  const e = err as { code?: unknown; body?: unknown; message?: string };
  const code = statusCodeOf(err);
  if (code === undefined) return e?.message ?? String(err);
  let message: string;
  try {
    const body = typeof e.body === 'string' ? (JSON.parse(e.body) as { message?: string }) : (e.body as { message?: string } | undefined);
    message = body?.message ?? '';
  } catch {
    message = '';
  }
  return `HTTP ${code}${message ? `: ${message}` : ''}`;
}
