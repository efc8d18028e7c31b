// Scale on a real control plane (envtest: etcd, kube-apiserver, kube-controller-manager v1.28), at
// 100, 300 and 1,000 ScaledObjects: how long until every HPA exists after `kubectl apply`, what the
// operator costs while nothing changes (CPU, RSS, writes to kube-apiserver), what the adapter
// costs idle, and how fast a burst of every distinct metric is served. The operator and the
// adapter run in child processes, as in a cluster; the ScaledObjects are KEDA-default ones
// (pollingInterval 30 s, minReplicaCount 0) with a metrics-api trigger against a local upstream
// in a child of its own (as in run.ts). Prints a table and writes bench/results/scale.json.
//
//   node dist-bench/bench/scale.js [--sizes=100,300,1000] [--steady-seconds=60] [--cpu-prof]
//
// --cpu-prof: the operator's CPU profile over the steady window (bench/results/operator-idle-N.cpuprofile),
//   its top functions printed.
import { writeFile, mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { startControlPlane, type ControlPlane } from '../test/helpers/envtest.js';
import { installDeploy } from '../test/helpers/keda-cluster.js';
import { Kube, deployment, namespace, scaledObject } from '../test/helpers/kube.js';
import { run } from '../test/helpers/tools.js';
import { createClient } from './client.js';
import { createFixtures } from './fixtures.js';
import { burst, type RunResult } from './load.js';
import { busyCores, machineCpu } from './machine.js';
import { formatProfile, summarizeProfile } from './profile.js';
import { counterOf, forkServer, seriesOf, freePort, waitForIdleTrim, type ServerChild, type ServerStats } from './servers.js';

const TARGETS = { hpasWithinMs: 30_000, operatorIdleCores: 0.05, burstMs: 1_000, adapterIdleRssBytes: 80 * 2 ** 20, operatorRssBytes: 150 * 2 ** 20 };
const NS = 'scale';
const HPA_SELECTOR = 'app.kubernetes.io/managed-by=keda-operator';
const HPA_HEADERS = { 'x-remote-user': 'system:serviceaccount:kube-system:horizontal-pod-autoscaler', 'x-remote-group': 'system:masters' };
const RESULTS = new URL('../../bench/results/', import.meta.url);

export interface ScaleRun {
  objects: number;
  controlPlaneStartMs: number;
  kubectlApplyMs: number;
  /** From the start of `kubectl apply` to the last of the HPAs existing. */
  allHpasMs: number;
  /** Over that time: the operator's CPU per ScaledObject, its writes to kube-apiserver, and the whole machine's busy cores (kube-apiserver and etcd are most of the rest). */
  apply: { operatorCpuMsPerObject: number; operatorWrites: number; writesByKind: Record<string, number>; callsByMethod: Record<string, number>; machineBusyCores: number };
  /** Operator CPU, in cores, averaged over the steady window. */
  operatorIdleCores: number;
  operatorRssBytes: number;
  operatorHeapBytes: number;
  /** Writes the operator made to kube-apiserver during the steady window. */
  steadyWrites: number;
  steadySeconds: number;
  adapterIdleRssBytes: number;
  burst: RunResult;
  adapterRssAfterBurstBytes: number;
}

const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
const cpuOf = (s: ServerStats) => s.cpu.user + s.cpu.system;

async function runSize(objects: number, steadySeconds: number, say: (s: string) => void, profile: boolean): Promise<ScaleRun> {
  const teardown: (() => unknown)[] = [];
  const fx = await createFixtures();
  teardown.push(() => fx.remove());
  try {
    const cp: ControlPlane = await startControlPlane({ teardown: (fn) => void teardown.push(fn) });
    const kube = new Kube(cp.adminKubeconfig);
    await installDeploy(cp, fx.dir, ['crds', 'rbac']);
    await kube.create(namespace(NS));
    // The workloads exist first: what is measured is the operator's work, not the Deployments'.
    for (let i = 0; i < objects; i += 50) await Promise.all(Array.from({ length: Math.min(50, objects - i) }, (_, j) => kube.create(deployment(NS, `app-${i + j}`))));

    const operatorMetricsPort = await freePort();
    const upstream = await forkServer('upstream', { role: 'upstream', port: fx.upstreamPort });
    teardown.push(() => upstream.stop());
    const operator: ServerChild = await forkServer('operator', {
      role: 'operator',
      certDir: fx.pkiDir,
      scaledObjectsFile: fx.scaledObjectsFile,
      caDir: fx.caDir,
      metricsPort: operatorMetricsPort,
      kubeconfig: cp.adminKubeconfig,
    });
    teardown.push(() => operator.stop());
    const adapterMetricsPort = await freePort();
    const adapter = await forkServer('adapter', {
      role: 'adapter',
      pkiDir: fx.pkiDir,
      certDir: fx.pkiDir,
      metricsPort: adapterMetricsPort,
      source: { kind: 'operator', address: `localhost:${operator.port}` },
    });
    teardown.push(() => adapter.stop());

    // KEDA's defaults: pollingInterval 30, cooldownPeriod 300, minReplicaCount 0.
    const sos = Array.from({ length: objects }, (_, i) =>
      scaledObject(NS, `so-${i}`, { scaleTargetRef: { name: `app-${i}` }, triggers: [{ type: 'metrics-api', metadata: { url: `http://127.0.0.1:${fx.upstreamPort}/m${i}`, valueLocation: `m${i}`, targetValue: '1' } }] }),
    );
    const file = join(fx.dir, 'scaledobjects.yaml');
    await writeFile(file, sos.map((o) => stringify(o)).join('---\n'));
    const callsByMethod = async () => {
      const byMethod: Record<string, number> = {};
      for (const [labels, n] of Object.entries(await seriesOf(operatorMetricsPort, 'rest_client_requests_total'))) {
        const method = /method="([^"]+)"/.exec(labels)?.[1] ?? '?';
        byMethod[method] = (byMethod[method] ?? 0) + n;
      }
      return byMethod;
    };
    const [operatorBefore, writesBeforeApply, callsBeforeApply, machineBefore] = [await operator.stats(), await seriesOf(operatorMetricsPort, 'keda_kube_api_writes_total'), await callsByMethod(), machineCpu()];
    const applyStart = performance.now();
    const applying = run('kubectl', [`--kubeconfig=${cp.adminKubeconfig}`, 'apply', '--server-side', '-f', file], '', process.env, 600_000).then((r) => {
      if (r.code !== 0) throw new Error(`kubectl apply: ${r.stderr}`);
      return performance.now() - applyStart;
    });
    let allHpasMs = NaN;
    for (;;) {
      // From the watch cache: a quorum LIST of every HPA five times a second would load etcd more as the HPAs grow.
      const n = (await kube.list('autoscaling/v2', 'HorizontalPodAutoscaler', NS, HPA_SELECTOR, true)).length;
      if (n >= objects) {
        allHpasMs = performance.now() - applyStart;
        break;
      }
      if (performance.now() - applyStart > 600_000) throw new Error(`only ${n} of ${objects} HPAs after 10 minutes`);
      await sleep(200);
    }
    const since = (before: Record<string, number>, after: Record<string, number>) => Object.fromEntries(Object.entries(after).map(([key, n]) => [key, n - (before[key] ?? 0)]));
    const writesByKind = since(writesBeforeApply, await seriesOf(operatorMetricsPort, 'keda_kube_api_writes_total'));
    const apply = {
      operatorCpuMsPerObject: (cpuOf(await operator.stats()) - cpuOf(operatorBefore)) / 1e3 / objects,
      operatorWrites: Object.values(writesByKind).reduce((sum, n) => sum + n, 0),
      writesByKind,
      callsByMethod: since(callsBeforeApply, await callsByMethod()),
      machineBusyCores: busyCores(machineBefore, machineCpu()),
    };
    const kubectlApplyMs = await applying;
    say(
      `${objects}: kubectl apply ${(kubectlApplyMs / 1e3).toFixed(1)} s, all HPAs after ${(allHpasMs / 1e3).toFixed(1)} s; meanwhile the operator used ` +
        `${apply.operatorCpuMsPerObject.toFixed(2)} ms of CPU and made ${(apply.operatorWrites / objects).toFixed(2)} writes per object ` +
        `(${Object.entries(writesByKind).map(([labels, n]) => `${labels} ${n}`).join(', ')}); all its calls to kube-apiserver by method: ` +
        `${Object.entries(apply.callsByMethod).map(([method, n]) => `${method} ${(n / objects).toFixed(2)}`).join(', ')} per object; the machine ${apply.machineBusyCores.toFixed(2)} cores`,
    );

    // Every object polled at least once (the first polls are spread over 5 s, then every 30 s),
    // statuses written: from here on nothing changes.
    await sleep(40_000);
    // Both have had quiet check intervals by now; say so if either has not trimmed its heap yet.
    for (const [name, port] of [['operator', operatorMetricsPort], ['adapter', adapterMetricsPort]] as const) {
      if (!(await waitForIdleTrim(port))) say(`${objects}: the ${name} did not trim its heap within 30 s of quiet (its figures below are before any trim)`);
    }
    const [before, writesBefore, t0] = [await operator.stats(), await counterOf(operatorMetricsPort, 'keda_kube_api_writes_total'), performance.now()];
    const adapterIdle = await adapter.stats();
    if (profile) {
      const file = fileURLToPath(new URL(`operator-idle-${objects}.cpuprofile`, RESULTS));
      await mkdir(RESULTS, { recursive: true });
      await operator.profile(steadySeconds * 1000, file);
      say(`${objects}: the operator's steady-state CPU profile is in ${file}`);
      console.log(formatProfile(await summarizeProfile(file)));
    } else {
      await sleep(steadySeconds * 1000);
    }
    const [after, writesAfter, t1] = [await operator.stats(), await counterOf(operatorMetricsPort, 'keda_kube_api_writes_total'), performance.now()];
    const operatorIdleCores = (cpuOf(after) - cpuOf(before)) / 1e3 / (t1 - t0);
    const trims = { count: await counterOf(operatorMetricsPort, 'idle_heap_trims_total'), pauseMs: 1e3 * (await counterOf(operatorMetricsPort, 'idle_heap_trim_pause_seconds_total')) };
    say(`${objects}: operator heap trims so far: ${trims.count}, ${trims.pauseMs.toFixed(0)} ms of pauses in all`);
    say(`${objects}: operator idle ${(operatorIdleCores * 100).toFixed(1)}% of a core, ${mb(after.rss)} RSS (heap ${mb(after.heapUsed)}, external ${mb(after.external)}), ${writesAfter - writesBefore} writes in ${steadySeconds} s; adapter idle ${mb(adapterIdle.rss)}`);

    // Every distinct metric at once, over 32 keep-alive connections, as the HPAs would ask.
    const pem = (name: string) => readFile(join(fx.pkiDir, name));
    const client = createClient({ kind: 'undici', port: adapter.port, ca: await pem('ca.crt'), cert: await pem('front-proxy-client.crt'), key: await pem('front-proxy-client.key'), headers: HPA_HEADERS, connections: 32 });
    teardown.push(() => client.close());
    const requests = Array.from({ length: objects }, (_, i) => {
      const path = `/apis/external.metrics.k8s.io/v1beta1/namespaces/${NS}/s0-metric-api-m${i}?labelSelector=${encodeURIComponent(`scaledobject.keda.sh/name=so-${i}`)}`;
      const expected = `"metricName":"s0-metric-api-m${i}"`;
      return { path, check: (r: { status: number; body: string }) => (r.status === 200 && r.body.includes(expected) ? (true as const) : `status ${r.status}: ${r.body.slice(0, 200)}`) };
    });
    const b = await burst(client, requests);
    const adapterAfter = await adapter.stats();
    say(`${objects}: ${objects} distinct metrics in ${b.elapsedMs.toFixed(0)} ms, ${b.errors} failed, p99 ${b.latency.p99Ms} ms`);
    return {
      objects,
      controlPlaneStartMs: cp.startup.totalMs,
      kubectlApplyMs,
      allHpasMs,
      apply,
      operatorIdleCores,
      operatorRssBytes: after.rss,
      operatorHeapBytes: after.heapUsed,
      steadyWrites: writesAfter - writesBefore,
      steadySeconds,
      adapterIdleRssBytes: adapterIdle.rss,
      burst: b,
      adapterRssAfterBurstBytes: adapterAfter.rss,
    };
  } finally {
    for (const fn of teardown.reverse()) await Promise.resolve(fn()).catch(() => undefined);
  }
}

