// Benchmark inputs: a throw-away dev PKI and a metrics file for the file source.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateDevPki } from '../src/certs/dev-pki.js';

export const NAMESPACE = 'default';
export const DISTINCT_METRICS = 1_000;
export const THROUGHPUT_METRIC = { name: 's0-metric-api-throughput', so: 'so-throughput' };

export const distinctMetric = (i: number) => ({ name: `s0-metric-api-m${i}`, so: `so-${i}` });

/** The path an HPA (through kube-apiserver) asks for one ScaledObject's metric. */
export function metricPath(m: { name: string; so: string }): string {
  const selector = encodeURIComponent(`scaledobject.keda.sh/name=${m.so}`);
  return `/apis/external.metrics.k8s.io/v1beta1/namespaces/${NAMESPACE}/${m.name}?labelSelector=${selector}`;
}

export interface Fixtures {
  dir: string;
  pkiDir: string;
  metricsFile: string;
  remove(): Promise<void>;
}

export async function createFixtures(): Promise<Fixtures> {
  const dir = await mkdtemp(join(tmpdir(), 'keda-bench-'));
  const pkiDir = join(dir, 'pki');
  await generateDevPki({ outDir: pkiDir });
  const metricsFile = join(dir, 'metrics.yaml');
  const entry = (m: { name: string; so: string }) =>
    `  - namespace: ${NAMESPACE}\n    name: ${m.name}\n    labels: {scaledobject.keda.sh/name: ${m.so}}\n    value: "1500m"\n`;
  const lines = ['metrics:\n', entry(THROUGHPUT_METRIC)];
  for (let i = 0; i < DISTINCT_METRICS; i++) lines.push(entry(distinctMetric(i)));
  await writeFile(metricsFile, lines.join(''));
  return { dir, pkiDir, metricsFile, remove: () => rm(dir, { recursive: true, force: true }) };
}
