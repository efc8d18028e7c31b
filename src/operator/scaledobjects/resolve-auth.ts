// A trigger's authenticationRef turned into the parameters its scaler gets: Secret values
// (secretTargetRef) and short-lived service-account tokens (boundServiceAccountToken). The same
// for every store; values are never logged and never appear in a message.
import type { AuthParams, AuthenticationRef, ScaledObjectStore } from './types.js';

/** Short-lived tokens for a service account (TokenRequest); see src/k8s/service-account-tokens.ts. */
export interface TokenSource {
  get(namespace: string, serviceAccountName: string, opts: { audiences?: string[]; expirationSeconds?: number }): Promise<{ token: string; refreshAt: Date }>;
}

export interface ResolvedAuth {
  params: AuthParams;
  /** When a token in params is due for renewal (ms since epoch): the scaler is rebuilt then. */
  refreshAt?: number;
}

/** What the user must change: a missing object, key or permission, named. */
export class AuthResolutionError extends Error {
  override readonly name = 'AuthResolutionError';
}

/**
 * Resolves every parameter, or throws one AuthResolutionError listing every problem. A bound
 * token is requested in the ScaledObject's namespace, also for a ClusterTriggerAuthentication
 * (KEDA's rule: the workload's own service accounts, never KEDA's).
 */
export async function resolveAuth(
  store: Pick<ScaledObjectStore, 'lookupAuth' | 'readSecret'>,
  tokens: TokenSource | undefined,
  namespace: string,
  ref: AuthenticationRef,
): Promise<ResolvedAuth> {
  let found;
  try {
    found = store.lookupAuth(namespace, ref);
  } catch (err) {
    throw new AuthResolutionError((err as Error).message);
  }
  const { label, secretNamespace, spec } = found;
  const params: AuthParams = {};
  const problems: string[] = [];
  let refreshAt: number | undefined;

  const secrets = new Map<string, Promise<Map<string, string> | undefined>>();
  for (const t of spec.secretTargetRef) {
    if (!secrets.has(t.name)) secrets.set(t.name, store.readSecret(secretNamespace, t.name));
  }
  for (const t of spec.secretTargetRef) {
    let secret: Map<string, string> | undefined;
    try {
      secret = await secrets.get(t.name);
    } catch (err) {
      problems.push(`secret ${secretNamespace}/${t.name}: ${(err as Error).message}`);
      continue;
    }
    const value = secret?.get(t.key);
    if (!secret) problems.push(`secret ${secretNamespace}/${t.name} not found`);
    else if (value === undefined) problems.push(`secret ${secretNamespace}/${t.name} has no key ${JSON.stringify(t.key)}`);
    else params[t.parameter] = value;
  }

  for (const b of spec.boundServiceAccountToken) {
    if (!tokens) {
      problems.push(`boundServiceAccountToken for service account ${namespace}/${b.serviceAccountName} needs the operator flag --enable-service-account-token-requests`);
      continue;
    }
    try {
      const token = await tokens.get(namespace, b.serviceAccountName, { ...(b.audiences ? { audiences: b.audiences } : {}), ...(b.expirationSeconds ? { expirationSeconds: b.expirationSeconds } : {}) });
      params[b.parameter] = token.token;
      refreshAt = Math.min(refreshAt ?? Infinity, token.refreshAt.getTime());
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  if (problems.length > 0) throw new AuthResolutionError(`${label}: ${[...new Set(problems)].join('; ')}`);
  return refreshAt === undefined ? { params } : { params, refreshAt };
}
