// A real HTTPS client for the tests: TLS 1.3, optional client certificate, raw headers allowed
// (repeated identity headers are the point of several tests).
import type { Agent } from 'node:https';
import { request as httpsRequest } from 'node:https';
import type { Test } from 'tap';
import type { Pair } from './pki.js';

export interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  /** The request went over a connection that an earlier request opened. */
  reusedSocket: boolean;
  json<T = Record<string, unknown>>(): T;
}

export interface RequestOptions {
  port: number;
  path: string;
  ca: string;
  client?: Pair;
  method?: string;
  /** Pairs, so a header may repeat. */
  headers?: [string, string][];
  servername?: string;
  agent?: Agent;
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  maxVersion?: 'TLSv1.2' | 'TLSv1.3';
}

export function get(opts: RequestOptions): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: opts.port,
        path: opts.path,
        method: opts.method ?? 'GET',
        ca: opts.ca,
        servername: opts.servername ?? 'localhost',
        minVersion: opts.minVersion ?? 'TLSv1.3',
        maxVersion: opts.maxVersion ?? 'TLSv1.3',
        ...(opts.client ? { cert: opts.client.cert, key: opts.client.key } : {}),
        agent: opts.agent ?? false,
        // The array form sends headers verbatim (repeats included), so Host must be explicit.
        headers: [['Host', `localhost:${opts.port}`], ...(opts.headers ?? [])].flat(),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, reusedSocket: req.reusedSocket, json: <T>() => JSON.parse(text) as T });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** What a caller that should get nothing gets: the error, and proof that no response arrived. */
export async function expectNoResponse(opts: RequestOptions): Promise<{ code: string; message: string }> {
  try {
    const res = await get(opts);
    throw new Error(`expected the connection to be refused, got HTTP ${res.status}: ${res.text.slice(0, 200)}`);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.message.startsWith('expected the connection')) throw e;
    return { code: e.code ?? '', message: e.message };
  }
}

/** The identity headers the aggregator (front-proxy) sends: user, every group repeated, extras. */
export function frontProxyHeaders(user: string, groups: string[] = [], extra: [string, string][] = []): [string, string][] {
  return [['X-Remote-User', user], ...groups.map((g): [string, string] => ['X-Remote-Group', g]), ...extra];
}

/** A refusal as Kubernetes words it: that code, a Failure Status with that reason, and no payload. */
export function expectRefused(t: Test, res: Response, code: number, reason: string, message?: RegExp): void {
  t.equal(res.status, code, `HTTP ${code}`);
  const s = res.json();
  t.match(s, { kind: 'Status', status: 'Failure', reason, code });
  if (message) t.match(s.message, message);
  t.notMatch(res.text, /"items"|ExternalMetricValueList|APIResourceList|APIGroupList/, 'nothing was served');
}
