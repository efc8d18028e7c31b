// How in-cluster clients spell a Service's name. One definition for the certificates we issue and
// the self-checks that verify them.

/** The four ways in-cluster clients may spell a Service's name. */
export function serviceDnsNames(service: string, namespace: string, clusterDomain = 'cluster.local'): string[] {
  const base = `${service}.${namespace}`;
  return [service, base, `${base}.svc`, `${base}.svc.${clusterDomain}`];
}

/** The fully qualified forms the aggregator and our components dial (`<svc>.<ns>.svc[.<domain>]`). */
export function dialedServiceNames(service: string, namespace: string, clusterDomain = 'cluster.local'): string[] {
  return serviceDnsNames(service, namespace, clusterDomain).slice(2);
}
