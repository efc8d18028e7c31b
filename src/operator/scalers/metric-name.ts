// KEDA's metric names, character for character: an HPA written against KEDA names its external
// metric `s<index>-<scaler specific name>`, so ours must be the same strings.

/** KEDA's `kedautil.NormalizeString`: each of `/ . : % ( )` becomes `-`; nothing else changes. */
export function normalizeMetricName(s: string): string {
  return s.replace(/[/.:%()]/g, '-');
}

/** KEDA's `GenerateMetricNameWithIndex`: the trigger's index as prefix; `name` is used as given. */
export function metricNameFor(triggerIndex: number, name: string): string {
  return `s${triggerIndex}-${name}`;
}
