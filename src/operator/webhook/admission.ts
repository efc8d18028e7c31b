// AdmissionReview (admission.k8s.io/v1) as kube-apiserver sends it to a validating webhook, and
// the answer it expects: the same envelope, `response.uid` echoing `request.uid`. Pure: no I/O.
//
// Only v1 is spoken (the webhook configuration declares `admissionReviewVersions: [v1]`): a
// v1beta1 review would need a v1beta1 answer, so it is refused as malformed rather than answered
// in a version the caller did not ask for.
//
// A body that is not a review is a client error (HTTP 400), never a verdict: kube-apiserver then
// applies the webhook's failurePolicy, which is what that policy is for.

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';
const OPERATIONS: readonly Operation[] = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'];

export interface GroupVersionKind {
  group: string;
  version: string;
  kind: string;
}

export interface GroupVersionResource {
  group: string;
  version: string;
  resource: string;
}

export interface AdmissionUserInfo {
  username?: string;
  uid?: string;
  groups?: string[];
}

/** `request` of an AdmissionReview: the fields a validating webhook reads. */
export interface AdmissionRequest {
  uid: string;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  subResource?: string;
  /** With matchPolicy Equivalent: what the caller actually sent, before conversion. */
  requestKind?: GroupVersionKind;
  requestResource?: GroupVersionResource;
  /** May be empty on CREATE (generateName). */
  name?: string;
  /** Empty for cluster-scoped resources. */
  namespace?: string;
  operation: Operation;
  userInfo: AdmissionUserInfo;
  /** The new object; null for DELETE. */
  object: unknown;
  /** The existing object for UPDATE and DELETE; null for CREATE. */
  oldObject: unknown;
  dryRun: boolean;
}

/** What the rules decided. `message` is required when not allowed. */
export interface Verdict {
  allowed: boolean;
  message?: string;
  warnings: string[];
}

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; message: string; reason?: string };
  warnings?: string[];
}

export interface AdmissionReviewResponse {
  apiVersion: typeof ADMISSION_API_VERSION;
  kind: 'AdmissionReview';
  response: AdmissionResponse;
}

