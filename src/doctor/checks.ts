// `keda-ts doctor`: what KEDA users' support threads are mostly about, checked on the cluster:
// the APIService and its aggregator status, the certificate Secret and the caBundles made from
// it, the front-proxy settings aggregated servers rely on, the permissions each component needs,
// and HPAs that cannot read their metric. Each check is one line: OK, WARN or FAIL, a FAIL with
// the fix in one sentence. Read-only: the doctor never writes anything but SubjectAccessReviews.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { KubeClient } from '../k8s/client.js';
import { statusCodeOf } from '../k8s/kubeconfig.js';
import { serviceDnsNames } from '../k8s/service-names.js';
import type { ConfigMap, KubeList, KubeObject, Secret } from '../k8s/types.js';
import { pemBlocks } from '../tls/pem.js';
import { uncoveredNames } from '../tls/san-check.js';

export type Verdict = 'OK' | 'WARN' | 'FAIL';

export interface CheckResult {
  check: string;
  verdict: Verdict;
  message: string;
  /** What to do, one sentence; for WARN and FAIL. */
  fix?: string;
}

export interface DoctorConfig {
  namespace: string;
  apiServiceName: string;
  /** The Service the APIService must point at (ours, not another adapter's). */
  adapterServiceName: string;
  operatorServiceName: string;
  webhooksServiceName: string;
  clusterDomain: string;
  certSecretName: string;
  webhookConfigurationName: string;
  operatorServiceAccount: string;
  adapterServiceAccount: string;
  /** A certificate expiring sooner than this is a warning (the operator's --cert-renew-before). */
  renewBeforeMs: number;
}

interface APIService extends KubeObject {
  spec?: { service?: { namespace?: string; name?: string; port?: number }; caBundle?: string; insecureSkipTLSVerify?: boolean };
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}
interface Webhooks extends KubeObject {
  webhooks?: { name: string; clientConfig?: { caBundle?: string; service?: { namespace?: string; name?: string } } }[];
}
interface Hpa extends KubeObject {
  status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] };
}
interface Rule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs?: string[];
}
interface Role extends KubeObject {
  rules?: Rule[];
}

const ok = (check: string, message: string): CheckResult => ({ check, verdict: 'OK', message });
const warn = (check: string, message: string, fix: string): CheckResult => ({ check, verdict: 'WARN', message, fix });
const fail = (check: string, message: string, fix: string): CheckResult => ({ check, verdict: 'FAIL', message, fix });
const DAY = 86_400_000;
const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
const b64 = (s: string | undefined) => Buffer.from(s ?? '', 'base64').toString('utf8');

async function getOrUndefined<T>(client: KubeClient, path: string): Promise<T | undefined> {
  try {
    return await client.get<T>(path);
  } catch (err) {
    if (statusCodeOf(err) === 404) return undefined;
    throw err;
  }
}

export async function runChecks(client: KubeClient, c: DoctorConfig): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  const guard = async (check: string, fn: () => Promise<CheckResult[]>) => {
    try {
      results.push(...(await fn()));
    } catch (err) {
      results.push(fail(check, `could not be checked: ${(err as Error).message}`, 'make sure this kubeconfig may read the object (or run the doctor as a cluster admin)'));
    }
  };
  const apiService = await getOrUndefined<APIService>(client, `/apis/apiregistration.k8s.io/v1/apiservices/${c.apiServiceName}`).catch(() => undefined);
  const secret = await getOrUndefined<Secret>(client, `/api/v1/namespaces/${c.namespace}/secrets/${c.certSecretName}`).catch(() => undefined);
  const webhooks = await getOrUndefined<Webhooks>(client, `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${c.webhookConfigurationName}`).catch(() => undefined);
  await guard('apiservice', async () => checkApiService(client, c, apiService));
  const certificate = secret ? readCertificate(secret) : undefined;
  await guard('certificate', async () => checkCertificate(c, secret, certificate));
  await guard('cabundle', async () => checkCaBundles(c, certificate, apiService, webhooks));
  await guard('front-proxy', async () => checkFrontProxy(client));
  await guard('rbac', async () => checkRbac(client, c));
  await guard('hpa', async () => checkHpas(client));
  return results;
}

// --- APIService ------------------------------------------------------------------------------

