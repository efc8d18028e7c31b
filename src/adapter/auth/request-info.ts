// What a request asks for, in the terms authorization uses: Kubernetes' RequestInfoFactory
// (k8s.io/apiserver/pkg/endpoints/request) applied to our paths, so that the SubjectAccessReview
// we send is the one kube-apiserver's own aggregated servers would send. The route handlers read
// the same object, so what was authorized is what gets served.
//
// One deliberate difference: Go splits the decoded path, so an encoded slash (%2F) splits a
// segment; here each segment is decoded on its own and keeps it, where name validation rejects it.
import type { ResourceOrPath } from '../../k8s/status.js';

const VERBS: Record<string, string> = { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' };
/** Path prefixes that name a verb instead of a resource (/apis/g/v/watch/...). */
const SPECIAL_VERBS = new Set(['proxy', 'watch']);
/** Subresources of a namespace itself: /namespaces/x/status is the namespace x, not a resource "status". */
const NAMESPACE_SUBRESOURCES = new Set(['status', 'finalize']);
/** strconv.ParseBool's true. */
const TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);

export type RequestInfo = ResourceOrPath & { path: string };

/** `url` is the request target as received: the path still percent-encoded, the query after `?`. */
export function requestInfo(method: string, url: string): RequestInfo {
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const nonResource = (): RequestInfo => ({ kind: 'nonResource', verb: method.toLowerCase(), path });
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  let parts = trimmed === '' ? [] : trimmed.split('/');
  if (parts.length < 3) return nonResource();
  try {
    parts = parts.map((s) => (s.includes('%') ? decodeURIComponent(s) : s));
  } catch {
    return nonResource();
  }
  let group = '';
  if (parts[0] === 'apis') {
    if (parts.length < 4) return nonResource();
    group = parts[1]!;
    parts = parts.slice(2);
  } else if (parts[0] === 'api') {
    parts = parts.slice(1);
  } else {
    return nonResource();
  }
  const version = parts[0]!;
  parts = parts.slice(1);
  let verb: string;
  if (SPECIAL_VERBS.has(parts[0]!)) {
    // A special verb with nothing after it names nothing: kube-apiserver refuses it too.
    if (parts.length < 2) return nonResource();
    verb = parts[0]!;
    parts = parts.slice(1);
  } else {
    verb = VERBS[method] ?? '';
  }
  let namespace = '';
  if (parts[0] === 'namespaces' && parts.length > 1) {
    namespace = parts[1]!;
    if (parts.length > 2 && !NAMESPACE_SUBRESOURCES.has(parts[2]!)) parts = parts.slice(2);
  }
  const resource = parts[0] ?? '';
  let name = parts[1] ?? '';
  const subresource = parts.length >= 3 && verb !== 'proxy' ? parts[2]! : '';
  if (name === '' && verb === 'get') {
    verb = 'list';
    if (q !== -1) {
      const query = new URLSearchParams(url.slice(q + 1));
      if (TRUE.has(query.get('watch') ?? '')) verb = 'watch';
      name = exactName(query.get('fieldSelector')) ?? '';
    }
  }
  if (name === '' && verb === 'delete') verb = 'deletecollection';
  return { kind: 'resource', verb, group, version, resource, subresource, namespace, name, path };
}

/** The X of a `metadata.name=X` (or `==`) term of a field selector, when it can name an object. */
function exactName(selector: string | null): string | undefined {
  for (const term of selector?.split(',') ?? []) {
    const m = /^metadata\.name==?(.*)$/.exec(term);
    if (!m) continue;
    const name = m[1]!;
    return name === '.' || name === '..' || /[/%]/.test(name) ? undefined : name;
  }
  return undefined;
}