/** The body is not an AdmissionReview v1 request: answered with HTTP 400, message as given. */
export class AdmissionReviewError extends Error {
  override readonly name = 'AdmissionReviewError';
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const fail = (message: string): never => {
  throw new AdmissionReviewError(`malformed AdmissionReview: ${message}`);
};

function str(o: Obj, field: string, at: string, required: boolean): string | undefined {
  const v = o[field];
  if (v === undefined || v === null) {
    if (required) fail(`${at}.${field} is required`);
    return undefined;
  }
  if (typeof v !== 'string') fail(`${at}.${field} must be a string`);
  return v as string;
}

/** A group/version plus `kind` or `resource` at request.<field> (group may be empty: the core group). */
function groupVersion<K extends 'kind' | 'resource'>(o: Obj, field: string, required: boolean, last: K): ({ group: string; version: string } & Record<K, string>) | undefined {
  const v = o[field];
  if (v === undefined || v === null) {
    if (required) fail(`request.${field} is required`);
    return undefined;
  }
  if (!isObj(v)) return fail(`request.${field} must be an object`);
  const at = `request.${field}`;
  return { group: str(v, 'group', at, false) ?? '', version: str(v, 'version', at, true)!, [last]: str(v, last, at, true)! } as { group: string; version: string } & Record<K, string>;
}

const gvk = (o: Obj, field: string, required: boolean): GroupVersionKind | undefined => groupVersion(o, field, required, 'kind');
const gvr = (o: Obj, field: string, required: boolean): GroupVersionResource | undefined => groupVersion(o, field, required, 'resource');

/** Checks the envelope and returns its request; throws AdmissionReviewError naming what is wrong. */
export function parseAdmissionReview(body: unknown): AdmissionRequest {
  if (!isObj(body)) return fail('expected a JSON object');
  if (body.apiVersion !== ADMISSION_API_VERSION) {
    fail(`apiVersion must be ${ADMISSION_API_VERSION} (got ${typeof body.apiVersion === 'string' ? JSON.stringify(body.apiVersion.slice(0, 60)) : typeof body.apiVersion}); only admissionReviewVersions [v1] is served`);
  }
  if (body.kind !== 'AdmissionReview') fail('kind must be AdmissionReview');
  const r = body.request;
  if (!isObj(r)) return fail('request is required and must be an object');
  const uid = str(r, 'uid', 'request', true)!;
  if (uid === '') fail('request.uid must not be empty');
  const operation = str(r, 'operation', 'request', true) as Operation;
  if (!OPERATIONS.includes(operation)) fail(`request.operation must be one of ${OPERATIONS.join(', ')}`);
  const userInfo = r.userInfo;
  if (userInfo !== undefined && userInfo !== null && !isObj(userInfo)) fail('request.userInfo must be an object');
  const user: AdmissionUserInfo = {};
  if (isObj(userInfo)) {
    const username = str(userInfo, 'username', 'request.userInfo', false);
    const userUid = str(userInfo, 'uid', 'request.userInfo', false);
    if (username !== undefined) user.username = username;
    if (userUid !== undefined) user.uid = userUid;
    if (Array.isArray(userInfo.groups)) user.groups = userInfo.groups.filter((g): g is string => typeof g === 'string');
  }
  if (r.dryRun !== undefined && r.dryRun !== null && typeof r.dryRun !== 'boolean') fail('request.dryRun must be true or false');
  for (const field of ['object', 'oldObject'] as const) {
    const v = r[field];
    if (v !== undefined && v !== null && !isObj(v)) fail(`request.${field} must be an object or null`);
  }
  if ((operation === 'CREATE' || operation === 'UPDATE') && !isObj(r.object)) fail(`request.object is required for ${operation}`);

  const out: AdmissionRequest = {
    uid,
    kind: gvk(r, 'kind', true)!,
    resource: gvr(r, 'resource', true)!,
    operation,
    userInfo: user,
    object: r.object ?? null,
    oldObject: r.oldObject ?? null,
    dryRun: r.dryRun === true,
  };
  const subResource = str(r, 'subResource', 'request', false);
  const requestKind = gvk(r, 'requestKind', false);
  const requestResource = gvr(r, 'requestResource', false);
  const name = str(r, 'name', 'request', false);
  const namespace = str(r, 'namespace', 'request', false);
  if (subResource !== undefined && subResource !== '') out.subResource = subResource;
  if (requestKind) out.requestKind = requestKind;
  if (requestResource) out.requestResource = requestResource;
  if (name !== undefined && name !== '') out.name = name;
  if (namespace !== undefined && namespace !== '') out.namespace = namespace;
  return out;
}

/**
 * The answer: uid echoed; a denial carries a Status (403 Forbidden, as controller-runtime's
 * `Denied` and so KEDA's webhooks), whose message kube-apiserver shows after
 * `admission webhook "<name>" denied the request: `. Warnings are shown by kubectl as
 * `Warning: ...` whether or not the request is allowed.
 */
export function admissionResponse(uid: string, verdict: Verdict): AdmissionReviewResponse {
  const response: AdmissionResponse = { uid, allowed: verdict.allowed };
  if (!verdict.allowed) response.status = { code: 403, reason: 'Forbidden', message: verdict.message ?? 'denied' };
  if (verdict.warnings.length > 0) response.warnings = verdict.warnings.map(cleanWarning);
  return { apiVersion: ADMISSION_API_VERSION, kind: 'AdmissionReview', response };
}

/**
 * A warning travels to the client as an HTTP `Warning` header: one line of printable text. The
 * Kubernetes documentation says warnings over 256 characters may be truncated; cut them here, so
 * what arrives is what was meant to.
 */
function cleanWarning(w: string): string {
  // eslint-disable-next-line no-control-regex
  const flat = w.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return flat.length > 256 ? `${flat.slice(0, 255)}…` : flat;
}
