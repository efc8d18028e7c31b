// Validating admission webhooks, called as kube-apiserver's ValidatingAdmissionWebhook plugin calls
// them (k8s.io/apiserver/pkg/admission/plugin/webhook: generic/webhook.go ShouldCallHook, the
// rules / namespace / object matchers, validating/dispatcher.go, request/admissionreview.go,
// errors/statuserror.go, util/webhook): every admissionregistration.k8s.io/v1
// ValidatingWebhookConfiguration in the store, configurations in name order, the matching
// webhooks called in parallel over HTTPS with an admission.k8s.io/v1 AdmissionReview.
//
// Matching: rules (operations with `*`, apiGroups, apiVersions, resources with `*`, `res/*`,
// `*/*` and `res/sub`, scope), namespaceSelector (the namespace's labels; for a Namespace itself its
// own), objectSelector (object or oldObject labels), then matchConditions. Requests for the
// admission configuration kinds themselves are exempt, as in kube-apiserver.
//
// matchConditions are CEL in kube-apiserver; this fake has no CEL. It evaluates only the exact
// expressions in KNOWN_MATCH_CONDITIONS (those of deploy/base/admission-webhook.yaml) and answers
// any other with a 500 "fake apiserver cannot evaluate CEL expression ...", whatever the
// failurePolicy, so that no condition is ever silently skipped or assumed.
//
// Outcomes, as kube-apiserver: allowed → the write proceeds; warnings (allowed or not) become
// `Warning: 299 - "..."` response headers; denied → the Status the webhook gave (code < 400 → 403)
// with message `admission webhook "<name>" denied the request: <message>`; a call that fails
// (transport, TLS, timeout, non-2xx, malformed review) → failurePolicy Fail (default): 500
// `Internal error occurred: failed calling webhook "<name>": ...`, Ignore: the webhook is skipped.
// Dry-run requests: webhooks with sideEffects None/NoneOnDryRun get dryRun: true; others refuse the
// request (400 `admission webhook "<name>" does not support dry run`), no sideEffects is a call error.
import { randomUUID } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { deepEqual, isObject } from './patch.js';
import { parseLabelSelector, type Matcher } from './selectors.js';
import { ApiStatusError, badRequest, internalError, notFound, type StatusDetails } from './status.js';
import type { KubeObject, UserInfo } from './types.js';

export type AdmissionOperation = 'CREATE' | 'UPDATE' | 'DELETE' | 'CONNECT';

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

/** What kube-apiserver's admission.Attributes carry, for one write. */
export interface AdmissionAttributes {
  operation: AdmissionOperation;
  kind: GroupVersionKind;
  resource: GroupVersionResource;
  /** '' for the main resource. */
  subResource: string;
  /** '' on a create with generateName. */
  name: string;
  /** '' for cluster-scoped resources; the namespace's own name for a Namespace. */
  namespace: string;
  /** null for DELETE. */
  object: KubeObject | null;
  /** null for CREATE. */
  oldObject: KubeObject | null;
  dryRun: boolean;
  /** CreateOptions, UpdateOptions (also for PATCH) or DeleteOptions. */
  options: Record<string, unknown> | null;
  userInfo: UserInfo;
}

/** `clientConfig.service` → `host:port` to dial (the certificate is still verified for `<name>.<namespace>.svc`). */
export type ServiceResolver = (namespace: string, name: string, port: number) => string | undefined;

/** One webhook considered for a request that matched it. */
export interface AdmissionCall {
  configuration: string;
  webhook: string;
  /** The AdmissionReview's `request`, when one was built. */
  request?: Record<string, unknown>;
  /**
   * allowed / denied: the webhook's answer; failed: the call failed, failing the request;
   * failed-open: the call failed and failurePolicy Ignore skipped it; skipped: a matchCondition was
   * false (not called); refused: the request failed before any call (dry run unsupported, unknown CEL).
   */
  outcome: 'allowed' | 'denied' | 'failed' | 'failed-open' | 'skipped' | 'refused';
  /** The error the client got (denied, failed, refused) or would have got (failed-open). */
  message?: string;
  warnings: string[];
}

