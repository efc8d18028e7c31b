// The OpenAPI documents the aggregator downloads (v2 at /openapi/v2, v3 discovery at /openapi/v3).
// They describe our real types, so `kubectl explain` and clients generated from the cluster's
// spec see the external metrics API as it is. Built once; both versions from one set of schemas.
import { createHash } from 'node:crypto';
import { GROUP, GROUP_VERSION, VERSION } from './api-types.js';

const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const EM = 'io.k8s.metrics.pkg.apis.external_metrics.v1beta1';
const QUANTITY = 'io.k8s.apimachinery.pkg.api.resource.Quantity';

type Schema = Record<string, unknown>;

function schemas(ref: (name: string) => string): Record<string, Schema> {
  return {
    [QUANTITY]: { type: 'string', description: 'A fixed-point number with an optional SI or binary suffix, e.g. 1500m, 2k, 1Gi.' },
    [`${META}.Time`]: { type: 'string', format: 'date-time', description: 'RFC 3339 timestamp, second precision.' },
    [`${META}.ListMeta`]: {
      type: 'object',
      properties: {
        selfLink: { type: 'string' },
        resourceVersion: { type: 'string' },
        continue: { type: 'string' },
        remainingItemCount: { type: 'integer', format: 'int64' },
      },
    },
    [`${META}.StatusDetails`]: {
      type: 'object',
      properties: { group: { type: 'string' }, kind: { type: 'string' }, name: { type: 'string' } },
    },
    [`${META}.Status`]: {
      type: 'object',
      description: 'Returned for every error.',
      properties: {
        kind: { type: 'string' },
        apiVersion: { type: 'string' },
        metadata: { $ref: ref(`${META}.ListMeta`) },
        status: { type: 'string' },
        message: { type: 'string' },
        reason: { type: 'string' },
        details: { $ref: ref(`${META}.StatusDetails`) },
        code: { type: 'integer', format: 'int32' },
      },
      'x-kubernetes-group-version-kind': [{ group: '', kind: 'Status', version: 'v1' }],
    },
    [`${EM}.ExternalMetricValue`]: {
      type: 'object',
      description: 'One value of an external metric, for one set of labels.',
      required: ['metricName', 'metricLabels', 'timestamp', 'value'],
      properties: {
        metricName: { type: 'string', description: 'The name of the metric.' },
        metricLabels: { type: 'object', additionalProperties: { type: 'string' }, description: 'Labels of this series (null when none).' },
        timestamp: { $ref: ref(`${META}.Time`) },
        window: { type: 'integer', format: 'int64', description: 'Seconds over which the value was computed, when it was.' },
        value: { $ref: ref(QUANTITY) },
      },
    },
    [`${EM}.ExternalMetricValueList`]: {
      type: 'object',
      description: 'The values of an external metric; the HPA sums them.',
      required: ['items'],
      properties: {
        kind: { type: 'string' },
        apiVersion: { type: 'string' },
        metadata: { $ref: ref(`${META}.ListMeta`) },
        items: { type: 'array', items: { $ref: ref(`${EM}.ExternalMetricValue`) } },
      },
      'x-kubernetes-group-version-kind': [{ group: GROUP, kind: 'ExternalMetricValueList', version: VERSION }],
    },
  };
}

const METRIC_PATH = `/apis/${GROUP_VERSION}/namespaces/{namespace}/{metric}`;

function metricOperation(ref: (name: string) => string, v3: boolean): Schema {
  const json = (schema: Schema) => (v3 ? { content: { 'application/json': { schema } } } : { schema });
  const param = (name: string, where: string, description: string, required: boolean) =>
    v3 ? { name, in: where, description, required, schema: { type: 'string' } } : { name, in: where, description, required, type: 'string' };
  return {
    get: {
      operationId: 'listExternalMetricValue',
      description: 'Values of an external metric in a namespace, optionally filtered by a label selector.',
      tags: [`externalMetrics_${VERSION}`],
      parameters: [
        param('namespace', 'path', 'Namespace of the metric.', true),
        param('metric', 'path', 'Name of the metric.', true),
        param('labelSelector', 'query', 'Kubernetes label selector restricting the series returned.', false),
      ],
      responses: Object.fromEntries(
        [
          ['200', 'OK', `${EM}.ExternalMetricValueList`],
          ['400', 'Bad request (invalid selector, namespace or metric name)', `${META}.Status`],
          ['401', 'Unauthorized', `${META}.Status`],
          ['403', 'Forbidden', `${META}.Status`],
          ['404', 'Metric not found', `${META}.Status`],
          ['503', 'Metric source unavailable', `${META}.Status`],
          ['504', 'Metric source timed out', `${META}.Status`],
        ].map(([code, description, type]) => [code, { description, ...json({ $ref: ref(type as string) }) }]),
      ),
      'x-kubernetes-action': 'list',
      'x-kubernetes-group-version-kind': { group: GROUP, kind: 'ExternalMetricValueList', version: VERSION },
    },
  };
}

const info = { title: 'external.metrics.k8s.io', version: VERSION };

const v2Ref = (n: string) => `#/definitions/${n}`;
const v3Ref = (n: string) => `#/components/schemas/${n}`;

export const openapiV2 = JSON.stringify({
  swagger: '2.0',
  info,
  paths: { [METRIC_PATH]: metricOperation(v2Ref, false) },
  definitions: schemas(v2Ref),
});

export const openapiV3GroupVersion = JSON.stringify({
  openapi: '3.0.0',
  info,
  paths: { [METRIC_PATH]: metricOperation(v3Ref, true) },
  components: { schemas: schemas(v3Ref) },
});

export const etag = (body: string): string => `"${createHash('sha256').update(body).digest('hex').slice(0, 32).toUpperCase()}"`;

const v3Hash = etag(openapiV3GroupVersion).replace(/"/g, '');
export const OPENAPI_V3_GV_PATH = `/openapi/v3/apis/${GROUP_VERSION}`;

export const openapiV3Discovery = JSON.stringify({
  paths: { [`apis/${GROUP_VERSION}`]: { serverRelativeURL: `${OPENAPI_V3_GV_PATH}?hash=${v3Hash}` } },
});
