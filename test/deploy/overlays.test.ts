// The install as a user applies it: each overlay rendered by kubectl kustomize, then checked for the
// properties the components rely on (mutual TLS names and ports, live-reloadable certificate
// mounts, hardened pods, who injects the CA bundle).
import t from 'tap';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { run } from '../helpers/tools.js';
import { operatorFlags } from '../../src/operator/config.js';
import { WEBHOOK_PATHS } from '../../src/operator/webhook/server.js';

interface Port { name?: string; port?: number; containerPort?: number; targetPort?: number | string }
interface Probe { httpGet?: { path: string; port: number | string } }
interface Container {
  name: string;
  args?: string[];
  ports?: Port[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; subPath?: string; subPathExpr?: string }[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean; capabilities?: { drop?: string[] }; seccompProfile?: { type: string } };
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
  volumes?: { name: string; secret?: { secretName: string; optional?: boolean } }[];
}
interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  spec?: {
    template?: { metadata?: { labels?: Record<string, string> }; spec: PodSpec };
    selector?: Record<string, string>;
    ports?: Port[];
    service?: { name: string; namespace: string; port: number };
    secretName?: string;
    dnsNames?: string[];
    insecureSkipTLSVerify?: boolean;
  };
  webhooks?: Webhook[];
  rules?: { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
}

interface Webhook {
  name: string;
  clientConfig: { service?: { name: string; namespace: string; port?: number; path?: string }; url?: string; caBundle?: string };
  rules?: { apiGroups: string[]; apiVersions: string[]; operations: string[]; resources: string[]; scope?: string }[];
  failurePolicy?: string;
  matchPolicy?: string;
  sideEffects?: string;
  timeoutSeconds?: number;
  admissionReviewVersions?: string[];
  matchConditions?: { name: string; expression: string }[];
}

const root = join(import.meta.dirname, '..', '..');

async function render(dir: string): Promise<{ code: number | null; stderr: string; docs: Doc[]; text: string }> {
  const r = await run('kubectl', ['kustomize', dir]);
  return { code: r.code, stderr: r.stderr, text: r.stdout, docs: parseAllDocuments(r.stdout).map((d) => d.toJS() as Doc) };
}

const find = (docs: Doc[], kind: string, name: string): Doc | undefined => docs.find((d) => d.kind === kind && d.metadata.name === name);
const containersOf = (d: Doc): Container[] => [...(d.spec?.template?.spec.containers ?? []), ...(d.spec?.template?.spec.initContainers ?? [])];
const flag = (c: Container | undefined, name: string): string | undefined => c?.args?.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

/** The container port a Service port reaches, by number or by name. */
function targetContainerPort(svcPort: Port, container: Container): number | undefined {
  const target = svcPort.targetPort ?? svcPort.port;
  if (typeof target === 'number') return container.ports?.find((p) => p.containerPort === target)?.containerPort;
  return container.ports?.find((p) => p.name === target)?.containerPort;
}

const overlays = { rotation: 'true', 'own-certs': 'false', 'cert-manager': 'false' } as const;