export interface AdmissionEnv {
  /** Every stored ValidatingWebhookConfiguration. */
  configurations(): KubeObject[];
  namespace(name: string): KubeObject | undefined;
  serviceResolver: ServiceResolver | undefined;
  record(call: AdmissionCall): void;
  /** A warning for the response (Warning header). */
  warn(text: string): void;
}

interface Rule {
  operations?: string[];
  apiGroups?: string[];
  apiVersions?: string[];
  resources?: string[];
  scope?: string;
}

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

interface Webhook {
  name: string;
  clientConfig?: { url?: string; service?: { namespace?: string; name?: string; path?: string; port?: number }; caBundle?: string };
  rules?: Rule[];
  failurePolicy?: string;
  matchPolicy?: string;
  namespaceSelector?: LabelSelector;
  objectSelector?: LabelSelector;
  sideEffects?: string;
  timeoutSeconds?: number;
  admissionReviewVersions?: string[];
  matchConditions?: { name: string; expression: string }[];
}

const ADMISSION_REVIEW = { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' };

/** Kinds whose writes never go through webhooks (generic.IsExemptAdmissionConfigurationResource). */
const EXEMPT_KINDS = [
  'ValidatingWebhookConfiguration',
  'MutatingWebhookConfiguration',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
  'MutatingAdmissionPolicy',
  'MutatingAdmissionPolicyBinding',
];

/** The variables a matchCondition sees. */
export interface ConditionVars {
  request: Record<string, unknown>;
  object: KubeObject | null;
  oldObject: KubeObject | null;
}

const has = (o: unknown, key: string): boolean => isObject(o) && o[key] !== undefined && o[key] !== null;

/**
 * The only CEL the fake evaluates: exact expression text → its meaning. Keep in sync with
 * deploy/base/admission-webhook.yaml (a test checks every expression there is listed here).
 */
export const KNOWN_MATCH_CONDITIONS: Readonly<Record<string, (v: ConditionVars) => boolean>> = {
  // KEDA's webhooks skip an UPDATE that leaves the spec alone, and any update of a deleting object.
  "request.operation != 'UPDATE' || (!has(object.metadata.deletionTimestamp) && (!has(object.spec) || !has(oldObject.spec) || object.spec != oldObject.spec))": (v) =>
    v.request.operation !== 'UPDATE' ||
    (!has(v.object?.metadata, 'deletionTimestamp') && (!has(v.object, 'spec') || !has(v.oldObject, 'spec') || !deepEqual(v.object!.spec, v.oldObject!.spec))),
};

/** An error calling a webhook (webhookutil.ErrCallingWebhook): subject to the failurePolicy. */
class CallError extends Error {
  override readonly name = 'CallError';
}

/** Runs every matching validating webhook; resolves when the write may proceed, throws the ApiStatusError to answer otherwise. */
export async function runValidatingWebhooks(env: AdmissionEnv, attrs: AdmissionAttributes): Promise<void> {
  if (attrs.kind.group === 'admissionregistration.k8s.io' && EXEMPT_KINDS.includes(attrs.kind.kind)) return;
  const configurations = env
    .configurations()
    .filter((c) => Array.isArray(c.webhooks))
    .sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : a.metadata!.name! > b.metadata!.name! ? 1 : 0));
  const invocations: { configuration: string; hook: Webhook }[] = [];
  for (const c of configurations) {
    for (const hook of c.webhooks as Webhook[]) {
      if (shouldCall(env, hook, attrs)) invocations.push({ configuration: c.metadata!.name!, hook });
    }
  }
  if (invocations.length === 0) return;
  // In parallel, as kube-apiserver; it reports whichever error arrives first, this fake the first in order.
  const errors = await Promise.all(invocations.map(({ configuration, hook }) => invoke(env, configuration, hook, attrs)));
  const first = errors.find((e) => e !== undefined);
  if (first) throw first;
}

