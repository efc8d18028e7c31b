// Authentication as a Kubernetes aggregated server does it, first match wins:
//   1. front-proxy: a client certificate from the request-header CA (CN allowed) -> identity headers
//   2. x509: a client certificate from the client CA -> user = CN, groups = O
//   3. bearer token (not configured yet: such requests are refused)
// Identity headers are read only in step 1, so any other client that sends them is ignored.
import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { RequestHeaderConfig } from '../config.js';
import { commonName, subjectField } from '../../tls/pem.js';
import { chainsTo, presentedChain } from '../../tls/peer-chain.js';
import { withAuthenticatedGroup, type UserInfo } from './user.js';

export type AuthResult = { user: UserInfo } | { error: string } | undefined;

export interface Authenticator {
  authenticate(req: IncomingMessage): AuthResult | Promise<AuthResult>;
}

/** The trust bundles as they are right now (they reload), plus a generation to invalidate caches. */
export interface TrustSource {
  generation: number;
  anchors(name: 'client-ca' | 'requestheader-client-ca'): readonly X509Certificate[];
}

interface CertVerdict {
  generation: number;
  settings: RequestHeaderRuntime;
  frontProxy?: { allowed: true } | { allowed: false; reason: string };
  x509?: UserInfo;
  invalid?: string;
}

/** Per-connection, because a TLS peer cannot change its certificate mid-connection. */
const verdicts = new WeakMap<TLSSocket, CertVerdict>();

export function certificateVerdict(socket: TLSSocket, trust: TrustSource, settings: RequestHeaderRuntime): CertVerdict {
  const cached = verdicts.get(socket);
  if (cached && cached.generation === trust.generation && cached.settings === settings) return cached;
  const { allowedNames } = settings;
  const verdict: CertVerdict = { generation: trust.generation, settings };
  const chain = presentedChain(socket);
  if (chain.length > 0) {
    if (!socket.authorized) {
      verdict.invalid = `client certificate rejected: ${String(socket.authorizationError ?? 'not verified')}`;
    } else {
      const leaf = chain[0] as X509Certificate;
      if (chainsTo(chain, trust.anchors('requestheader-client-ca'))) {
        const cn = commonName(leaf);
        verdict.frontProxy =
          allowedNames.size === 0 || allowedNames.has(cn)
            ? { allowed: true }
            : { allowed: false, reason: `front-proxy client certificate CN "${cn}" is not in --requestheader-allowed-names` };
      }
      if (chainsTo(chain, trust.anchors('client-ca'))) {
        verdict.x509 = withAuthenticatedGroup({ name: commonName(leaf), uid: '', groups: subjectField(leaf, 'O'), extra: {} });
      }
      if (!verdict.frontProxy && !verdict.x509) verdict.invalid = 'client certificate does not chain to a trusted client CA';
    }
  }
  verdicts.set(socket, verdict);
  return verdict;
}

interface HeaderNames {
  userHeaders: string[];
  groupHeaders: Set<string>;
  extraPrefixes: string[];
}

/** Front-proxy settings in the form the hot path reads; replaced whole when they change. */
export interface RequestHeaderRuntime extends HeaderNames {
  allowedNames: ReadonlySet<string>;
}

export type RequestHeaderSettings = Pick<RequestHeaderConfig, 'allowedNames' | 'usernameHeaders' | 'groupHeaders' | 'extraHeaderPrefixes'>;

export function requestHeaderRuntime(cfg: RequestHeaderSettings): RequestHeaderRuntime {
  return {
    allowedNames: new Set(cfg.allowedNames),
    userHeaders: cfg.usernameHeaders.map((h) => h.toLowerCase()),
    groupHeaders: new Set(cfg.groupHeaders.map((h) => h.toLowerCase())),
    extraPrefixes: cfg.extraHeaderPrefixes.map((h) => h.toLowerCase()),
  };
}

export function headerIdentity(req: IncomingMessage, { userHeaders, groupHeaders, extraPrefixes }: HeaderNames): UserInfo | undefined {
  const users = new Map<string, string>();
  const groups: string[] = [];
  const extra: Record<string, string[]> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] as string).toLowerCase();
    const value = raw[i + 1] as string;
    if (userHeaders.includes(name)) {
      if (!users.has(name) && value !== '') users.set(name, value);
    } else if (groupHeaders.has(name)) {
      groups.push(value);
    } else {
      const prefix = extraPrefixes.find((p) => name.startsWith(p));
      if (prefix !== undefined) {
        const key = unescapeExtraKey(name.slice(prefix.length));
        (extra[key] ??= []).push(value);
      }
    }
  }
  const name = userHeaders.map((h) => users.get(h)).find((u) => u !== undefined);
  if (name === undefined) return undefined;
  return withAuthenticatedGroup({ name, uid: '', groups, extra });
}

function unescapeExtraKey(key: string): string {
  try {
    return decodeURIComponent(key);
  } catch {
    return key;
  }
}

/** `settings` is read on every request: the cluster's ConfigMap may replace it at any time. */
export function certificateAuthenticator(trust: TrustSource, settings: () => RequestHeaderRuntime): Authenticator {
  return {
    authenticate(req) {
      const socket = req.socket as TLSSocket;
      const names = settings();
      const verdict = certificateVerdict(socket, trust, names);
      if (verdict.invalid) return { error: verdict.invalid };
      const errors: string[] = [];
      if (verdict.frontProxy) {
        if (verdict.frontProxy.allowed) {
          const user = headerIdentity(req, names);
          if (user) return { user };
          errors.push('front-proxy request carries no user header');
        } else {
          errors.push(verdict.frontProxy.reason);
        }
      }
      if (verdict.x509) return { user: verdict.x509 };
      if (errors.length > 0) return { error: errors.join('; ') };
      return undefined;
    },
  };
}

/** Without a cluster to review tokens, a bearer token is an authentication failure, never anonymous access. */
export const bearerTokenNotConfigured: Authenticator = {
  authenticate(req) {
    return bearerToken(req) !== undefined ? { error: 'bearer token authentication is not configured' } : undefined;
  },
};

export function bearerToken(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const m = /^bearer\s+(\S+)\s*$/i.exec(h);
  return m ? m[1] : undefined;
}

export function authenticatorChain(authenticators: readonly Authenticator[]): Authenticator {
  return {
    async authenticate(req) {
      const errors: string[] = [];
      for (const a of authenticators) {
        const r = await a.authenticate(req);
        if (r && 'user' in r) return r;
        if (r) errors.push(r.error);
      }
      return errors.length > 0 ? { error: errors.join('; ') } : undefined;
    },
  };
}
