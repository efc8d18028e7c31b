// Authorization delegated to kube-apiserver with SubjectAccessReviews, the attributes Kubernetes
// itself uses, allowed and denied answers cached separately, identical concurrent reviews sent
// once, and failure closed: an error or a timeout is never an allow.
import type { KubeClient } from '../../k8s/client.js';
import type { Logger } from 'pino';
import { ReviewCache } from '../../k8s/review-cache.js';
import { withTimeout } from '../../k8s/kubeconfig.js';
import type { ResourceOrPath } from '../../k8s/status.js';
import type { DelegatedAuthMetrics } from '../../observability/metrics.js';
import type { Authorizer, Decision } from './authorize.js';
import type { UserInfo } from './user.js';

export interface SubjectAccessReviewOptions {
  allowedTtlMs: number;
  deniedTtlMs: number;
  timeoutMs: number;
  maxEntries?: number;
}

/** authorization.k8s.io/v1 SubjectAccessReviewSpec, the fields we send. */
export interface SubjectAccessReviewSpec {
  user: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
  resourceAttributes?: { namespace: string; verb: string; group: string; version: string; resource: string; subresource?: string; name?: string };
  nonResourceAttributes?: { path: string; verb: string };
}

/** Thrown when kube-apiserver could not answer: the request fails closed. */
export class AuthorizationUnavailableError extends Error {
  override readonly name = 'AuthorizationUnavailableError';
}

export function reviewSpec(user: UserInfo, attrs: ResourceOrPath): SubjectAccessReviewSpec {
  const who = { user: user.name, groups: user.groups, ...(user.uid ? { uid: user.uid } : {}), ...(Object.keys(user.extra).length > 0 ? { extra: user.extra } : {}) };
  if (attrs.kind === 'nonResource') return { ...who, nonResourceAttributes: { path: attrs.path, verb: attrs.verb } };
  return {
    ...who,
    resourceAttributes: {
      namespace: attrs.namespace,
      verb: attrs.verb,
      group: attrs.group,
      version: attrs.version,
      resource: attrs.resource,
      ...(attrs.subresource ? { subresource: attrs.subresource } : {}),
      ...(attrs.name ? { name: attrs.name } : {}),
    },
  };
}

export function subjectAccessReviewAuthorizer(client: KubeClient, opts: SubjectAccessReviewOptions, metrics: DelegatedAuthMetrics, log: Logger): Authorizer {
  const cache = new ReviewCache<Decision>(opts.maxEntries ?? 10_000, (d) => (d.decision === 'allow' ? opts.allowedTtlMs : opts.deniedTtlMs));

  const review = async (spec: SubjectAccessReviewSpec): Promise<Decision> => {
    const started = performance.now();
    try {
      const res = await withTimeout(
        client.post<{ status?: { allowed?: boolean; reason?: string } }>('/apis/authorization.k8s.io/v1/subjectaccessreviews', { apiVersion: 'authorization.k8s.io/v1', kind: 'SubjectAccessReview', spec }, { timeoutMs: 0 }),
        opts.timeoutMs,
        'SubjectAccessReview',
      );
      const s = res.status;
      const decision: Decision = s?.allowed ? { decision: 'allow' } : { decision: 'deny', reason: s?.reason ?? '' };
      metrics.reviews.inc({ review: 'subject_access', result: s?.allowed ? 'allowed' : 'denied' });
      return decision;
    } catch (err) {
      metrics.reviews.inc({ review: 'subject_access', result: 'error' });
      log.warn({ user: spec.user, reason: (err as Error).message }, 'SubjectAccessReview failed: refusing the request');
      throw new AuthorizationUnavailableError(`authorization check failed: ${(err as Error).message}`);
    } finally {
      metrics.duration.observe({ review: 'subject_access' }, (performance.now() - started) / 1000);
    }
  };

  return {
    authorize(user, attrs) {
      const spec = reviewSpec(user, attrs);
      return cache.get(JSON.stringify(spec), () => review(spec), (o) => metrics.cache.inc({ review: 'subject_access', result: o }));
    },
  };
}