// ---------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------

function shouldCall(env: AdmissionEnv, hook: Webhook, attrs: AdmissionAttributes): boolean {
  // matchPolicy Equivalent would also match rules naming other versions/groups of the same
  // resources; the fake serves one version of each, so Exact and Equivalent match alike.
  if (!(hook.rules ?? []).some((r) => ruleMatches(r, attrs))) return false;
  if (!namespaceMatches(env, hook, attrs)) return false;
  return objectMatches(hook, attrs);
}

const exactOrWildcard = (items: string[] | undefined, requested: string) => (items ?? []).some((i) => i === '*' || i === requested);

function ruleMatches(rule: Rule, a: AdmissionAttributes): boolean {
  const isNamespace = a.resource.group === '' && a.resource.resource === 'namespaces';
  const scope = rule.scope ?? '*';
  if (scope === 'Namespaced' && (isNamespace || a.namespace === '')) return false;
  if (scope === 'Cluster' && !(isNamespace || a.namespace === '')) return false;
  if (scope !== '*' && scope !== 'Namespaced' && scope !== 'Cluster') return false;
  if (!(rule.operations ?? []).some((op) => op === '*' || op === a.operation)) return false;
  if (!exactOrWildcard(rule.apiGroups, a.resource.group) || !exactOrWildcard(rule.apiVersions, a.resource.version)) return false;
  return (rule.resources ?? []).some((rs) => {
    const slash = rs.indexOf('/');
    const [res, sub] = slash === -1 ? [rs, ''] : [rs.slice(0, slash), rs.slice(slash + 1)];
    return (res === '*' || res === a.resource.resource) && (sub === '*' || sub === a.subResource);
  });
}

