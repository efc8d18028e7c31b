// Bearer tokens, checked the way aggregated servers check them: a TokenReview against
// kube-apiserver, answers cached for a short TTL, identical concurrent reviews sent once.
// Tokens never leave this module except inside the review itself; cache keys are hashes.
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { KubeClient } from '../../k8s/client.js';
import type { Logger } from 'pino';
import { ReviewCache } from '../../k8s/review-cache.js';
import { withTimeout } from '../../k8s/kubeconfig.js';
import type { DelegatedAuthMetrics } from '../../observability/metrics.js';
import { bearerToken, type AuthResult, type Authenticator } from './authenticate.js';
import { withAuthenticatedGroup, type UserInfo } from './user.js';

export interface TokenReviewOptions {
  cacheTtlMs: number;
  timeoutMs: number;
  maxEntries?: number;
  audiences?: string[];
}

type Review = { user: UserInfo } | { unauthenticated: string };

interface TokenReview {
  status?: { authenticated?: boolean; error?: string; user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> } };
}

export function tokenReviewAuthenticator(client: KubeClient, opts: TokenReviewOptions, metrics: DelegatedAuthMetrics, log: Logger): Authenticator {
  const cache = new ReviewCache<Review>(opts.maxEntries ?? 10_000, () => opts.cacheTtlMs);

  const review = async (token: string): Promise<Review> => {
    const started = performance.now();
    try {
      const res = await withTimeout(
        client.post<TokenReview>('/apis/authentication.k8s.io/v1/tokenreviews', { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, ...(opts.audiences ? { audiences: opts.audiences } : {}) } }, { timeoutMs: 0 }),
        opts.timeoutMs,
        'TokenReview',
      );
      const status = res.status ?? {};
      const result: Review =
        status.authenticated && status.user?.username
          ? {
              user: withAuthenticatedGroup({
                name: status.user.username,
                uid: status.user.uid ?? '',
                groups: status.user.groups ?? [],
                extra: status.user.extra ?? {},
              }),
            }
          : { unauthenticated: status.error || 'token not authenticated' };
      metrics.reviews.inc({ review: 'token', result: 'user' in result ? 'authenticated' : 'unauthenticated' });
      return result;
    } catch (err) {
      metrics.reviews.inc({ review: 'token', result: 'error' });
      // The message of a failed call never contains the token: only the request did.
      log.warn({ reason: (err as Error).message }, 'TokenReview failed: refusing the request');
      throw err;
    } finally {
      metrics.duration.observe({ review: 'token' }, (performance.now() - started) / 1000);
    }
  };

  return {
    async authenticate(req: IncomingMessage): Promise<AuthResult> {
      const token = bearerToken(req);
      if (token === undefined) return undefined;
      // A client that presented a certificate is authenticated by it or refused; see authenticate.ts.
      if ((req.socket as TLSSocket).getPeerCertificate?.()?.raw) return undefined;
      const key = createHash('sha256').update(token).digest('base64');
      try {
        const r = await cache.get(key, () => review(token), (o) => metrics.cache.inc({ review: 'token', result: o }));
        return 'user' in r ? { user: r.user } : { error: `token review: ${r.unauthenticated}` };
      } catch (err) {
        return { error: `token review unavailable: ${(err as Error).message}` };
      }
    },
  };
}
