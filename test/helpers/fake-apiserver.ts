// A fake kube-apiserver for the tests: real HTTPS, real JSON, real status codes and chunked watch
// streams, driven by @kubernetes/client-node through a generated kubeconfig exactly as a cluster
// would be. See fake-apiserver/server.ts for the server and fake-apiserver/store.ts for the
// registry semantics; the simplifications against Kubernetes are listed at the top of
// test/fake-apiserver/fake-apiserver.test.ts. Admission webhooks are not emulated (the real
// control plane tests them).
//
//   const api = await startFakeApiServer();              // HTTPS on 127.0.0.1, own CA
//   t.teardown(() => api.close());
//   const kubeconfig = await api.writeKubeconfig(dir);   // admin token; { token } or { user, groups } (client cert)
//   api.put({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', namespace: 'kube-system' }, data: {} });
//   api.onSubjectAccessReview((spec) => ({ allowed: spec.user === 'alice' }));
//   api.inject({ path: '/apis/authorization.k8s.io/v1/subjectaccessreviews', status: 503, times: 1 });
//   await api.waitForWatch((w) => w.resource === 'configmaps');
//   api.requests.filter((r) => r.path.endsWith('/subjectaccessreviews')).length;
//
// Things client-node does that matter here: its generated patch methods default to
// application/json-patch+json (pass setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
// for a merge patch); it cannot send apply-patch+yaml from the generated clients (use
// KubernetesObjectApi.patch with PatchStrategy.ServerSideApply); a 401 ApiException has no body;
// ListWatch relists only after a 410 (ERROR event or status), stops for good on any other error,
// and never asks for bookmarks.
export { FakeApiServer, allowAuthenticated, startFakeApiServer } from './fake-apiserver/server.js';
export type {
  FakeApiServerOptions,
  KubeconfigOptions,
  SubjectAccessReviewHandler,
  TokenRequestHandler,
  TokenReviewHandler,
} from './fake-apiserver/server.js';
export { ApiStatusError, statusFor } from './fake-apiserver/status.js';
export type { Status, StatusDetails } from './fake-apiserver/status.js';
export { BUILTIN_RESOURCES } from './fake-apiserver/resources.js';
export type { ResourceDef } from './fake-apiserver/resources.js';
export type * from './fake-apiserver/types.js';