async function checkApiService(client: KubeClient, c: DoctorConfig, a: APIService | undefined): Promise<CheckResult[]> {
  if (!a) return [fail('apiservice', `APIService ${c.apiServiceName} not found`, 'apply the install (kubectl apply -k deploy/overlays/rotation), which registers it')];
  const out: CheckResult[] = [];
  const svc = a.spec?.service;
  const ours = svc?.namespace === c.namespace && svc?.name === c.adapterServiceName;
  out.push(
    !svc ? fail('apiservice.owner', `APIService ${c.apiServiceName} is served locally by kube-apiserver, not by an adapter`, 'apply our APIService (deploy/base/apiservice.yaml) in its place')
    : ours ? ok('apiservice.owner', `APIService ${c.apiServiceName} points at Service ${svc.namespace}/${svc.name}:${svc.port ?? 443}`)
    : fail('apiservice.owner', `APIService ${c.apiServiceName} points at Service ${svc.namespace}/${svc.name}, another adapter's (one adapter serves external.metrics.k8s.io per cluster)`, `remove the other adapter's APIService, or re-apply ours so that it points at ${c.namespace}/${c.adapterServiceName}`),
  );
  if (a.spec?.insecureSkipTLSVerify) out.push(fail('apiservice.tls', 'insecureSkipTLSVerify is on: kube-apiserver does not verify the adapter', 'remove insecureSkipTLSVerify and let the operator (or cert-manager) set caBundle'));
  else if (!a.spec?.caBundle) out.push(fail('apiservice.tls', 'no caBundle: kube-apiserver cannot verify the adapter', 'start the operator with --enable-apiservice-patching (the default) or let cert-manager inject it'));
  else out.push(ok('apiservice.tls', 'verified with a caBundle, insecureSkipTLSVerify off'));
  const available = a.status?.conditions?.find((x) => x.type === 'Available');
  if (available?.status === 'True') out.push(ok('apiservice.available', `Available (${available.reason ?? 'Passed'})`));
  else out.push(fail('apiservice.available', `not Available: ${available?.reason ?? 'no status yet'}${available?.message ? `: ${available.message}` : ''}`, availabilityFix(available?.reason ?? '', available?.message ?? '')));
  // The aggregator's condition is refreshed now and then (and never fails an ExternalName
  // Service): ask through kube-apiserver now, as the HPA controller will.
  const group = c.apiServiceName.split('.').slice(1).join('.');
  const version = c.apiServiceName.split('.')[0];
  try {
    await client.get(`/apis/${group}/${version}`, { timeoutMs: 15_000 });
    out.push(ok('apiservice.reachable', `kube-apiserver reaches the adapter (GET /apis/${group}/${version})`));
  } catch (err) {
    const message = (err as { body?: { message?: string } }).body?.message ?? (err as Error).message;
    out.push(fail('apiservice.reachable', `kube-apiserver cannot reach the adapter: ${message}`, availabilityFix('', message)));
  }
  if (svc?.namespace && svc.name && ours) {
    const service = await getOrUndefined<KubeObject & { spec?: { ports?: { port: number }[] } }>(client, `/api/v1/namespaces/${svc.namespace}/services/${svc.name}`);
    if (!service) out.push(fail('apiservice.service', `Service ${svc.namespace}/${svc.name} not found`, 'apply the install (deploy/base/services.yaml)'));
    else if (!(service.spec?.ports ?? []).some((p) => p.port === (svc.port ?? 443))) out.push(fail('apiservice.service', `Service ${svc.namespace}/${svc.name} has no port ${svc.port ?? 443}`, `make the APIService's spec.service.port one of the Service's ports`));
    else out.push(ok('apiservice.service', `Service ${svc.namespace}/${svc.name} has port ${svc.port ?? 443}`));
  }
  return out;
}

function availabilityFix(reason: string, message: string): string {
  if (/x509|certificate signed by unknown authority/i.test(message)) return 'the caBundle is not the CA that signed the adapter\'s tls.crt: let the operator inject it (--enable-apiservice-patching) or fix the cert-manager injection';
  if (/valid for|doesn't contain|SAN/i.test(message)) return 'the adapter\'s certificate does not cover <service>.<namespace>.svc: reissue it with the Service\'s DNS names';
  if (reason === 'ServiceNotFound') return 'create the Service the APIService names (deploy/base/services.yaml)';
  if (reason === 'MissingEndpoints' || /no endpoints|connection refused/i.test(message)) return 'no ready adapter Pod behind the Service: check kubectl -n keda get pods and the adapter\'s logs';
  if (/403|forbidden/i.test(message)) return 'the adapter refused kube-apiserver: bind the adapter\'s RBAC (deploy/base/adapter-auth-rbac.yaml) and check its front-proxy settings';
  return 'check the adapter\'s logs and kubectl describe apiservice';
}

// --- certificates ----------------------------------------------------------------------------

interface Certificate {
  leaf?: X509Certificate;
  cas: X509Certificate[];
  problems: string[];
}

function readCertificate(secret: Secret): Certificate {
  const problems: string[] = [];
  const data = secret.data ?? {};
  const certs = (key: string) => {
    try {
      return pemBlocks(b64(data[key]), 'CERTIFICATE').map((p) => new X509Certificate(p));
    } catch (err) {
      problems.push(`${key} does not parse (${(err as Error).message})`);
      return [];
    }
  };
  const leaf = certs('tls.crt')[0];
  const cas = certs('ca.crt');
  if (!data['tls.crt'] || !leaf) problems.push('no certificate in tls.crt');
  if (cas.length === 0) problems.push('no CA in ca.crt');
  if (leaf) {
    try {
      if (!leaf.checkPrivateKey(createPrivateKey(b64(data['tls.key'])))) problems.push('tls.key does not match tls.crt');
    } catch (err) {
      problems.push(`tls.key does not parse (${(err as Error).message})`);
    }
    if (cas.length > 0 && !cas.some((ca) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey))) problems.push('tls.crt is not signed by a CA in ca.crt');
  }
  return { ...(leaf ? { leaf } : {}), cas, problems };
}

