// The attributes a request is authorized by, as Kubernetes' RequestInfoFactory derives them
// (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go and its test table), for the paths an
// aggregated server sees: the SubjectAccessReview we send must be the one kube-apiserver's own
// aggregated servers would send for the same request.
import t from 'tap';
import { requestInfo } from '../../src/adapter/auth/request-info.js';

const EM = 'external.metrics.k8s.io';
type Expected = [verb: string, group: string, version: string, namespace: string, resource: string, subresource: string, name: string];

t.test('resource requests: verb, group, version, namespace, resource, subresource and name', async (t) => {
  const cases: [string, string, Expected][] = [
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue`, ['list', EM, 'v1beta1', 'shop', 's0-queue', '', '']],
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue?labelSelector=a%3Db`, ['list', EM, 'v1beta1', 'shop', 's0-queue', '', '']],
    ['HEAD', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue`, ['list', EM, 'v1beta1', 'shop', 's0-queue', '', '']],
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue/`, ['list', EM, 'v1beta1', 'shop', 's0-queue', '', '']],
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue?watch=true`, ['watch', EM, 'v1beta1', 'shop', 's0-queue', '', '']],
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue?watch=1`, ['watch', EM, 'v1beta1', 'shop', 's0-queue', '', '']],
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue?watch=false`, ['list', EM, 'v1beta1', 'shop', 's0-queue', '', '']],
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue?fieldSelector=metadata.name%3Dx`, ['list', EM, 'v1beta1', 'shop', 's0-queue', '', 'x']],
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue?fieldSelector=a%3Db,metadata.name%3D%3Dx`, ['list', EM, 'v1beta1', 'shop', 's0-queue', '', 'x']],
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue?fieldSelector=metadata.name%3D..`, ['list', EM, 'v1beta1', 'shop', 's0-queue', '', '']],
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue/x`, ['get', EM, 'v1beta1', 'shop', 's0-queue', '', 'x']],
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue/x/status`, ['get', EM, 'v1beta1', 'shop', 's0-queue', 'status', 'x']],
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue/x/status/more/parts`, ['get', EM, 'v1beta1', 'shop', 's0-queue', 'status', 'x']],
    ['GET', `/apis/${EM}/v1beta1/watch/namespaces/shop/s0-queue`, ['watch', EM, 'v1beta1', 'shop', 's0-queue', '', '']],
    ['GET', `/apis/${EM}/v1beta1/proxy/namespaces/shop/s0-queue/x/y`, ['proxy', EM, 'v1beta1', 'shop', 's0-queue', '', 'x']],
    // The namespace itself, and its own subresources.
    ['GET', `/apis/${EM}/v1beta1/namespaces`, ['list', EM, 'v1beta1', '', 'namespaces', '', '']],
    ['GET', `/apis/${EM}/v1beta1/namespaces/shop`, ['get', EM, 'v1beta1', 'shop', 'namespaces', '', 'shop']],
    ['PUT', `/apis/${EM}/v1beta1/namespaces/shop/status`, ['update', EM, 'v1beta1', 'shop', 'namespaces', 'status', 'shop']],
    ['PUT', `/apis/${EM}/v1beta1/namespaces/shop/finalize`, ['update', EM, 'v1beta1', 'shop', 'namespaces', 'finalize', 'shop']],
    // Cluster-scoped, other methods, the legacy group.
    ['GET', `/apis/${EM}/v1beta1/s0-queue`, ['list', EM, 'v1beta1', '', 's0-queue', '', '']],
    ['POST', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue`, ['create', EM, 'v1beta1', 'shop', 's0-queue', '', '']],
    ['PATCH', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue/x`, ['patch', EM, 'v1beta1', 'shop', 's0-queue', '', 'x']],
    ['DELETE', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue/x`, ['delete', EM, 'v1beta1', 'shop', 's0-queue', '', 'x']],
    ['DELETE', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue`, ['deletecollection', EM, 'v1beta1', 'shop', 's0-queue', '', '']],
    ['OPTIONS', `/apis/${EM}/v1beta1/namespaces/shop/s0-queue`, ['', EM, 'v1beta1', 'shop', 's0-queue', '', '']],
    ['GET', '/api/v1/namespaces/shop/pods/p', ['get', '', 'v1', 'shop', 'pods', '', 'p']],
    // Percent-encoding: decoded per segment, so an encoded slash stays inside its segment.
    ['GET', `/apis/${EM}/v1beta1/namespaces/sh%6Fp/s0%2Fqueue`, ['list', EM, 'v1beta1', 'shop', 's0/queue', '', '']],
  ];
  for (const [method, url, [verb, group, version, namespace, resource, subresource, name]] of cases) {
    t.strictSame(requestInfo(method, url), { kind: 'resource', verb, group, version, resource, subresource, namespace, name, path: url.split('?')[0] }, `${method} ${url}`);
  }
});

t.test('non-resource requests: the path and the method, lower-cased', async (t) => {
  const cases: [string, string][] = [
    ['GET', '/'],
    ['GET', '/apis'],
    ['GET', `/apis/${EM}`],
    ['GET', `/apis/${EM}/v1beta1`],
    ['GET', `/apis/${EM}/v1beta1/`],
    ['GET', '/api/v1'],
    ['GET', '/openapi/v2'],
    ['GET', '/healthz/ping'],
    ['HEAD', '/version'],
    ['GET', `/apis/${EM}/v1beta1/watch`],
    ['GET', `/apis/${EM}/v1beta1/namespaces/%E0%A4%A`],
  ];
  for (const [method, path] of cases) {
    t.strictSame(requestInfo(method, path), { kind: 'nonResource', verb: method.toLowerCase(), path }, `${method} ${path}`);
  }
  t.strictSame(requestInfo('GET', '/metrics?x=1'), { kind: 'nonResource', verb: 'get', path: '/metrics' }, 'the query is not part of the path');
});

t.test('query parameters are read decoded, as Go reads them', async (t) => {
  t.match(requestInfo('GET', `/apis/${EM}/v1beta1/namespaces/shop/m?%77atch=true`), { verb: 'watch' });
  t.match(requestInfo('GET', `/apis/${EM}/v1beta1/namespaces/shop/m?fieldSelector=metadata%2Ename%3Dx`), { verb: 'list', name: 'x' });
});
