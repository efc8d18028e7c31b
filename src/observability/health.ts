// Named health checks behind /healthz, /livez and /readyz, answered the way Kubernetes components
// answer them: `ok`, or a `[+]name ok` / `[-]name failed` listing, with reasons only in ?verbose.
export interface CheckResult {
  ok: boolean;
  reason?: string;
}
export type Check = () => CheckResult;

export type Probe = 'livez' | 'readyz';

export class HealthChecks {
  private readonly checks: { name: string; probes: readonly Probe[]; check: Check }[] = [];

  add(name: string, probes: readonly Probe[], check: Check): void {
    this.checks.push({ name, probes, check });
  }

  /** `healthz` is the union of both, as in kube-apiserver. */
  evaluate(probe: Probe | 'healthz', verbose: boolean, only?: string): { code: number; body: string } | undefined {
    const selected = this.checks.filter((c) => (probe === 'healthz' || c.probes.includes(probe)) && (only === undefined || c.name === only));
    if (only !== undefined && selected.length === 0) return undefined;
    const results = selected.map((c) => ({ name: c.name, ...c.check() }));
    const failed = results.some((r) => !r.ok);
    if (!failed && !verbose) return { code: 200, body: 'ok' };
    const lines = results.map((r) =>
      r.ok ? `[+]${r.name} ok` : `[-]${r.name} failed: ${verbose ? (r.reason ?? 'unknown') : 'reason withheld'}`,
    );
    lines.push(`${probe} check ${failed ? 'failed' : 'passed'}`);
    return { code: failed ? 500 : 200, body: lines.join('\n') + '\n' };
  }
}

/** Serves a probe path (`/readyz`, `/readyz/<check>`) with its query; undefined when not a probe path. */
export function probeResponse(health: HealthChecks, pathname: string, query: URLSearchParams): { code: number; body: string } | undefined {
  const m = /^\/(healthz|livez|readyz)(?:\/([^/]+))?\/?$/.exec(pathname);
  if (!m) return undefined;
  const verbose = query.has('verbose') && query.get('verbose') !== 'false';
  return health.evaluate(m[1] as Probe | 'healthz', verbose, m[2]);
}