for (const [overlay, rotation] of Object.entries(overlays)) {
  t.test(`overlay ${overlay}`, async (t) => {
    const r = await render(join(root, 'deploy', 'overlays', overlay));
    t.equal(r.code, 0, r.stderr);
    const { docs } = r;
    const operator = find(docs, 'Deployment', 'keda-operator');
    const adapter = find(docs, 'Deployment', 'keda-metrics-apiserver');
    t.ok(operator && adapter, 'both Deployments');
    const deployments = docs.filter((d) => d.kind === 'Deployment');
    const opC = operator?.spec?.template?.spec.containers[0];
    const adC = adapter?.spec?.template?.spec.containers[0];

    t.test('nothing skips TLS verification', async (t) => {
      t.notMatch(r.text, /insecureSkipTLSVerify/);
      for (const d of docs) t.notOk(d.spec?.insecureSkipTLSVerify, `${d.kind} ${d.metadata.name}`);
    });

    t.test('the certificates come from Secret kedaorg-certs, mounted whole (no subPath)', async (t) => {
      for (const d of deployments) {
        const spec = d.spec?.template?.spec;
        const mount = spec?.containers[0]?.volumeMounts?.find((m) => m.mountPath === '/certs');
        t.ok(mount, `${d.metadata.name} mounts /certs`);
        const vol = spec?.volumes?.find((v) => v.name === mount?.name);
        t.match(vol, { secret: { secretName: 'kedaorg-certs', optional: true } }, `${d.metadata.name}: Secret volume`);
        for (const c of containersOf(d)) for (const m of c.volumeMounts ?? []) {
          t.notOk(m.subPath ?? m.subPathExpr, `${d.metadata.name}/${c.name} ${m.mountPath}: no subPath`);
        }
      }
    });

    t.test('every container is hardened', async (t) => {
      for (const d of deployments) {
        t.match(d.spec?.template?.spec.securityContext, { runAsNonRoot: true, runAsUser: 65532, seccompProfile: { type: 'RuntimeDefault' } }, `${d.metadata.name} pod`);
        for (const c of containersOf(d)) {
          t.match(c.securityContext, {
            runAsNonRoot: true, runAsUser: 65532, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] }, seccompProfile: { type: 'RuntimeDefault' },
          }, `${d.metadata.name}/${c.name}`);
        }
      }
    });

    t.test('probes use the plain metrics port', async (t) => {
      for (const d of deployments) for (const c of d.spec?.template?.spec.containers ?? []) {
        t.same(c.livenessProbe?.httpGet && { path: c.livenessProbe.httpGet.path, port: c.livenessProbe.httpGet.port }, { path: '/livez', port: 8080 }, `${c.name} liveness`);
        t.same(c.readinessProbe?.httpGet && { path: c.readinessProbe.httpGet.path, port: c.readinessProbe.httpGet.port }, { path: '/readyz', port: 8080 }, `${c.name} readiness`);
        t.ok(c.ports?.some((p) => p.containerPort === 8080), `${c.name} declares 8080`);
      }
    });

    t.test('the adapter dials the operator Service by its full name on the grpc port', async (t) => {
      const address = flag(adC, 'metrics-service-address');
      t.ok(address, 'flag set');
      const [host, port] = (address ?? ':').split(':');
      const svc = find(docs, 'Service', 'keda-operator');
      t.equal(host, `${svc?.metadata.name}.${svc?.metadata.namespace}.svc.cluster.local`);
      const svcPort = svc?.spec?.ports?.find((p) => p.port === Number(port));
      t.ok(svcPort, `Service port ${port}`);
      t.equal(svcPort && opC && targetContainerPort(svcPort, opC), 9666, 'it reaches the operator container grpc port');
      t.equal(opC?.ports?.find((p) => p.containerPort === 9666)?.name, 'grpc');
    });

    t.test('the APIService points at the adapter Service, port reaching 6443', async (t) => {
      const api = find(docs, 'APIService', 'v1beta1.external.metrics.k8s.io');
      t.match(api?.spec?.service, { name: 'keda-metrics-apiserver', namespace: 'keda' });
      const svc = find(docs, 'Service', api?.spec?.service?.name ?? '');
      t.equal(svc?.metadata.namespace, api?.spec?.service?.namespace);
      const svcPort = svc?.spec?.ports?.find((p) => p.port === api?.spec?.service?.port);
      t.equal(svcPort && adC && targetContainerPort(svcPort, adC), 6443);
      t.equal(flag(adC, 'secure-port'), '6443');
    });

    t.test('every webhook reaches a path the operator serves, through keda-admission-webhooks:443 to its webhook port', async (t) => {
      const hooks = find(docs, 'ValidatingWebhookConfiguration', 'keda-admission')?.webhooks ?? [];
      const served = Object.entries(WEBHOOK_PATHS);
      t.same(hooks.map((w) => w.clientConfig.service?.path).sort(), served.map(([, path]) => path).sort(), 'one webhook per path served, no other');
      const webhookPort = Number(flag(opC, 'webhook-port') ?? operatorFlags.webhookPort.default);
      t.equal(webhookPort, 9443, 'KEDA\'s webhook port');
      t.equal(opC?.ports?.find((p) => p.containerPort === webhookPort)?.name, 'webhooks', 'declared by the operator container');
      for (const w of hooks) {
        const ref = w.clientConfig.service;
        t.notOk(w.clientConfig.url, `${w.name}: through the Service, not a URL`);
        t.notOk(w.clientConfig.caBundle, `${w.name}: no caBundle in the manifests (injected at run time)`);
        t.match(ref, { name: 'keda-admission-webhooks', namespace: 'keda', port: 443 }, w.name);
        const svc = find(docs, 'Service', ref?.name ?? '');
        t.equal(svc?.metadata.namespace, ref?.namespace, `${w.name}: the Service exists in that namespace`);
        const svcPort = svc?.spec?.ports?.find((p) => p.port === (ref?.port ?? 443));
        t.equal(svcPort && opC && targetContainerPort(svcPort, opC), webhookPort, `${w.name}: the Service port reaches the operator's webhook port`);
        const labels = operator?.spec?.template?.metadata?.labels ?? {};
        t.ok(Object.entries(svc?.spec?.selector ?? { none: '' }).every(([k, v]) => labels[k] === v), `${w.name}: the Service selects the operator pods`);
        const resource = served.find(([, path]) => path === ref?.path)?.[0];
        t.same(w.rules, [{ apiGroups: ['keda.sh'], apiVersions: ['v1alpha1'], operations: ['CREATE', 'UPDATE'], resources: [resource], scope: resource === 'clustertriggerauthentications' ? 'Cluster' : 'Namespaced' }], `${w.name}: the rule matches the path's resource`);
        t.match(w, { admissionReviewVersions: ['v1'], sideEffects: 'None', timeoutSeconds: 10, matchPolicy: 'Equivalent', failurePolicy: 'Fail' }, `${w.name}: settings`);
        t.match(w.matchConditions, [{ name: 'spec-changed', expression: /request\.operation != 'UPDATE'/ }], `${w.name}: spec-preserving updates are not sent (an outage never blocks finalizer removal)`);
      }
    });

    t.test(`certificate rotation is ${rotation}`, async (t) => {
      t.equal(flag(opC, 'enable-cert-rotation'), rotation);
      t.equal(opC?.args?.filter((a) => a.startsWith('--enable-cert-rotation')).length, 1, 'set once');
    });

    t.test('CRDs are installed', async (t) => {
      for (const n of ['scaledobjects', 'triggerauthentications', 'clustertriggerauthentications']) t.ok(find(docs, 'CustomResourceDefinition', `${n}.keda.sh`), n);
    });

    if (overlay === 'cert-manager') {
      t.test('cert-manager injects the CA and issues the mounted Secret', async (t) => {
        const cert = find(docs, 'Certificate', 'keda-ts-certs');
        t.ok(cert, 'Certificate keda-ts-certs');
        const ref = `${cert?.metadata.namespace}/${cert?.metadata.name}`;
        t.equal(find(docs, 'APIService', 'v1beta1.external.metrics.k8s.io')?.metadata.annotations?.['cert-manager.io/inject-ca-from'], ref);
        t.equal(find(docs, 'ValidatingWebhookConfiguration', 'keda-admission')?.metadata.annotations?.['cert-manager.io/inject-ca-from'], ref);
        t.ok(cert?.spec?.dnsNames?.includes('keda-metrics-apiserver.keda.svc'), 'the name the aggregator dials');
        t.ok(cert?.spec?.dnsNames?.includes('keda-operator.keda.svc.cluster.local'), 'the name the adapter dials');
        for (const d of deployments) {
          t.ok(d.spec?.template?.spec.volumes?.some((v) => v.secret?.secretName === cert?.spec?.secretName), `${d.metadata.name} mounts the Certificate's Secret`);
        }
      });
    } else {
      t.test('no cert-manager annotation (the operator injects the CA)', async (t) => {
        t.notMatch(r.text, /cert-manager\.io/);
      });
    }
  });
}

t.test('the service-account-tokens component renders with an overlay and is limited by name', async (t) => {
  const r = await render(join(import.meta.dirname, 'fixtures', 'with-token-component'));
  t.equal(r.code, 0, r.stderr);
  const role = find(r.docs, 'ClusterRole', 'keda-ts-serviceaccount-token-creator');
  t.ok(role?.rules?.length, 'ClusterRole present');
  for (const rule of role?.rules ?? []) {
    t.same(rule.verbs, ['create']);
    t.same(rule.resources, ['serviceaccounts/token']);
    t.ok(rule.resourceNames && rule.resourceNames.length > 0, 'limited by resourceNames');
  }
  const bindings = r.docs.filter((d) => d.kind === 'RoleBinding' && (d as { roleRef?: { name: string } }).roleRef?.name === role?.metadata.name);
  t.ok(bindings.length > 0, 'bound by RoleBinding');
  t.notOk(r.docs.some((d) => d.kind === 'ClusterRoleBinding' && (d as { roleRef?: { name: string } }).roleRef?.name === role?.metadata.name), 'never cluster-wide');
  t.ok(find(r.docs, 'Deployment', 'keda-operator'), 'the overlay is there too');
});