function checkCertificate(c: DoctorConfig, secret: Secret | undefined, cert: Certificate | undefined): CheckResult[] {
  const name = `Secret ${c.namespace}/${c.certSecretName}`;
  if (!secret || !cert) return [fail('certificate', `${name} not found`, 'start the operator with --enable-cert-rotation (the default), or create the Secret from your own certificates or with cert-manager (see deploy/overlays)')];
  const out: CheckResult[] = [];
  if (cert.problems.length > 0) out.push(fail('certificate.parse', `${name}: ${cert.problems.join('; ')}`, 'delete the Secret and let the operator issue a new one, or fix the certificates you provide'));
  else out.push(ok('certificate.parse', `${name}: tls.crt, tls.key and ca.crt parse, the key matches, the CA signed the certificate`));
  if (!cert.leaf) return out;
  const services = [c.adapterServiceName, c.operatorServiceName, c.webhooksServiceName];
  const expected = services.flatMap((s) => serviceDnsNames(s, c.namespace, c.clusterDomain));
  const { missing } = uncoveredNames(cert.leaf, expected);
  out.push(
    missing.length === 0
      ? ok('certificate.names', `covers ${services.join(', ')} in all four DNS forms`)
      : fail('certificate.names', `does not cover ${missing.join(', ')}`, 'reissue the certificate with these names (the operator does so by itself when rotation is on; with your own certificates, add them as SANs)'),
  );
  const left = cert.leaf.validToDate.getTime() - Date.now();
  if (left <= 0) out.push(fail('certificate.expiry', `expired on ${cert.leaf.validTo}`, 'let the operator renew it (--enable-cert-rotation) or renew your own now'));
  else if (left < c.renewBeforeMs) out.push(warn('certificate.expiry', `expires in ${Math.floor(left / DAY)} days (${cert.leaf.validTo}), within the renewal window`, 'nothing if the operator rotates it; otherwise renew it before then'));
  else out.push(ok('certificate.expiry', `valid for ${Math.floor(left / DAY)} more days; renewal due in ${Math.floor((left - c.renewBeforeMs) / DAY)} days`));
  return out;
}

function checkCaBundles(c: DoctorConfig, cert: Certificate | undefined, apiService: APIService | undefined, webhooks: Webhooks | undefined): CheckResult[] {
  if (!cert?.leaf) return [];
  const signer = cert.cas.find((ca) => cert.leaf!.checkIssued(ca));
  if (!signer) return [];
  const known = new Set(cert.cas.map((ca) => ca.fingerprint256));
  const judge = (check: string, what: string, bundle: string | undefined): CheckResult => {
    if (!bundle) return fail(check, `${what} has no caBundle`, 'let the operator inject it (--enable-apiservice-patching / --enable-webhook-patching) or cert-manager');
    let present: string[];
    try {
      present = pemBlocks(b64(bundle), 'CERTIFICATE').map(fingerprint);
    } catch {
      present = [];
    }
    if (!present.includes(signer.fingerprint256)) return fail(check, `${what}'s caBundle does not contain the CA that signed the certificate (x509: certificate signed by unknown authority)`, `inject ca.crt of Secret ${c.namespace}/${c.certSecretName} (the operator does so unless patching is off)`);
    const stale = present.filter((f) => !known.has(f));
    if (stale.length > 0) return warn(check, `${what}'s caBundle also trusts ${stale.length} CA(s) no longer in the Secret`, 'let the operator rewrite it (it keeps a retired CA only during a rollover overlap)');
    return ok(check, `${what}'s caBundle contains the certificate's CA`);
  };
  const out: CheckResult[] = [];
  if (apiService) out.push(judge('cabundle.apiservice', `APIService ${c.apiServiceName}`, apiService.spec?.caBundle));
  for (const w of webhooks?.webhooks ?? []) out.push(judge('cabundle.webhook', `webhook ${w.name}`, w.clientConfig?.caBundle));
  return out;
}

