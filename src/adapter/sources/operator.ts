// Metric values from the operator over the gRPC channel, as KEDA's adapter gets them: the scaled
// object is named by the `scaledobject.keda.sh/name` selector, the operator computes the value.
// Values the operator answers from its last poll (useCachedMetrics) are answered from the mirror
// of them this adapter holds, while that is live (see src/channel/mirror-replica.ts).
import { status } from '../../channel/status.js';
import { getEquality } from '../../k8s/labels.js';
import { canonicalQuantity } from '../../k8s/quantity.js';
import type { ChannelClient } from '../../channel/client.js';
import type { CallError } from '../../channel/grpc-client.js';
import type { MirrorReplica } from '../../channel/mirror-replica.js';
import { fromWireTime } from '../../channel/service.js';
import {
  InvalidMetricQueryError,
  MetricNotFoundError,
  SourceFailedError,
  SourceTimeoutError,
  SourceUnavailableError,
  quoted,
  type ExternalMetricQuery,
  type ExternalMetricSample,
  type ExternalMetricsProvider,
} from '../provider.js';

export const SCALED_OBJECT_LABEL = 'scaledobject.keda.sh/name';

export class OperatorSource implements ExternalMetricsProvider {
  readonly name = 'operator';
  constructor(
    private readonly channel: ChannelClient,
    private readonly mirror?: MirrorReplica,
  ) {}

  async getExternalMetric(q: ExternalMetricQuery, signal: AbortSignal): Promise<ExternalMetricSample[]> {
    const scaledObject = getEquality(q.selector, SCALED_OBJECT_LABEL);
    if (scaledObject === undefined) {
      throw new InvalidMetricQueryError(`the labelSelector must name the scaled object: ${SCALED_OBJECT_LABEL}=<name> (got ${quoted(q.selectorText)})`);
    }
    const mirrored = this.mirror?.lookup(q.namespace, scaledObject, q.metricName);
    if (mirrored !== undefined) return [{ metricName: q.metricName, metricLabels: null, timestamp: new Date(), value: mirrored }];
    let list;
    try {
      list = await this.channel.getMetrics({ name: scaledObject, namespace: q.namespace, metricName: q.metricName }, signal);
    } catch (err) {
      throw fromGrpcError(err as CallError);
    }
    return list.items.map((item) => ({
      metricName: item.metricName,
      metricLabels: Object.keys(item.metricLabels ?? {}).length > 0 ? item.metricLabels : null,
      timestamp: fromWireTime(item.timestamp),
      ...(item.window !== undefined && item.window !== null ? { windowSeconds: Number(item.window) } : {}),
      value: canonicalQuantity(item.value?.string ?? ''),
    }));
  }

  readiness() {
    return this.channel.readiness();
  }

  async close(): Promise<void> {
    this.mirror?.close();
    this.channel.close();
  }
}

function fromGrpcError(err: CallError): Error {
  const details = err.details || err.message;
  switch (err.code) {
    case status.UNAVAILABLE:
      return new SourceUnavailableError(`operator unreachable: ${details}`);
    case status.NOT_FOUND:
      return new MetricNotFoundError(details);
    case status.DEADLINE_EXCEEDED:
      return new SourceTimeoutError(`operator did not answer in time: ${details}`);
    default:
      return new SourceFailedError(`operator: ${details}`);
  }
}
