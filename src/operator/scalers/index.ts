// The scalers this operator implements, by KEDA trigger type.
import { CRON_PARAMETERS, createCronScaler } from './cron.js';
import { KUBERNETES_WORKLOAD_PARAMETERS, createKubernetesWorkloadScaler } from './kubernetes-workload.js';
import { METRICS_API_PARAMETERS, createMetricsApiScaler } from './metrics-api.js';
import { readsEnvironment, type ParamSpec } from './parameters.js';
import { MYSQL_PARAMETERS, createMysqlScaler } from './mysql.js';
import { NATS_JETSTREAM_PARAMETERS, createNatsJetstreamScaler } from './nats-jetstream.js';
import { POSTGRESQL_PARAMETERS, createPostgresqlScaler } from './postgresql.js';
import { PROMETHEUS_PARAMETERS, createPrometheusScaler } from './prometheus.js';
import { RABBITMQ_PARAMETERS, createRabbitmqScaler } from './rabbitmq.js';
import { REDIS_PARAMETERS, createRedisScaler } from './redis.js';
import { REDIS_STREAMS_PARAMETERS, createRedisStreamsScaler } from './redis-streams.js';
import { ScalerConfigError, type Scaler, type ScalerContext, type ScalerFactory } from './scaler.js';
import type { Trigger } from '../scaledobjects/types.js';

export const scalerFactories: Record<string, ScalerFactory> = {
  cron: createCronScaler,
  'kubernetes-workload': createKubernetesWorkloadScaler,
  'metrics-api': createMetricsApiScaler,
  mysql: createMysqlScaler,
  'nats-jetstream': createNatsJetstreamScaler,
  postgresql: createPostgresqlScaler,
  prometheus: createPrometheusScaler,
  rabbitmq: createRabbitmqScaler,
  redis: createRedisScaler,
  'redis-streams': createRedisStreamsScaler,
};

/** What each scaler reads: the README's tables are generated from these. */
export const scalerParameters: Record<string, readonly ParamSpec[]> = {
  cron: CRON_PARAMETERS,
  'kubernetes-workload': KUBERNETES_WORKLOAD_PARAMETERS,
  'metrics-api': METRICS_API_PARAMETERS,
  mysql: MYSQL_PARAMETERS,
  'nats-jetstream': NATS_JETSTREAM_PARAMETERS,
  postgresql: POSTGRESQL_PARAMETERS,
  prometheus: PROMETHEUS_PARAMETERS,
  rabbitmq: RABBITMQ_PARAMETERS,
  redis: REDIS_PARAMETERS,
  'redis-streams': REDIS_STREAMS_PARAMETERS,
};

/** The parameters a trigger type may read from the workload's environment (`<parameter>FromEnv`); undefined for a type we do not implement. */
export function environmentParameters(type: string): string[] | undefined {
  return Object.hasOwn(scalerParameters, type) ? scalerParameters[type]!.filter(readsEnvironment).map((s) => s.name) : undefined;
}

/** Does the trigger read a parameter from the workload's environment? */
export function usesEnvironment(trigger: Trigger): boolean {
  return (environmentParameters(trigger.type) ?? []).some((name) => (trigger.metadata?.[`${name}FromEnv`] ?? '').trim() !== '');
}

/** The scaler for one trigger; a ScalerConfigError for a type we do not implement or bad metadata. */
export function createScaler(ctx: ScalerContext): Scaler {
  const type = ctx.trigger.type;
  const factory = Object.hasOwn(scalerFactories, type) ? scalerFactories[type] : undefined;
  if (!factory) {
    throw new ScalerConfigError(`unsupported trigger type "${type}" (supported: ${Object.keys(scalerFactories).join(', ')})`);
  }
  return factory(ctx);
}

export { ScalerConfigError, ScalerError, type Scaler, type ScalerContext, type ScalerFactory } from './scaler.js';
export { createMetricsApiScaler } from './metrics-api.js';
export { createPrometheusScaler } from './prometheus.js';
export { metricNameFor, normalizeMetricName } from './metric-name.js';