// --- front proxy -----------------------------------------------------------------------------

async function checkFrontProxy(client: KubeClient): Promise<CheckResult[]> {
  const cm = await getOrUndefined<ConfigMap>(client, '/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication');
  const fix = 'start kube-apiserver with --requestheader-client-ca-file, --requestheader-allowed-names and --proxy-client-cert-file/--proxy-client-key-file (the aggregation layer)';
  if (!cm) return [fail('front-proxy', 'ConfigMap kube-system/extension-apiserver-authentication not found: no aggregation layer', fix)];
  const data = cm.data ?? {};
  if (!data['requestheader-client-ca-file']) return [fail('front-proxy', 'extension-apiserver-authentication has no requestheader-client-ca-file: kube-apiserver cannot vouch for its users', fix)];
  let names: string[];
  try {
    names = JSON.parse(data['requestheader-allowed-names'] ?? '[]') as string[];
  } catch {
    names = [];
  }
  return [ok('front-proxy', `front-proxy CA published; allowed names: ${names.length > 0 ? names.join(', ') : 'any name the CA signed'}`)];
}

// --- RBAC ------------------------------------------------------------------------------------

interface Need {
  verb: string;
  group: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  why: string;
}

async function checkRbac(client: KubeClient, c: DoctorConfig): Promise<CheckResult[]> {
  const ns = c.namespace;
  const operator = `system:serviceaccount:${ns}:${c.operatorServiceAccount}`;
  const adapter = `system:serviceaccount:${ns}:${c.adapterServiceAccount}`;
  const hpa = 'system:serviceaccount:kube-system:horizontal-pod-autoscaler';
  const needs: [string, string, string, Need[]][] = [
    ['rbac.operator', operator, 'deploy/base/operator-scaling-rbac.yaml and operator-certificates-rbac.yaml', [
      { verb: 'watch', group: 'keda.sh', resource: 'scaledobjects', why: 'watch ScaledObjects' },
      { verb: 'patch', group: 'keda.sh', resource: 'scaledobjects', subresource: 'status', why: 'write their status' },
      { verb: 'create', group: 'autoscaling', resource: 'horizontalpodautoscalers', why: 'create HPAs' },
      { verb: 'update', group: 'autoscaling', resource: 'horizontalpodautoscalers', why: 'keep HPAs right' },
      { verb: 'patch', group: 'apps', resource: 'deployments', subresource: 'scale', why: 'scale to and from zero' },
      { verb: 'get', group: '', resource: 'secrets', why: 'read TriggerAuthentication Secrets' },
      { verb: 'get', group: 'apps', resource: 'deployments', why: 'read workloads\' pod templates (*FromEnv)' },
      { verb: 'get', group: '', resource: 'configmaps', why: 'read the ConfigMaps workloads take variables from (*FromEnv)' },
      { verb: 'create', group: '', resource: 'events', why: 'record Events' },
      { verb: 'update', group: 'coordination.k8s.io', resource: 'leases', namespace: ns, name: 'keda-ts-operator', why: 'hold its Lease' },
      { verb: 'update', group: '', resource: 'secrets', namespace: ns, name: c.certSecretName, why: 'rotate the certificate Secret' },
      { verb: 'update', group: 'apiregistration.k8s.io', resource: 'apiservices', name: c.apiServiceName, why: 'inject the APIService caBundle' },
    ]],
    ['rbac.adapter', adapter, 'deploy/base/adapter-auth-rbac.yaml', [
      { verb: 'create', group: 'authentication.k8s.io', resource: 'tokenreviews', why: 'delegate authentication' },
      { verb: 'create', group: 'authorization.k8s.io', resource: 'subjectaccessreviews', why: 'delegate authorization' },
      { verb: 'get', group: '', resource: 'configmaps', namespace: 'kube-system', name: 'extension-apiserver-authentication', why: 'read the front-proxy settings' },
    ]],
    ['rbac.hpa', hpa, 'deploy/base/adapter-auth-rbac.yaml (keda-hpa-controller-external-metrics)', [
      { verb: 'list', group: 'external.metrics.k8s.io', resource: '*', namespace: 'default', why: 'read external metrics' },
    ]],
  ];
  const out: CheckResult[] = [];
  for (const [check, user, file, list] of needs) {
    const denied: string[] = [];
    for (const n of list) {
      const review = await client.post<{ status?: { allowed?: boolean } }>('/apis/authorization.k8s.io/v1/subjectaccessreviews', {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user,
          groups: user.startsWith('system:serviceaccount:') ? ['system:serviceaccounts', `system:serviceaccounts:${user.split(':')[2]}`, 'system:authenticated'] : ['system:authenticated'],
          resourceAttributes: { verb: n.verb, group: n.group, resource: n.resource, ...(n.subresource ? { subresource: n.subresource } : {}), ...(n.namespace ? { namespace: n.namespace } : {}), ...(n.name ? { name: n.name } : {}) },
        },
      });
      if (!review.status?.allowed) denied.push(`${n.verb} ${n.group ? `${n.group}/` : ''}${n.resource}${n.subresource ? `/${n.subresource}` : ''}${n.name ? ` ${n.name}` : ''} (${n.why})`);
    }
    out.push(denied.length === 0 ? ok(check, `${user} may do what it needs (${list.length} permissions)`) : fail(check, `${user} may not: ${denied.join(', ')}`, `apply ${file}`));
  }
  out.push(...(await checkTokenGrants(client)));
  return out;
}

