// The RBAC that delegated authentication and authorization need, rendered by kubectl kustomize as
// a user would apply it.
import t from 'tap';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { run } from '../helpers/tools.js';

type Doc = { kind: string; metadata: { name: string; namespace?: string }; roleRef?: { kind: string; name: string }; subjects?: { kind: string; name: string; namespace: string }[]; rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[] };

const rendered = await run('kubectl', ['kustomize', join(import.meta.dirname, '..', '..', 'deploy', 'base')]);
const docs = parseAllDocuments(rendered.stdout).map((d) => d.toJS() as Doc);
const adapterSa = { kind: 'ServiceAccount', name: 'keda-metrics-server', namespace: 'keda' };

t.equal(rendered.code, 0, rendered.stderr);

t.test('the adapter may create TokenReviews and SubjectAccessReviews (system:auth-delegator)', async (t) => {
  const b = docs.find((d) => d.kind === 'ClusterRoleBinding' && d.roleRef?.name === 'system:auth-delegator');
  t.match(b, { roleRef: { kind: 'ClusterRole' }, subjects: [adapterSa] });
});

t.test('the adapter may read the authentication ConfigMap (RoleBinding in kube-system)', async (t) => {
  const b = docs.find((d) => d.kind === 'RoleBinding' && d.roleRef?.name === 'extension-apiserver-authentication-reader');
  t.match(b, { metadata: { namespace: 'kube-system' }, roleRef: { kind: 'Role' }, subjects: [adapterSa] });
});

t.test('the HPA controller may read external metrics, and nothing more', async (t) => {
  const binding = docs.find((d) => d.kind === 'ClusterRoleBinding' && d.subjects?.some((s) => s.name === 'horizontal-pod-autoscaler'));
  t.match(binding?.subjects, [{ kind: 'ServiceAccount', name: 'horizontal-pod-autoscaler', namespace: 'kube-system' }]);
  const role = docs.find((d) => d.kind === 'ClusterRole' && d.metadata.name === binding?.roleRef?.name);
  t.same(role?.rules, [{ apiGroups: ['external.metrics.k8s.io'], resources: ['*'], verbs: ['get', 'list'] }]);
});

t.test('no rule grants every verb or every group', async (t) => {
  for (const d of docs) for (const r of d.rules ?? []) {
    t.notOk(r.verbs.includes('*'), `${d.metadata.name}: no wildcard verb`);
    t.notOk(r.apiGroups.includes('*'), `${d.metadata.name}: no wildcard group`);
  }
});

t.test('the operator may touch only its own certificate objects by name', async (t) => {
  const operatorSa = { kind: 'ServiceAccount', name: 'keda-operator', namespace: 'keda' };
  const cluster = docs.find((d) => d.kind === 'ClusterRole' && d.metadata.name === 'keda-ts-operator-certificates');
  const role = docs.find((d) => d.kind === 'Role' && d.metadata.name === 'keda-ts-operator-certificates');
  t.match(docs.find((d) => d.kind === 'ClusterRoleBinding' && d.roleRef?.name === 'keda-ts-operator-certificates')?.subjects, [operatorSa]);
  t.match(docs.find((d) => d.kind === 'RoleBinding' && d.roleRef?.name === 'keda-ts-operator-certificates'), { metadata: { namespace: 'keda' }, subjects: [operatorSa] });
  const rules = [...(cluster?.rules ?? []), ...(role?.rules ?? [])] as { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }[];
  for (const r of rules) {
    const writes = r.verbs.filter((v) => ['update', 'patch', 'delete', 'get', 'list', 'watch'].includes(v));
    if (writes.length > 0 && r.resources[0] !== 'events') t.ok(r.resourceNames && r.resourceNames.length === 1, `${r.resources.join(',')} ${r.verbs.join(',')} limited by name`);
    t.notOk(r.verbs.includes('delete'), 'never delete');
  }
  t.ok(rules.some((r) => r.resources.includes('apiservices') && r.resourceNames?.includes('v1beta1.external.metrics.k8s.io') && r.verbs.includes('update')));
  t.ok(rules.some((r) => r.resources.includes('secrets') && r.resourceNames?.includes('kedaorg-certs') && r.verbs.includes('update')));
  t.ok(rules.some((r) => r.resources.includes('leases') && r.verbs.includes('update')));
});

t.test('the operator scales with read access to KEDA objects, status patches, its HPAs and scale subresources', async (t) => {
  const operatorSa = { kind: 'ServiceAccount', name: 'keda-operator', namespace: 'keda' };
  t.match(docs.find((d) => d.kind === 'ClusterRoleBinding' && d.roleRef?.name === 'keda-ts-operator-scaling')?.subjects, [operatorSa]);
  const rules = docs.find((d) => d.kind === 'ClusterRole' && d.metadata.name === 'keda-ts-operator-scaling')?.rules ?? [];
  const verbsOn = (group: string, resource: string) => rules.filter((r) => r.apiGroups.includes(group) && r.resources.includes(resource)).flatMap((r) => r.verbs).sort();
  t.strictSame(verbsOn('keda.sh', 'scaledobjects'), ['get', 'list', 'patch', 'watch'], 'ScaledObjects are read, and patched only for the finalizer (metadata.finalizers)');
  t.strictSame(verbsOn('keda.sh', 'triggerauthentications'), ['get', 'list', 'watch']);
  t.strictSame(verbsOn('keda.sh', 'clustertriggerauthentications'), ['get', 'list', 'watch']);
  t.strictSame(verbsOn('keda.sh', 'scaledobjects/status'), ['patch'], 'only the status is written');
  t.strictSame(verbsOn('autoscaling', 'horizontalpodautoscalers'), ['create', 'delete', 'get', 'list', 'update', 'watch']);
  t.strictSame(verbsOn('apps', 'deployments/scale'), ['get', 'patch'], 'scaling to and from zero');
  t.strictSame(verbsOn('', 'secrets'), ['get', 'list', 'watch'], 'Secrets read one by one, listed and watched (as metadata) to notice new and rotated ones');
  t.strictSame(verbsOn('apps', 'deployments'), ['get', 'list', 'watch'], 'workloads listed and watched (to notice them appear, and their replicas), read for *FromEnv, never written');
  t.strictSame(verbsOn('', 'configmaps'), ['get', 'list', 'watch'], 'ConfigMaps read one by one for *FromEnv, listed and watched (as metadata) to notice changes');
  // The Lease the operator elects its writer with, by the flag's default name.
  const lease = docs.find((d) => d.kind === 'Role' && d.metadata.name === 'keda-ts-operator-certificates')?.rules?.find((r) => r.resources.includes('leases') && r.verbs.includes('update')) as { resourceNames?: string[] } | undefined;
  const { operatorFlags } = await import('../../src/operator/config.js');
  t.strictSame(lease?.resourceNames, [operatorFlags.leaderElectionId.default], 'the Lease named as the operator names it');
});