/** A metav1.LabelSelector as a matcher of label sets; an empty one matches everything. */
function selectorMatcher(sel: LabelSelector | undefined, where: string): Matcher | undefined {
  if (!sel || (Object.keys(sel.matchLabels ?? {}).length === 0 && (sel.matchExpressions ?? []).length === 0)) return undefined;
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) {
    if (e.operator === 'In' || e.operator === 'NotIn') parts.push(`${e.key} ${e.operator.toLowerCase()} (${(e.values ?? []).join(',')})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
    else throw internalError(`${where}: "${e.operator}" is not a valid label selector operator`);
  }
  try {
    return parseLabelSelector(parts.join(','));
  } catch (err) {
    throw internalError(`${where}: ${(err as Error).message}`);
  }
}

const labelsOf = (labels: Record<string, string> | undefined): KubeObject => ({ metadata: { labels: labels ?? {} } });

function namespaceMatches(env: AdmissionEnv, hook: Webhook, a: AdmissionAttributes): boolean {
  const isNamespace = a.resource.group === '' && a.resource.resource === 'namespaces';
  // Cluster-scoped resources other than namespaces are never exempted by a namespaceSelector.
  if (a.namespace === '' && !isNamespace) return true;
  const match = selectorMatcher(hook.namespaceSelector, `webhook "${hook.name}" namespaceSelector`);
  if (!match) return true;
  // A Namespace being created or updated is judged by its own (new) labels.
  if (isNamespace && a.subResource === '' && (a.operation === 'CREATE' || a.operation === 'UPDATE') && a.object) return match(labelsOf(a.object.metadata?.labels));
  const ns = env.namespace(a.namespace);
  if (!ns) throw notFound({ group: '', resource: 'namespaces' }, a.namespace);
  return match(labelsOf(ns.metadata?.labels));
}

function objectMatches(hook: Webhook, a: AdmissionAttributes): boolean {
  const match = selectorMatcher(hook.objectSelector, `webhook "${hook.name}" objectSelector`);
  if (!match) return true;
  return (a.object !== null && match(labelsOf(a.object.metadata?.labels))) || (a.oldObject !== null && match(labelsOf(a.oldObject.metadata?.labels)));
}

// ---------------------------------------------------------------------------
// Calling
// ---------------------------------------------------------------------------

function reviewRequest(a: AdmissionAttributes, uid: string): Record<string, unknown> {
  const gvk = { group: a.kind.group, version: a.kind.version, kind: a.kind.kind };
  const gvr = { group: a.resource.group, version: a.resource.version, resource: a.resource.resource };
  return {
    uid,
    kind: gvk,
    resource: gvr,
    ...(a.subResource ? { subResource: a.subResource } : {}),
    requestKind: gvk,
    requestResource: gvr,
    ...(a.subResource ? { requestSubResource: a.subResource } : {}),
    ...(a.name ? { name: a.name } : {}),
    ...(a.namespace ? { namespace: a.namespace } : {}),
    operation: a.operation,
    userInfo: {
      username: a.userInfo.username,
      ...(a.userInfo.uid ? { uid: a.userInfo.uid } : {}),
      ...(a.userInfo.groups ? { groups: a.userInfo.groups } : {}),
      ...(a.userInfo.extra && Object.keys(a.userInfo.extra).length ? { extra: a.userInfo.extra } : {}),
    },
    object: a.object,
    oldObject: a.oldObject,
    dryRun: a.dryRun,
    options: a.options,
  };
}

/** One webhook: undefined when the write may proceed (allowed, or failed open), else the error to answer with. */
async function invoke(env: AdmissionEnv, configuration: string, hook: Webhook, a: AdmissionAttributes): Promise<ApiStatusError | undefined> {
  const call: AdmissionCall = { configuration, webhook: hook.name, outcome: 'allowed', warnings: [] };
  const done = (outcome: AdmissionCall['outcome'], err?: ApiStatusError) => {
    call.outcome = outcome;
    if (err) call.message = err.message;
    env.record(call);
    return outcome === 'allowed' || outcome === 'failed-open' || outcome === 'skipped' ? undefined : err;
  };
  const failed = (reason: string) => {
    const err = internalError(`failed calling webhook "${hook.name}": ${reason}`);
    return hook.failurePolicy === 'Ignore' ? done('failed-open', err) : done('failed', err);
  };

  const uid = randomUUID();
  const request = reviewRequest(a, uid);
  for (const c of hook.matchConditions ?? []) {
    const evaluate = KNOWN_MATCH_CONDITIONS[c.expression];
    if (!evaluate) {
      return done(
        'refused',
        internalError(
          `fake apiserver cannot evaluate CEL expression ${JSON.stringify(c.expression)} (matchCondition "${c.name}" of webhook "${hook.name}" in ValidatingWebhookConfiguration "${configuration}"): ` +
            'it evaluates only the expressions listed in test/helpers/fake-apiserver/admission.ts KNOWN_MATCH_CONDITIONS',
        ),
      );
    }
    // All conditions must hold; one false skips the webhook.
    if (!evaluate({ request, object: a.object, oldObject: a.oldObject })) {
      call.message = `matchCondition "${c.name}" is false`;
      return done('skipped');
    }
  }
  if (a.dryRun) {
    if (hook.sideEffects === undefined) return failed('Webhook SideEffects is nil');
    if (hook.sideEffects !== 'None' && hook.sideEffects !== 'NoneOnDryRun') return done('refused', badRequest(`admission webhook "${hook.name}" does not support dry run`));
  }
  if (!(hook.admissionReviewVersions ?? []).includes('v1')) {
    // kube-apiserver would send a v1beta1 review to a webhook listing only v1beta1; the fake speaks v1 only.
    return failed('webhook does not accept known AdmissionReview versions (v1)');
  }
  call.request = request;

  let review: unknown;
  try {
    review = await post(env, hook, JSON.stringify({ ...ADMISSION_REVIEW, request }));
  } catch (err) {
    if (err instanceof CallError) return failed(err.message);
    throw err;
  }
  const invalidResponse = (why: string) => failed(`received invalid webhook response: ${why}`);
  const r = isObject(review) ? review : {};
  const response = r.response;
  if (!isObject(response)) return invalidResponse('webhook response was absent');
  if (response.uid !== uid) return invalidResponse(`expected response.uid=${JSON.stringify(uid)}, got ${JSON.stringify(response.uid ?? '')}`);
  if (r.apiVersion !== ADMISSION_REVIEW.apiVersion || r.kind !== ADMISSION_REVIEW.kind) {
    return invalidResponse(`expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got ${String(r.apiVersion ?? '')}, Kind=${String(r.kind ?? '')}`);
  }
  if (typeof response.patch === 'string' && response.patch !== '') return invalidResponse('validating webhook may not return response.patch');
  if (response.patchType !== undefined && response.patchType !== null) return invalidResponse('validating webhook may not return response.patchType');
  for (const w of Array.isArray(response.warnings) ? response.warnings : []) {
    if (typeof w !== 'string') continue;
    call.warnings.push(w);
    env.warn(w);
  }
  if (response.allowed === true) return done('allowed');
  return done('denied', denial(hook.name, isObject(response.status) ? response.status : {}));
}

/** webhookerrors.ToStatusErr. */
function denial(webhook: string, status: Record<string, unknown>): ApiStatusError {
  const deniedBy = `admission webhook "${webhook}" denied the request`;
  const code = typeof status.code === 'number' && status.code >= 400 ? status.code : 403;
  const reason = typeof status.reason === 'string' && status.reason !== '' ? status.reason : undefined;
  const message = typeof status.message === 'string' && status.message !== '' ? `${deniedBy}: ${status.message}` : reason ? `${deniedBy}: ${reason}` : `${deniedBy} without explanation`;
  return new ApiStatusError(code, reason, message, isObject(status.details) ? (status.details as StatusDetails) : undefined);
}

interface Endpoint {
  /** As kube-apiserver's REST client prints it in errors: with `?timeout=Ns`. */
  url: string;
  dialHost: string;
  dialPort: number;
  /** The name the certificate is verified against (and SNI unless an IP), and the Host header. */
  verifyHost: string;
  hostHeader: string;
  path: string;
}

function endpoint(env: AdmissionEnv, hook: Webhook, timeoutSeconds: number): Endpoint {
  const cc = hook.clientConfig ?? {};
  const timeoutQuery = `timeout=${timeoutSeconds}s`;
  if (cc.url !== undefined) {
    let u: URL;
    try {
      u = new URL(cc.url);
    } catch {
      throw new CallError(`could not get REST client: invalid webhook url ${JSON.stringify(cc.url)}`);
    }
    if (u.protocol !== 'https:') throw new CallError(`could not get REST client: webhook url ${JSON.stringify(cc.url)} is not https`);
    u.search = u.search ? `${u.search}&${timeoutQuery}` : `?${timeoutQuery}`;
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = u.port ? Number(u.port) : 443;
    return { url: u.toString(), dialHost: host, dialPort: port, verifyHost: host, hostHeader: u.host, path: `${u.pathname}${u.search}` };
  }
  const svc = cc.service;
  if (!svc?.name || !svc.namespace) throw new CallError('could not get REST client: webhook has neither clientConfig.url nor clientConfig.service');
  const port = svc.port ?? 443;
  const host = `${svc.name}.${svc.namespace}.svc`;
  const path = `${svc.path ?? '/'}?${timeoutQuery}`;
  const url = `https://${host}:${port}${path}`;
  const dial = env.serviceResolver?.(svc.namespace, svc.name, port);
  if (!dial) throw new CallError(`failed to call webhook: Post ${JSON.stringify(url)}: service ${JSON.stringify(svc.name)} not found`);
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(dial);
  if (!m) throw new Error(`fake-apiserver: serviceResolver returned ${JSON.stringify(dial)}, expected host:port`);
  return { url, dialHost: m[1] ?? m[2]!, dialPort: Number(m[3]), verifyHost: host, hostHeader: `${host}:${port}`, path };
}

const UNKNOWN_AUTHORITY = ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT'];

/** Node's error in Go's words, as kube-apiserver would report it. */
function goError(err: NodeJS.ErrnoException & { cert?: PeerCertificate }, ep: Endpoint): string {
  const code = err.code ?? '';
  if (code === 'ECONNREFUSED') return `dial tcp ${ep.dialHost}:${ep.dialPort}: connect: connection refused`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `dial tcp: lookup ${ep.dialHost}: no such host`;
  if (UNKNOWN_AUTHORITY.includes(code)) return 'tls: failed to verify certificate: x509: certificate signed by unknown authority';
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return 'tls: failed to verify certificate: x509: certificate has expired or is not yet valid';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    const names = (err.cert?.subjectaltname ?? '').split(', ').map((n) => n.replace(/^(DNS|IP Address):/, '')).filter(Boolean);
    return names.length
      ? `tls: failed to verify certificate: x509: certificate is valid for ${names.join(', ')}, not ${ep.verifyHost}`
      : `tls: failed to verify certificate: x509: certificate is not valid for any names, but wanted to match ${ep.verifyHost}`;
  }
  if (code === 'ECONNRESET') return 'EOF';
  return err.message;
}

