// Authorization as kube-apiserver composes it: a chain of authorizers, each allowing, denying or
// having no opinion; the first decision wins and no decision is a denial.
import type { ResourceOrPath } from '../../k8s/status.js';
import type { UserInfo } from './user.js';

export type Decision = { decision: 'allow' } | { decision: 'deny'; reason: string } | { decision: 'none' };

export interface Authorizer {
  authorize(user: UserInfo, attrs: ResourceOrPath): Decision | Promise<Decision>;
}

const NO_OPINION: Decision = { decision: 'none' };
const ALLOW: Decision = { decision: 'allow' };

export function alwaysAllowGroups(groups: readonly string[]): Authorizer {
  const set = new Set(groups);
  return { authorize: (user) => (user.groups.some((g) => set.has(g)) ? ALLOW : NO_OPINION) };
}

/** Kubernetes' --authorization-always-allow-paths: exact paths, or prefixes written with a trailing `*`. */
export function alwaysAllowPaths(paths: readonly string[]): Authorizer {
  const exact = new Set(paths.filter((p) => !p.endsWith('*')));
  const prefixes = paths.filter((p) => p.endsWith('*')).map((p) => p.slice(0, -1));
  return {
    authorize: (_user, attrs) => {
      if (attrs.kind !== 'nonResource') return NO_OPINION;
      return exact.has(attrs.path) || prefixes.some((p) => attrs.path.startsWith(p)) ? ALLOW : NO_OPINION;
    },
  };
}

export function authorizerChain(authorizers: readonly Authorizer[]): Authorizer {
  return {
    async authorize(user, attrs) {
      for (const a of authorizers) {
        const d = await a.authorize(user, attrs);
        if (d.decision !== 'none') return d;
      }
      return NO_OPINION;
    },
  };
}