/** deploy/components/service-account-tokens grants create on serviceaccounts/token, which must stay limited by name. */
async function checkTokenGrants(client: KubeClient): Promise<CheckResult[]> {
  const list = async (kind: 'ClusterRole' | 'Role', plural: string) =>
    (await client.get<KubeList<Role>>(`/apis/rbac.authorization.k8s.io/v1/${plural}`, { query: { labelSelector: 'app.kubernetes.io/part-of=keda-ts' } })).items.map((r) => ({ ...r, kind }));
  const roles = [...(await list('ClusterRole', 'clusterroles')), ...(await list('Role', 'roles'))];
  const broad = roles.filter((r) => (r.rules ?? []).some((rule) => (rule.resources ?? []).some((x) => x === 'serviceaccounts/token' || x === '*') && (rule.verbs ?? []).some((v) => v === 'create' || v === '*') && (rule.resourceNames ?? []).length === 0));
  if (broad.length > 0) return [fail('rbac.tokens', `${broad.map((r) => `${r.kind} ${r.metadata?.namespace ? `${r.metadata.namespace}/` : ''}${r.metadata?.name}`).join(', ')} may create tokens for any ServiceAccount`, 'limit the rule with resourceNames, as deploy/components/service-account-tokens does')];
  return [ok('rbac.tokens', 'token grants, if any, are limited to named ServiceAccounts')];
}

// --- HPAs ------------------------------------------------------------------------------------

async function checkHpas(client: KubeClient): Promise<CheckResult[]> {
  const hpas = (await client.get<KubeList<Hpa>>('/apis/autoscaling/v2/horizontalpodautoscalers', { query: { labelSelector: 'app.kubernetes.io/managed-by=keda-operator' } })).items;
  const failing = hpas.filter((h) => h.status?.conditions?.some((x) => x.type === 'ScalingActive' && x.status === 'False' && x.reason === 'FailedGetExternalMetric'));
  if (failing.length === 0) return [ok('hpa', `${hpas.length} HPA(s) of ScaledObjects, none failing to read its metric`)];
  const out: CheckResult[] = [];
  for (const h of failing) {
    const soName = h.metadata?.labels?.['scaledobject.keda.sh/name'] ?? '?';
    const ns = h.metadata?.namespace ?? '';
    const so = await getOrUndefined<{ status?: { conditions?: { type: string; status: string; reason?: string; message?: string }[] } }>(client, `/apis/keda.sh/v1alpha1/namespaces/${ns}/scaledobjects/${soName}`).catch(() => undefined);
    const ready = so?.status?.conditions?.find((x) => x.type === 'Ready');
    const condition = h.status?.conditions?.find((x) => x.reason === 'FailedGetExternalMetric');
    out.push(
      fail(
        'hpa',
        `HPA ${ns}/${h.metadata?.name} cannot read its metric (${(condition?.message ?? '').slice(0, 200)}); ScaledObject ${ns}/${soName} Ready=${ready?.status ?? '?'}${ready?.reason ? ` (${ready.reason}: ${ready.message ?? ''})` : ''}`,
        ready?.status === 'False' ? 'fix what the ScaledObject\'s Ready condition names' : 'check the apiservice lines above and the adapter\'s and operator\'s logs',
      ),
    );
  }
  return out;
}
