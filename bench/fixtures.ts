// Benchmark inputs: a throw-away dev PKI, a metrics file for the file source, and the same metrics
// as KEDA ScaledObjects (one metrics-api trigger each) for the operator, whose upstream answers
// `GET /<valueLocation>` with `{"<valueLocation>":1.5}`: either way every metric is 1500m.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateDevPki } from '../src/certs/dev-pki.js';
import { ProjectedDir } from '../test/helpers/certdir.js';
import { freePort } from './servers.js';

export const NAMESPACE = 'default';
export const DISTINCT_METRICS = 1_000;
/** KEDA's metrics-api metric name: `s<trigger index>-metric-api-<valueLocation, . -> ->`. */
export const THROUGHPUT_METRIC = { name: 's0-metric-api-throughput', so: 'so-throughput', valueLocation: 'throughput' };
/** The same upstream value through a trigger with `useCachedMetrics: true`: answered from the operator's last poll. */
export const CACHED_METRIC = { name: 's0-metric-api-throughput', so: 'so-throughput-cached', valueLocation: 'throughput', cached: true };
export const METRIC_VALUE = '1500m';

export const distinctMetric = (i: number) => ({ name: `s0-metric-api-m${i}`, so: `so-${i}`, valueLocation: `m${i}` });

/** The path an HPA (through kube-apiserver) asks for one ScaledObject's metric. */
export function metricPath(m: { name: string; so: string }): string {
  const selector = encodeURIComponent(`scaledobject.keda.sh/name=${m.so}`);
  return `/apis/external.metrics.k8s.io/v1beta1/namespaces/${NAMESPACE}/${m.name}?labelSelector=${selector}`;
}

export interface Fixtures {
  dir: string;
  pkiDir: string;
  /** For the file source. */
  metricsFile: string;
  /** For the operator: 2 + DISTINCT_METRICS ScaledObjects (the throughput one twice: plain and cached). */
  scaledObjectsFile: string;
  /** The operator's --ca-dir (empty: the upstream is plain HTTP). */
  caDir: string;
  /** Where the upstream child serves the metrics-api upstream. */
  upstreamPort: number;
  /** The full-path adapter's own cert dir, in the kubelet's projected layout (tls.crt, tls.key, ca.crt). */
  adapterCerts: ProjectedDir;
  remove(): Promise<void>;
}

export async function createFixtures(): Promise<Fixtures> {
  const dir = await mkdtemp(join(tmpdir(), 'keda-bench-'));
  const pkiDir = join(dir, 'pki');
  await generateDevPki({ outDir: pkiDir });
  const all = [THROUGHPUT_METRIC, ...Array.from({ length: DISTINCT_METRICS }, (_, i) => distinctMetric(i))];

  const metricsFile = join(dir, 'metrics.yaml');
  const entry = (m: { name: string; so: string }) =>
    `  - namespace: ${NAMESPACE}\n    name: ${m.name}\n    labels: {scaledobject.keda.sh/name: ${m.so}}\n    value: "${METRIC_VALUE}"\n`;
  await writeFile(metricsFile, ['metrics:\n', ...all.map(entry)].join(''));

  const upstreamPort = await freePort();
  const scaledObjectsFile = join(dir, 'scaledobjects.yaml');
  const scaledObject = (m: { so: string; valueLocation: string; cached?: boolean }) =>
    `apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: ${m.so}, namespace: ${NAMESPACE}}
spec:
  scaleTargetRef: {name: ${m.so}}
  triggers:
    - type: metrics-api
      metadata:
        url: "http://127.0.0.1:${upstreamPort}/${m.valueLocation}"
        valueLocation: "${m.valueLocation}"
        targetValue: "10"
${m.cached ? '      useCachedMetrics: true\n' : ''}`;
  await writeFile(scaledObjectsFile, [...all, CACHED_METRIC].map(scaledObject).join('---\n'));

  const caDir = join(dir, 'custom-ca');
  await mkdir(caDir);
  const adapterCerts = new ProjectedDir(join(dir, 'adapter-certs'));
  const pem = (name: string) => readFile(join(pkiDir, name), 'utf8');
  await adapterCerts.write({ 'tls.crt': await pem('tls.crt'), 'tls.key': await pem('tls.key'), 'ca.crt': await pem('ca.crt') });

  return { dir, pkiDir, metricsFile, scaledObjectsFile, caDir, upstreamPort, adapterCerts, remove: () => rm(dir, { recursive: true, force: true }) };
}