/** Growth from the smallest to the largest size, against linear growth (1.0 = linear, below = better). */
function growth(runs: ScaleRun[], pick: (r: ScaleRun) => number): string {
  const [first, last] = [runs[0]!, runs.at(-1)!];
  const ratio = pick(last) / pick(first);
  const linear = last.objects / first.objects;
  return `x${ratio.toFixed(2)} for x${linear.toFixed(0)} objects`;
}

export function formatScale(runs: ScaleRun[]): string {
  const met = (ok: boolean) => (ok ? 'met' : 'MISSED');
  const rows = runs.map((r) =>
    [
      String(r.objects).padStart(5),
      `${(r.allHpasMs / 1e3).toFixed(1)} s`.padStart(8),
      `${(r.kubectlApplyMs / 1e3).toFixed(1)} s`.padStart(8),
      `${((r.allHpasMs - r.kubectlApplyMs) / 1e3).toFixed(1)} s`.padStart(6),
      `${r.apply.operatorCpuMsPerObject.toFixed(2)} ms`.padStart(9),
      (r.apply.operatorWrites / r.objects).toFixed(2).padStart(6),
      r.apply.machineBusyCores.toFixed(2).padStart(5),
      `${(r.operatorIdleCores * 100).toFixed(1)}%`.padStart(7),
      mb(r.operatorRssBytes).padStart(7),
      String(r.steadyWrites).padStart(6),
      mb(r.adapterIdleRssBytes).padStart(7),
      `${r.burst.elapsedMs.toFixed(0)} ms`.padStart(8),
      String(r.burst.errors).padStart(6),
      mb(r.adapterRssAfterBurstBytes).padStart(8),
    ].join('  '),
  );
  const largest = runs.at(-1)!;
  return [
    'Scale on a real control plane (envtest v1.28): KEDA-default ScaledObjects, one metrics-api trigger each',
    '  objects  all HPAs   kubectl    lag  op CPU/obj  w/obj  busy  op idle  op RSS  writes  ad idle     burst  failed  ad burst',
    '  (all HPAs: from the start of kubectl apply; kubectl: its own run; lag: the last HPA after kubectl returned; op CPU/obj, w/obj (operator writes per object), busy (machine cores): until all HPAs)',
    ...rows.map((r) => `  ${r}`),
    '',
    `  growth ${runs[0]!.objects} -> ${largest.objects}: HPAs ${growth(runs, (r) => r.allHpasMs)} (kubectl apply alone ${growth(runs, (r) => r.kubectlApplyMs)}), operator CPU while applying ${growth(runs, (r) => r.apply.operatorCpuMsPerObject * r.objects)}, operator idle CPU ${growth(runs, (r) => r.operatorIdleCores)}, operator RSS ${growth(runs, (r) => r.operatorRssBytes)}, burst ${growth(runs, (r) => r.burst.elapsedMs)}`,
    `  at ${largest.objects}: all HPAs within 30 s of kubectl apply: ${(largest.allHpasMs / 1e3).toFixed(1)} s ${met(largest.allHpasMs <= TARGETS.hpasWithinMs)}`,
    `  at ${largest.objects}: operator idle under 5% of a core: ${(largest.operatorIdleCores * 100).toFixed(1)}% ${met(largest.operatorIdleCores < TARGETS.operatorIdleCores)}`,
    `  at ${largest.objects}: operator under 150 MB: ${mb(largest.operatorRssBytes)} ${met(largest.operatorRssBytes < TARGETS.operatorRssBytes)}`,
    `  at ${largest.objects}: ${largest.objects} distinct metrics under 1 s, none failing: ${largest.burst.elapsedMs.toFixed(0)} ms, ${largest.burst.errors} failed ${met(largest.burst.elapsedMs < TARGETS.burstMs && largest.burst.errors === 0)}`,
    `  adapter idle under 80 MB: ${mb(Math.max(...runs.map((r) => r.adapterIdleRssBytes)))} ${met(runs.every((r) => r.adapterIdleRssBytes < TARGETS.adapterIdleRssBytes))}`,
    `  steady state without writes: ${runs.map((r) => r.steadyWrites).join(', ')} ${met(runs.every((r) => r.steadyWrites === 0))}`,
  ].join('\n');
}

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { sizes: { type: 'string', default: '100,300,1000' }, 'steady-seconds': { type: 'string', default: '60' }, 'cpu-prof': { type: 'boolean', default: false } } });
  const sizes = values.sizes.split(',').map(Number);
  const steadySeconds = Number(values['steady-seconds']);
  const say = (line: string) => process.stdout.write(`  ${line}\n`);
  const runs: ScaleRun[] = [];
  for (const n of sizes) runs.push(await runSize(n, steadySeconds, say, values['cpu-prof']));
  console.log('');
  console.log(formatScale(runs));
  await mkdir(RESULTS, { recursive: true });
  const file = new URL('scale.json', RESULTS);
  await writeFile(file, JSON.stringify({ timestamp: new Date().toISOString(), node: process.version, targets: TARGETS, runs }, null, 2));
  console.log(`\nwritten to ${fileURLToPath(file)}`);
  return runs.every((r) => r.burst.errors === 0) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error('scale benchmark failed:', err);
    process.exit(1);
  },
);
