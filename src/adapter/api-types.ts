// The external.metrics.k8s.io/v1beta1 group as the cluster sees it: names, discovery documents and
// the response shape. Everything here is fixed at start-up and serialised once.
import { isDns1123Label } from '../k8s/names.js';

export const GROUP = 'external.metrics.k8s.io';
export const VERSION = 'v1beta1';
export const GROUP_VERSION = `${GROUP}/${VERSION}`;

const versionEntry = { groupVersion: GROUP_VERSION, version: VERSION };

export const apiGroup = { name: GROUP, versions: [versionEntry], preferredVersion: versionEntry };

export const discovery = {
  apis: JSON.stringify({ kind: 'APIGroupList', apiVersion: 'v1', groups: [apiGroup] }),
  group: JSON.stringify({ kind: 'APIGroup', apiVersion: 'v1', ...apiGroup }),
  // client-go >= 0.26 reports an empty resource list as "Got empty response", so one placeholder.
  resources: JSON.stringify({
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: GROUP_VERSION,
    resources: [{ name: 'externalmetrics', singularName: '', namespaced: true, kind: 'ExternalMetricValueList', verbs: ['get'] }],
  }),
};

// Any name that is a safe single path segment: KEDA's own names are [a-z0-9-], other adapters use : . _
const METRIC_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,252}$/;

export function invalidNamespace(ns: string): string | undefined {
  return isDns1123Label(ns) ? undefined : `invalid namespace "${truncate(ns)}": must be a DNS-1123 label (lowercase alphanumerics and '-', at most 63 characters)`;
}

export function invalidMetricName(name: string): string | undefined {
  return METRIC_NAME.test(name)
    ? undefined
    : `invalid metric name "${truncate(name)}": must start with an alphanumeric and contain only alphanumerics, '.', '_', ':' and '-' (at most 253 characters)`;
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}

/** fast-json-stringify schema for ExternalMetricValueList: the hot path's serialiser. */
export const metricValueListSchema = {
  type: 'object',
  properties: {
    kind: { type: 'string' },
    apiVersion: { type: 'string' },
    metadata: { type: 'object', additionalProperties: true },
    items: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          metricName: { type: 'string' },
          metricLabels: { type: ['object', 'null'], additionalProperties: { type: 'string' } },
          timestamp: { type: 'string' },
          window: { type: 'integer' },
          value: { type: 'string' },
        },
        required: ['metricName', 'metricLabels', 'timestamp', 'value'],
      },
    },
  },
} as const;
