// What a request asks for, in the terms authorization uses: Kubernetes' RequestInfoFactory
// applied to our paths. The route handlers read the same object, so what was authorized is what
// gets served.
import type { ResourceOrPath } from '../../k8s/status.js';

const VERBS: Record<string, string> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };

export type RequestInfo = ResourceOrPath & { path: string };

/** `rawPath` is the path without the query string, still percent-encoded. */
export function requestInfo(method: string, rawPath: string): RequestInfo {
  const segments = rawPath.split('/').filter((s) => s !== '');
  const verb = VERBS[method] ?? method.toLowerCase();
  const path = rawPath;
  const nonResource = (): RequestInfo => ({ kind: 'nonResource', verb, path });
  if (segments[0] !== 'apis' || segments.length < 4) return nonResource();
  let parts: string[];
  try {
    // Decoding per segment keeps an encoded slash inside its segment, where validation rejects it.
    parts = segments.map((s) => decodeURIComponent(s));
  } catch {
    return nonResource();
  }
  const [, group, version, ...rest] = parts as [string, string, string, ...string[]];
  let namespace = '';
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1] as string;
    rest.splice(0, 2);
  }
  const resource = rest[0] as string;
  const name = rest[1] ?? '';
  const resourceVerb = verb === 'get' && name === '' ? 'list' : verb;
  return { kind: 'resource', verb: resourceVerb, group, version, resource, namespace, name, path };
}
