// Keep-alive HTTPS clients (TLS 1.3, client certificate) behind one tiny interface, so the load
// generator is the same code for every target and either transport.
//   undici: a Pool of `connections` sockets, one request at a time on each (no pipelining).
//   https:  kept for comparison (--client=https): about a third of undici's rate from one core.
//           node:https with a keep-alive Agent capped at `connections` sockets.
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Pool } from 'undici';

export type ClientKind = 'undici' | 'https';

export interface ClientOptions {
  kind: ClientKind;
  port: number;
  ca: Buffer;
  cert: Buffer;
  key: Buffer;
  /** Sent with every request. */
  headers: Record<string, string>;
  connections: number;
}

export interface Reply {
  status: number;
  contentType: string;
  body: string;
}

export interface Client {
  get(path: string): Promise<Reply>;
  close(): Promise<void>;
}

const REQUEST_TIMEOUT_MS = 10_000;

export function createClient(o: ClientOptions): Client {
  const tls = { ca: o.ca, cert: o.cert, key: o.key, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' } as const;
  const client = o.kind === 'undici' ? undiciClient(o, tls) : httpsClient(o, tls);
  // close() may be called again (once after a scenario, once more when everything is torn down).
  let closing: Promise<void> | undefined;
  return { get: client.get, close: () => (closing ??= client.close()) };
}

function undiciClient(o: ClientOptions, tls: object): Client {
  const pool = new Pool(`https://127.0.0.1:${o.port}`, {
    connections: o.connections,
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: REQUEST_TIMEOUT_MS,
    bodyTimeout: REQUEST_TIMEOUT_MS,
    connect: tls,
  });
  // dispatch() with a bare handler rather than request(): no body stream per response, so the
  // generator spends less of its core per request.
  return {
    get: (path) =>
      new Promise<Reply>((resolve, reject) => {
        let status = 0;
        let contentType = '';
        const chunks: Buffer[] = [];
        pool.dispatch(
          { path, method: 'GET', headers: o.headers },
          {
            onRequestStart: () => undefined,
            onResponseStart: (_c, statusCode, headers) => {
              status = statusCode;
              contentType = String(headers['content-type'] ?? '');
            },
            onResponseData: (_c, chunk) => void chunks.push(chunk),
            onResponseEnd: () => resolve({ status, contentType, body: Buffer.concat(chunks).toString('utf8') }),
            onResponseError: (_c, err) => reject(err),
          },
        );
      }),
    close: () => pool.close(),
  };
}

function httpsClient(o: ClientOptions, tls: object): Client {
  const agent = new HttpsAgent({ keepAlive: true, maxSockets: o.connections, maxFreeSockets: o.connections, ...tls });
  return {
    get: (path) =>
      new Promise<Reply>((resolve, reject) => {
        const req = httpsRequest({ agent, host: '127.0.0.1', port: o.port, path, headers: o.headers, timeout: REQUEST_TIMEOUT_MS }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'] ?? '', body }));
          res.on('error', reject);
        });
        req.on('timeout', () => req.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
        req.on('error', reject);
        req.end();
      }),
    close: async () => agent.destroy(),
  };
}
