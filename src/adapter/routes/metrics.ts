// GET /apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector=...
import type { FastifyInstance } from 'fastify';
import { SelectorError, formatSelector, parseSelector } from '../../k8s/labels.js';
import { StatusError, badRequest, internalError, methodNotAllowed, notFound, serviceUnavailable, timeout } from '../../k8s/status.js';
import { metaTime } from '../../k8s/types.js';
import { GROUP, GROUP_VERSION, invalidMetricName, invalidNamespace, metricValueListSchema } from '../api-types.js';
import {
  InvalidMetricQueryError,
  MetricNotFoundError,
  SourceFailedError,
  SourceTimeoutError,
  SourceUnavailableError,
  type ExternalMetricSample,
  type ExternalMetricsProvider,
} from '../provider.js';
import { readOnly } from './read-only.js';

export async function metricRoutes(app: FastifyInstance, opts: { provider: ExternalMetricsProvider }): Promise<void> {
  const { provider } = opts;
  readOnly(
    app,
    `/apis/${GROUP_VERSION}/namespaces/:namespace/:metric`,
    'metric',
    async (req, reply) => {
      // What authorization approved, not a second parse of the URL.
      const info = req.info;
      if (info.kind !== 'resource') throw internalError('metric route reached without resource attributes');
      // External metrics are read, never watched (?watch=true): as kube-apiserver answers for a kind with no watch.
      if (info.verb === 'watch') throw methodNotAllowed('watch');
      const problem = invalidNamespace(info.namespace) ?? invalidMetricName(info.resource);
      if (problem) throw badRequest(problem);
      const selectorText = firstQueryValue((req.query as Record<string, unknown>).labelSelector);
      let selector;
      try {
        selector = parseSelector(selectorText);
      } catch (err) {
        if (err instanceof SelectorError) throw badRequest(`invalid labelSelector: ${err.message}`);
        throw err;
      }
      const abort = new AbortController();
      // Only a client that goes away early aborts; a finished response must not pay for an abort.
      reply.raw.once('close', () => {
        if (!reply.raw.writableFinished) abort.abort();
      });
      let samples: ExternalMetricSample[];
      try {
        samples = await provider.getExternalMetric(
          { namespace: info.namespace, metricName: info.resource, selector, selectorText: formatSelector(selector) },
          abort.signal,
        );
      } catch (err) {
        throw toStatus(err, info.resource);
      }
      return {
        kind: 'ExternalMetricValueList',
        apiVersion: GROUP_VERSION,
        metadata: {},
        items: samples.map((s) => ({
          metricName: s.metricName,
          metricLabels: s.metricLabels,
          timestamp: metaTime(s.timestamp),
          ...(s.windowSeconds !== undefined ? { window: s.windowSeconds } : {}),
          value: s.value,
        })),
      };
    },
    { response: { 200: metricValueListSchema } },
  );
}

function firstQueryValue(v: unknown): string {
  if (Array.isArray(v)) return String(v[0] ?? '');
  return typeof v === 'string' ? v : '';
}

/** The Status for what a source said; anything else is a bug, left to the error handler (logged with its stack). */
function toStatus(err: unknown, metric: string): unknown {
  if (err instanceof StatusError) return err;
  if (err instanceof InvalidMetricQueryError) return badRequest(err.message);
  if (err instanceof MetricNotFoundError) return notFound(err.message, { group: GROUP, kind: metric });
  if (err instanceof SourceUnavailableError) return serviceUnavailable(err.message);
  if (err instanceof SourceTimeoutError) return timeout(err.message);
  if (err instanceof SourceFailedError) return internalError(err.message);
  return err;
}
