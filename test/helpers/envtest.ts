// A real Kubernetes control plane for tests, the way controller-runtime's envtest gives one to Go
// operators: etcd, kube-apiserver and (optionally) kube-controller-manager v1.28, started on free
// loopback ports from the binaries in KUBEBUILDER_ASSETS (or laid out by
// ../shared/envtest/setup-envtest when that is unset). Everything runs for real: RBAC, admission
// (webhooks with matchConditions), CRD validation, the aggregator, TokenRequest and TokenReview,
// the garbage collector, the HPA and Deployment controllers. There is no kubelet: Pods stay Pending.
//
//   const cp = await startControlPlane(t);                  // one per test file at most
//   cp.adminKubeconfig                                       // system:masters, client certificate
//   await cp.kubeconfigFor('alice', ['team-a'])              // other identities, by certificate
//   await cp.serviceAccountKubeconfig('keda', 'keda-operator')  // a TokenRequest token
//   await cp.stopApiServer(); await cp.startApiServer();     // same port, same etcd
//
// Local servers are reached the way the envtest README says: `--enable-aggregator-routing=false`
// makes kube-apiserver dial an APIService's or webhook's Service by its ExternalName, so a Service
// of type ExternalName `localhost` whose port is the local server's port routes to it.
//
// No process outlives the test: each runs in its own process group, torn down by t.teardown, by an
// exit hook, and by the reaper (reaper.ts), which kills them and removes the data in /dev/shm as
// soon as the test process is gone, even after a SIGKILL on timeout.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, writeFile, unlink } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createCA, issueCertificate, type CertificateBundle, type ExtendedUsage } from '../../src/certs/x509.js';
import { freePort } from './adapter.js';
import { reap, reapPath } from './reaper.js';
import { repoRoot } from './repo.js';

const SETUP_ENVTEST = resolve(repoRoot(), '../shared/envtest/setup-envtest');
const BINARIES = ['etcd', 'kube-apiserver', 'kube-controller-manager'] as const;
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

export interface StartupTimes {
  etcdMs: number;
  apiServerMs: number;
  controllerManagerMs: number;
  totalMs: number;
}

export interface ClientIdentity {
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  url: string;
  port: number;
  dir: string;
  /** etcd's client URL (http, loopback), for tests that write behind kube-apiserver's back. */
  etcdUrl: string;
  /** The CA that signs kube-apiserver's serving certificate and every client certificate. */
  caFile: string;
  caPem: string;
  /** The front-proxy CA and the aggregator's client certificate (CN=front-proxy-client). */
  frontProxyCaFile: string;
  frontProxyClient: ClientIdentity;
  adminKubeconfig: string;
  startup: StartupTimes;
  /**
   * A client certificate (user = CN, groups = O) signed by the cluster's client CA, or shaped by
   * `opts` (validity window, usages, the front-proxy CA as signer) to be a bad one on purpose.
   */
  clientCertificate(user: string, groups?: string[], opts?: ClientCertificateOptions): Promise<ClientIdentity>;
  /** A kubeconfig for that identity. */
  kubeconfigFor(user: string, groups?: string[]): Promise<string>;
  /** A kubeconfig carrying a TokenRequest token of an existing ServiceAccount. */
  serviceAccountKubeconfig(namespace: string, name: string, expirationSeconds?: number): Promise<string>;
  /** Stops kube-apiserver (SIGTERM), leaving etcd and the controller manager running. */
  stopApiServer(): Promise<void>;
  /** Starts kube-apiserver again on the same port and etcd; resolves once it is ready. */
  startApiServer(): Promise<void>;
  /**
   * kube-apiserver's audit log so far: every write (create, update, patch, delete) at Metadata
   * level, and TokenReviews, SubjectAccessReviews and TokenRequests with request and response.
   */
  auditEvents(): AuditEvent[];
  /** The last lines a component wrote (for failure messages). */
  logTail(component: (typeof BINARIES)[number], lines?: number): string;
  stop(): Promise<void>;
}

export interface ClientCertificateOptions {
  /** Signed by the front-proxy CA instead of the client CA (an aggregator identity). */
  signer?: 'client' | 'front-proxy';
  notBefore?: Date;
  notAfter?: Date;
  /** Default ['clientAuth']. */
  extendedUsages?: ExtendedUsage[];
}