/** POSTs the review; resolves with the decoded body of a 2xx answer, rejects with a CallError otherwise. */
async function post(env: AdmissionEnv, hook: Webhook, body: string): Promise<unknown> {
  const timeoutSeconds = hook.timeoutSeconds ?? 10;
  const ep = endpoint(env, hook, timeoutSeconds);
  let ca: string | undefined;
  if (hook.clientConfig?.caBundle) {
    ca = Buffer.from(hook.clientConfig.caBundle, 'base64').toString('utf8');
    if (!ca.includes('-----BEGIN CERTIFICATE-----')) throw new CallError('could not get REST client: unable to load root certificates: unable to parse bytes as PEM block');
  }
  const fail = (why: string) => new CallError(`failed to call webhook: Post ${JSON.stringify(ep.url)}: ${why}`);
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const req = httpsRequest(
      {
        host: ep.dialHost,
        port: ep.dialPort,
        path: ep.path,
        method: 'POST',
        agent: false,
        ...(isIP(ep.verifyHost) ? {} : { servername: ep.verifyHost }),
        ...(ca ? { ca } : {}),
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
        checkServerIdentity: (_host, cert) => checkServerIdentity(ep.verifyHost, cert),
        headers: {
          Host: ep.hostHeader,
          'Content-Type': 'application/json',
          Accept: 'application/json, */*',
          'User-Agent': 'kube-apiserver-admission',
          'Content-Length': String(Buffer.byteLength(body)),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => settle(() => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') })));
        res.on('error', (err) => settle(() => reject(fail(goError(err, ep)))));
      },
    );
    const timer = setTimeout(() => {
      settle(() => reject(fail('context deadline exceeded')));
      req.destroy();
    }, timeoutSeconds * 1000);
    req.on('error', (err) => settle(() => reject(fail(goError(err, ep)))));
    req.end(body);
  });
  let decoded: unknown;
  try {
    decoded = text === '' ? undefined : JSON.parse(text);
  } catch (err) {
    if (status < 200 || status > 299) throw new CallError(`failed to call webhook: the server responded with the status code ${status} but did not return more information`);
    throw new CallError(`failed to call webhook: couldn't get version/kind; json parse error: ${(err as Error).message}`);
  }
  if (status < 200 || status > 299) {
    const message = isObject(decoded) && decoded.kind === 'Status' && typeof decoded.message === 'string' && decoded.message !== '' ? decoded.message : undefined;
    throw new CallError(`failed to call webhook: ${message ?? `the server responded with the status code ${status} but did not return more information`}`);
  }
  return decoded;
}

/** A Warning header value as kube-apiserver writes it: `299 - "text"`. */
export function warningHeader(text: string): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  return `299 - "${clean.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}
