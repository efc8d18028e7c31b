// Shapes shared by the fake kube-apiserver's parts and its users.

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: Record<string, unknown>[];
  [key: string]: unknown;
}

/** Any Kubernetes object, as JSON. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [key: string]: unknown;
}

/** Who a request (or a token) is, as authentication.k8s.io/v1 UserInfo. */
export interface UserInfo {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

export interface RecordedRequest {
  /** Sequence number, from 1. */
  seq: number;
  method: string;
  /** Decoded path, without the query. */
  path: string;
  query: Record<string, string>;
  headers: Record<string, string | string[] | undefined>;
  /** Raw request body ('' for none). */
  body: string;
  /** Set once authenticated; undefined when authentication failed or the request was cut by a fault first. */
  user?: UserInfo;
  /** The response status once written; 0 while pending, or when a fault dropped/hung the request. */
  status: number;
  /** For watches: true. */
  watch: boolean;
  /** For watches: the type of every event written so far (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR). */
  watchEvents?: string[];
  time: Date;
}

/** The attributes an authorizer sees, as kube-apiserver's RequestInfo + user. */
export interface RequestAttributes {
  user: UserInfo;
  verb: string;
  isResourceRequest: boolean;
  path: string;
  apiGroup: string;
  apiVersion: string;
  resource: string;
  subresource: string;
  namespace: string;
  /** For list/watch/deletecollection: the name from a `metadata.name=` field selector, as Kubernetes sets it. */
  name: string;
  fieldSelector?: string;
  labelSelector?: string;
}

export type AuthorizerDecision = boolean | { allowed: boolean; reason?: string };
export type Authorizer = (attrs: RequestAttributes) => AuthorizerDecision | Promise<AuthorizerDecision>;

export interface TokenReviewSpec {
  token?: string;
  audiences?: string[];
}
export interface TokenReviewStatus {
  authenticated?: boolean;
  user?: UserInfo | Record<string, never>;
  audiences?: string[];
  error?: string;
}

export interface SubjectAccessReviewSpec {
  user?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
  resourceAttributes?: {
    namespace?: string;
    verb?: string;
    group?: string;
    version?: string;
    resource?: string;
    subresource?: string;
    name?: string;
    fieldSelector?: unknown;
    labelSelector?: unknown;
  };
  nonResourceAttributes?: { path?: string; verb?: string };
}
export interface SubjectAccessReviewStatus {
  allowed: boolean;
  denied?: boolean;
  reason?: string;
  evaluationError?: string;
}

export interface TokenRequestSpec {
  audiences?: string[];
  expirationSeconds?: number;
  boundObjectRef?: { kind?: string; apiVersion?: string; name?: string; uid?: string } | null;
}
export interface TokenRequestInput {
  namespace: string;
  serviceAccount: KubeObject;
  spec: TokenRequestSpec;
  /** The caller asking for the token. */
  caller: UserInfo;
}
export interface TokenRequestAnswer {
  token: string;
  /** Defaults to now + spec.expirationSeconds. */
  expirationTimestamp?: Date | string;
}

/**
 * A fault, matched against every request (after it is recorded, before authentication).
 * Without an action (status/drop/hang/cutWatch) a `delayMs` fault delays the request, which is then served normally.
 */
export interface Fault {
  /** HTTP method(s), any case. */
  method?: string | string[];
  /** A path prefix (string) or a pattern tested against the path (without the query). */
  path?: string | RegExp;
  /** true: only watch requests; false: only non-watch requests. */
  watch?: boolean;
  /** Only requests whose query has these values. */
  query?: Record<string, string>;
  /** Any other condition. */
  when?: (req: RecordedRequest) => boolean;
  /** How many matching requests to affect; unlimited until cleared by default. */
  times?: number;

  /** Wait this long before acting (or before serving normally). */
  delayMs?: number;
  /** Answer with this code and a Status body (reason and message derived from the code unless given). */
  status?: number;
  reason?: string;
  message?: string;
  /** For 429/503: Retry-After header and details.retryAfterSeconds. */
  retryAfterSeconds?: number;
  /** Destroy the connection without answering: the client sees a reset / "other side closed". */
  drop?: boolean;
  /** Never answer (until the client gives up or the server closes). */
  hang?: boolean;
  /**
   * Carry the request out at once (stored, watchers told), and hold its answer back this long: a
   * client sees the watch event before the answer to its own write, as a busy network can show.
   */
  answerDelayMs?: number;
  /** Serve the watch, then cut it: `end` closes it cleanly (as an apiserver timeout does), `destroy` resets the connection. */
  cutWatch?: { afterMs?: number; afterEvents?: number; mode?: 'end' | 'destroy' };
}

export interface ActiveWatch {
  id: number;
  path: string;
  query: Record<string, string>;
  user: UserInfo;
  apiVersion: string;
  resource: string;
  namespace?: string;
  /** Events written so far (not counting bookmarks). */
  events: number;
  startedAt: Date;
}