export interface AuditEvent {
  verb: string;
  requestURI: string;
  user: { username: string; groups?: string[] };
  objectRef?: { resource?: string; subresource?: string; namespace?: string; name?: string; apiGroup?: string };
  responseStatus?: { code?: number };
  requestObject?: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  responseObject?: Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
}

const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: RequestResponse
    resources:
      - {group: authentication.k8s.io, resources: [tokenreviews]}
      - {group: authorization.k8s.io, resources: [subjectaccessreviews]}
      - {group: "", resources: [serviceaccounts/token]}
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
`;

export interface ControlPlaneOptions {
  /** Run kube-controller-manager (Deployments, HPAs, garbage collection...). Default true. */
  controllerManager?: boolean;
  /** kube-apiserver flags added to (or overriding, same name) the defaults. */
  apiServerFlags?: string[];
  /** The aggregation layer's front-proxy flags (--requestheader-*, --proxy-client-*). Default true. */
  aggregation?: boolean;
}

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** The directory holding the three binaries, controller-runtime's way. */
export function envtestAssets(): string {
  const fromEnv = process.env.KUBEBUILDER_ASSETS;
  if (fromEnv) {
    const missing = BINARIES.filter((b) => !existsSync(join(fromEnv, b)));
    if (missing.length === 0) return fromEnv;
    throw new Error(`envtest: KUBEBUILDER_ASSETS=${fromEnv} has no ${missing.join(', ')}; point it at a directory with etcd, kube-apiserver and kube-controller-manager (v1.28)`);
  }
  if (existsSync(SETUP_ENVTEST)) {
    const r = spawnSync(SETUP_ENVTEST, [], { encoding: 'utf8' });
    const dir = r.stdout.trim().split('\n').at(-1) ?? '';
    if (r.status === 0 && dir && BINARIES.every((b) => existsSync(join(dir, b)))) return dir;
    throw new Error(`envtest: ${SETUP_ENVTEST} failed: ${(r.stderr || r.error?.message || 'no directory printed').trim().split('\n').at(-1)}`);
  }
  throw new Error('envtest: no control plane: set KUBEBUILDER_ASSETS to a directory with etcd, kube-apiserver and kube-controller-manager (v1.28), or provide ../shared/envtest/setup-envtest');
}

interface Proc {
  child: ChildProcess;
  exited: Promise<void>;
  pidFile: string;
}

export async function startControlPlane(t: Teardown, opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const started = performance.now();
  const assets = envtestAssets();
  // tmpfs when there is one: etcd fsyncs every write, and a disk makes that the bottleneck.
  const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
  const dir = await mkdtemp(join(base, 'envtest-'));
  const procs = new Map<string, Proc>();
  const forgetDir = reapPath(dir);
  let stopping: Promise<void> | undefined;
  const killAll = (signal: NodeJS.Signals) => {
    for (const p of procs.values()) killGroup(p.child, signal);
  };
  const onExit = () => {
    killAll('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  const stop = () =>
    (stopping ??= (async () => {
      process.removeListener('exit', onExit);
      const all = [...procs.values()];
      for (const p of all) killGroup(p.child, 'SIGTERM');
      const timer = setTimeout(() => killAll('SIGKILL'), 5000);
      await Promise.all(all.map((p) => p.exited));
      clearTimeout(timer);
      rmSync(dir, { recursive: true, force: true });
      forgetDir();
    })());
  t.teardown(stop);

  try {
    const pki = await writePki(dir);
    const auditLog = join(dir, 'audit.log');
    await writeFile(join(dir, 'audit-policy.yaml'), AUDIT_POLICY);
    const [etcdPort, etcdPeerPort, port] = await Promise.all([freePort(), freePort(), freePort()]);
    const url = `https://127.0.0.1:${port}`;
    const adminKubeconfig = join(dir, 'admin.kubeconfig');
    const identities = new Map<string, Promise<ClientIdentity>>();
    const clientCertificate = (user: string, groups: string[] = [], opts: ClientCertificateOptions = {}): Promise<ClientIdentity> => {
      const { signer = 'client', extendedUsages = ['clientAuth'], notBefore, notAfter } = opts;
      const key = JSON.stringify([user, groups, signer, extendedUsages, notBefore, notAfter]);
      let p = identities.get(key);
      if (!p) {
        const file = join(dir, 'clients', `${identities.size}`);
        const issuer = signer === 'front-proxy' ? pki.frontProxyCa : pki.ca;
        p = issueCertificate(issuer, { commonName: user, organization: groups, extendedUsages, ...(notBefore ? { notBefore } : {}), ...(notAfter ? { notAfter } : {}) }).then((b) => saveIdentity(file, b));
        identities.set(key, p);
      }
      return p;
    };
    const kubeconfigFor = async (user: string, groups: string[] = []): Promise<string> => {
      const id = await clientCertificate(user, groups);
      const file = `${id.certFile.replace(/\.crt$/, '')}.kubeconfig`;
      await writeFile(file, kubeconfig(url, pki.ca.certPem, user, { 'client-certificate-data': b64(id.cert), 'client-key-data': b64(id.key) }));
      return file;
    };
    await mkdir(join(dir, 'clients'));
    await writeFile(adminKubeconfig, kubeconfig(url, pki.ca.certPem, 'admin', { 'client-certificate-data': b64(pki.admin.certPem), 'client-key-data': b64(pki.admin.keyPem) }));
    const admin = { cert: pki.admin.certPem, key: pki.admin.keyPem, ca: pki.ca.certPem };

    const launch = (name: string, args: string[]): Proc => {
      const out = openSync(join(dir, `${name}.log`), 'a');
      const child = spawn(join(assets, name), args, { detached: true, stdio: ['ignore', out, out] });
      reap(child, { group: true });
      closeSync(out);
      const pidFile = join(dir, `${name}.pid`);
      if (child.pid) void writeFile(pidFile, String(child.pid));
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      const p = { child, exited, pidFile };
      procs.set(name, p);
      return p;
    };
    const logTail = (component: string, lines = 20) => {
      try {
        return readFileSync(join(dir, `${component}.log`), 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch {
        return '';
      }
    };
    const waitUntil = async (name: string, p: Proc, ready: () => Promise<boolean>, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      let exited = false;
      void p.exited.then(() => (exited = true));
      for (;;) {
        if (exited) throw new Error(`envtest: ${name} exited during start-up:\n${logTail(name)}`);
        if (await ready().catch(() => false)) return;
        if (Date.now() > deadline) throw new Error(`envtest: ${name} not ready within ${timeoutMs} ms:\n${logTail(name)}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };

    // --- etcd ---------------------------------------------------------------------------------
    const t0 = performance.now();
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = launch('etcd', [
      `--data-dir=${join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${etcdPeerPort}`,
      '--log-level=warn',
    ]);
    await waitUntil('etcd', etcd, async () => (await fetch(`${etcdUrl}/health`)).ok);
    const etcdMs = performance.now() - t0;

    // --- kube-apiserver -----------------------------------------------------------------------
    const apiArgs = mergeFlags(
      [
        `--etcd-servers=${etcdUrl}`,
        `--secure-port=${port}`,
        '--bind-address=127.0.0.1',
        '--advertise-address=127.0.0.1',
        `--cert-dir=${join(dir, 'apiserver')}`,
        `--tls-cert-file=${pki.files.serving}`,
        `--tls-private-key-file=${pki.files.servingKey}`,
        `--client-ca-file=${pki.files.ca}`,
        '--authorization-mode=RBAC',
        '--service-cluster-ip-range=10.96.0.0/16',
        '--allow-privileged=true',
        `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
        `--service-account-key-file=${pki.files.saPublic}`,
        `--service-account-signing-key-file=${pki.files.saPrivate}`,
        `--api-audiences=${SERVICE_ACCOUNT_ISSUER}`,
        ...(opts.aggregation ?? true
          ? [
              `--requestheader-client-ca-file=${pki.files.frontProxyCa}`,
              '--requestheader-allowed-names=front-proxy-client',
              '--requestheader-username-headers=X-Remote-User',
              '--requestheader-group-headers=X-Remote-Group',
              '--requestheader-extra-headers-prefix=X-Remote-Extra-',
              `--proxy-client-cert-file=${pki.files.frontProxyClient}`,
              `--proxy-client-key-file=${pki.files.frontProxyClientKey}`,
            ]
          : []),
        '--enable-aggregator-routing=false',
        '--endpoint-reconciler-type=none',
        '--watch-cache=true',
        `--audit-policy-file=${join(dir, 'audit-policy.yaml')}`,
        `--audit-log-path=${auditLog}`,
        '--audit-log-mode=blocking',
        '--audit-log-maxsize=0',
        '--v=1',
      ],
      opts.apiServerFlags ?? [],
    );
    const apiReady = async () => (await httpsGet(`${url}/readyz`, admin)).status === 200;
    const t1 = performance.now();
    await waitUntil('kube-apiserver', launch('kube-apiserver', apiArgs), apiReady);
    const apiServerMs = performance.now() - t1;

    // --- kube-controller-manager -------------------------------------------------------------
    let controllerManagerMs = 0;
    if (opts.controllerManager ?? true) {
      const t2 = performance.now();
      // Its own identity, as kubeadm sets it up; each controller then runs as its own
      // ServiceAccount (horizontal-pod-autoscaler, generic-garbage-collector...), so that RBAC
      // applies to them as in a real cluster.
      const kcmKubeconfig = await kubeconfigFor('system:kube-controller-manager');
      const kcm = launch('kube-controller-manager', [
        `--kubeconfig=${kcmKubeconfig}`,
        `--authentication-kubeconfig=${kcmKubeconfig}`,
        `--authorization-kubeconfig=${kcmKubeconfig}`,
        '--use-service-account-credentials=true',
        `--service-account-private-key-file=${pki.files.saPrivate}`,
        `--root-ca-file=${pki.files.ca}`,
        '--leader-elect=false',
        '--secure-port=0',
        '--horizontal-pod-autoscaler-sync-period=5s',
        '--horizontal-pod-autoscaler-downscale-stabilization=0s',
        '--concurrent-horizontal-pod-autoscaler-syncs=5',
        '--v=1',
      ]);
      // Ready when its controllers act: the service-account controller makes default/default.
      await waitUntil('kube-controller-manager', kcm, async () => (await httpsGet(`${url}/api/v1/namespaces/default/serviceaccounts/default`, admin)).status === 200);
      controllerManagerMs = performance.now() - t2;
    }

    const startApiServer = async () => {
      const current = procs.get('kube-apiserver');
      if (current && running(current.child)) return;
      await waitUntil('kube-apiserver', launch('kube-apiserver', apiArgs), apiReady);
    };
    const stopApiServer = async () => {
      const p = procs.get('kube-apiserver');
      if (!p || !running(p.child)) return;
      killGroup(p.child, 'SIGTERM');
      const timer = setTimeout(() => killGroup(p.child, 'SIGKILL'), 10_000);
      await p.exited;
      clearTimeout(timer);
      await unlink(p.pidFile).catch(() => undefined);
    };
    const serviceAccountKubeconfig = async (namespace: string, name: string, expirationSeconds = 3600): Promise<string> => {
      const res = await httpsRequest('POST', `${url}/api/v1/namespaces/${namespace}/serviceaccounts/${name}/token`, admin, {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenRequest',
        spec: { expirationSeconds },
      });
      if (res.status !== 201) throw new Error(`envtest: TokenRequest for ${namespace}/${name}: HTTP ${res.status} ${res.body}`);
      const token = (JSON.parse(res.body) as { status: { token: string } }).status.token;
      const file = join(dir, 'clients', `sa-${namespace}-${name}.kubeconfig`);
      await writeFile(file, kubeconfig(url, pki.ca.certPem, `system:serviceaccount:${namespace}:${name}`, { token }));
      return file;
    };

    return {
      url,
      port,
      dir,
      etcdUrl,
      caFile: pki.files.ca,
      caPem: pki.ca.certPem,
      frontProxyCaFile: pki.files.frontProxyCa,
      frontProxyClient: { certFile: pki.files.frontProxyClient, keyFile: pki.files.frontProxyClientKey, cert: pki.frontProxyClient.certPem, key: pki.frontProxyClient.keyPem },
      adminKubeconfig,
      startup: { etcdMs, apiServerMs, controllerManagerMs, totalMs: performance.now() - started },
      clientCertificate,
      kubeconfigFor,
      serviceAccountKubeconfig,
      stopApiServer,
      startApiServer,
      logTail,
      auditEvents: () =>
        existsSync(auditLog)
          ? readFileSync(auditLog, 'utf8')
              .split('\n')
              .filter((l) => l.trim() !== '')
              .map((l) => JSON.parse(l) as AuditEvent)
          : [],
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

// --- PKI --------------------------------------------------------------------------------------

async function writePki(dir: string) {
  const pkiDir = join(dir, 'pki');
  await mkdir(pkiDir);
  const [ca, frontProxyCa] = await Promise.all([createCA({ commonName: 'envtest-ca' }), createCA({ commonName: 'envtest-front-proxy-ca' })]);
  const [serving, admin, frontProxyClient] = await Promise.all([
    issueCertificate(ca, {
      commonName: 'kube-apiserver',
      dnsNames: ['localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', 'kubernetes.default.svc.cluster.local'],
      ipAddresses: ['127.0.0.1', '10.96.0.1'],
      extendedUsages: ['serverAuth'],
    }),
    issueCertificate(ca, { commonName: 'admin', organization: ['system:masters'], extendedUsages: ['clientAuth'] }),
    issueCertificate(frontProxyCa, { commonName: 'front-proxy-client', extendedUsages: ['clientAuth'] }),
  ]);
  const sa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const files = {
    ca: join(pkiDir, 'ca.crt'),
    serving: join(pkiDir, 'apiserver.crt'),
    servingKey: join(pkiDir, 'apiserver.key'),
    frontProxyCa: join(pkiDir, 'front-proxy-ca.crt'),
    frontProxyClient: join(pkiDir, 'front-proxy-client.crt'),
    frontProxyClientKey: join(pkiDir, 'front-proxy-client.key'),
    saPublic: join(pkiDir, 'sa.pub'),
    saPrivate: join(pkiDir, 'sa.key'),
  };
  await Promise.all([
    writeFile(files.ca, ca.certPem),
    writeFile(files.serving, serving.certPem),
    writeFile(files.servingKey, serving.keyPem, { mode: 0o600 }),
    writeFile(files.frontProxyCa, frontProxyCa.certPem),
    writeFile(files.frontProxyClient, frontProxyClient.certPem),
    writeFile(files.frontProxyClientKey, frontProxyClient.keyPem, { mode: 0o600 }),
    writeFile(files.saPublic, sa.publicKey.export({ type: 'spki', format: 'pem' })),
    writeFile(files.saPrivate, sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 }),
  ]);
  return { ca, frontProxyCa, admin, frontProxyClient, files };
}

async function saveIdentity(base: string, b: CertificateBundle): Promise<ClientIdentity> {
  const id = { certFile: `${base}.crt`, keyFile: `${base}.key`, cert: b.certPem, key: b.keyPem };
  await writeFile(id.certFile, b.certPem);
  await writeFile(id.keyFile, b.keyPem, { mode: 0o600 });
  return id;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

function kubeconfig(server: string, caPem: string, user: string, credentials: Record<string, string>): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'envtest', cluster: { server, 'certificate-authority-data': b64(caPem) } }],
    users: [{ name: user, user: credentials }],
    contexts: [{ name: 'envtest', context: { cluster: 'envtest', user, namespace: 'default' } }],
    'current-context': 'envtest',
  });
}

/** Defaults, with any flag of the same name replaced by the override. */
function mergeFlags(defaults: string[], overrides: string[]): string[] {
  const name = (f: string) => f.split('=')[0];
  const overridden = new Set(overrides.map(name));
  return [...defaults.filter((f) => !overridden.has(name(f))), ...overrides];
}

// --- processes ---------------------------------------------------------------------------------

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || !running(child)) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

// --- HTTP --------------------------------------------------------------------------------------

interface Tls {
  cert: string;
  key: string;
  ca: string;
}

function httpsRequest(method: string, url: string, tls: Tls, body?: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request(url, { method, ...tls, headers: body ? { 'content-type': 'application/json' } : {}, timeout: 5000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body ? JSON.stringify(body) : undefined);
  });
}

const httpsGet = (url: string, tls: Tls) => httpsRequest('GET', url, tls);
