// The container environment `*FromEnv` reads, as the kubelet would give it: the container chosen,
// envFrom then env (later names winning), prefixes, `$(VAR)` expansion, optional references, and
// a reference that cannot be resolved named only when its variable is looked up. The objects come
// from a map here; the cluster's reads are shown in from-env.test.ts.
import t from 'tap';
import { EnvironmentError, expand, resolveEnvironment, type EnvironmentReader } from '../../../src/operator/scaledobjects/resolve-env.js';
import { thrownMessage } from '../../helpers/errors.js';

type Objects = Record<string, Record<string, string> | Error>;
/** Objects by `Kind/name`; each read is counted. */
function reader(objects: Objects): EnvironmentReader & { reads: string[] } {
  const reads: string[] = [];
  const get = (kind: string) => (namespace: string, name: string) => {
    reads.push(`${kind}/${namespace}/${name}`);
    const o = objects[`${kind}/${name}`];
    if (o instanceof Error) return Promise.reject(o);
    return Promise.resolve(o ? new Map(Object.entries(o)) : undefined);
  };
  return { reads, readSecret: get('Secret'), readConfigMap: get('ConfigMap') };
}
const env = (container: Record<string, unknown>, objects: Objects = {}, containerName?: string) => resolveEnvironment(reader(objects), 'shop', { containers: [{ name: 'first', env: [{ name: 'WHO', value: 'first' }] }, { name: 'app', ...container }] }, containerName ?? 'app', 'Deployment shop/web');
const problem = (f: () => unknown): string => thrownMessage(f, EnvironmentError, 'no problem');

t.test('$(VAR) is expanded as Kubernetes expands it', async (t) => {
  const vars = new Map([['A', 'x'], ['B', 'y']]);
  t.equal(expand('$(A):$(B)', vars), 'x:y');
  t.equal(expand('$(C)', vars), '$(C)', 'an unknown name stays as written');
  t.equal(expand('$$(A)', vars), '$(A)', '$$ escapes');
  t.equal(expand('a$$b', vars), 'a$b');
  t.equal(expand('$(A', vars), '$(A', 'unclosed');
  t.equal(expand('$A and $', vars), '$A and $', 'no parenthesis: not a reference');
  t.equal(expand('', vars), '');
});

t.test('envFrom then env, prefixes, later names winning, references expanded from what came before', async (t) => {
  const e = await env(
    {
      envFrom: [{ configMapRef: { name: 'cfg' }, prefix: 'CFG_' }, { secretRef: { name: 'creds' } }, { configMapRef: { name: 'late' } }],
      env: [{ name: 'URL', value: 'redis://$(CFG_HOST):$(PORT)/$(LATER)' }, { name: 'PORT', value: '6380' }, { name: 'LATER', value: 'x' }, { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'creds', key: 'pw' } } }, { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }, { name: 'EMPTY' }],
    },
    { 'ConfigMap/cfg': { HOST: 'cache', PORT: '1' }, 'Secret/creds': { PORT: '6379', pw: 's3cret' }, 'ConfigMap/late': { PORT: '2' } },
  );
  t.equal(e.get('CFG_HOST'), 'cache', 'prefixed');
  t.equal(e.get('URL'), 'redis://cache:2/$(LATER)', 'expanded from envFrom (the last source with PORT) and earlier env only');
  t.equal(e.get('PORT'), '6380', 'env wins over envFrom');
  t.equal(e.get('PASSWORD'), 's3cret');
  t.equal(e.get('POD_IP'), undefined, 'fieldRef: known only in a running Pod');
  t.equal(e.get('EMPTY'), '', 'defined, empty');
  t.equal(e.get('NOPE'), undefined);
  t.equal(e.get('WHO'), undefined, 'not the first container\'s');
  t.match(e.where, 'Deployment shop/web container "app"');
});

t.test('the container: named, else the first; none is an error', async (t) => {
  t.equal((await resolveEnvironment(reader({}), 'shop', { containers: [{ name: 'first', env: [{ name: 'WHO', value: 'first' }] }] }, undefined, 'w')).get('WHO'), 'first');
  await t.rejects(env({}, {}, 'missing'), new EnvironmentError('Deployment shop/web has no container named "missing" (envSourceContainerName)'));
  await t.rejects(resolveEnvironment(reader({}), 'shop', { containers: [] }, undefined, 'ScaledJob shop/j jobTargetRef'), /ScaledJob shop\/j jobTargetRef has no containers/);
  await t.rejects(resolveEnvironment(reader({}), 'shop', undefined, undefined, 'w'), /w has no containers/);
});

t.test('what cannot be resolved is named when its variable is looked up, and only then', async (t) => {
  const e = await env(
    {
      envFrom: [{ configMapRef: { name: 'gone' } }, { secretRef: { name: 'optional-gone', optional: true } }],
      env: [
        { name: 'OK', value: 'fine' },
        { name: 'NO_SECRET', valueFrom: { secretKeyRef: { name: 'gone', key: 'k' } } },
        { name: 'NO_KEY', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'missing' } } },
        { name: 'OPTIONAL_KEY', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'missing', optional: true } } },
        { name: 'OPTIONAL_SECRET', valueFrom: { secretKeyRef: { name: 'gone', key: 'k', optional: true } } },
        { name: 'FORBIDDEN', valueFrom: { secretKeyRef: { name: 'locked', key: 'k', optional: true } } },
      ],
    },
    { 'ConfigMap/cfg': { other: 'x' }, 'Secret/locked': new Error('the operator may not read it (RBAC: get on secrets in namespace shop)') },
  );
  t.equal(e.get('OK'), 'fine', 'a broken reference does not spoil the others');
  t.equal(problem(() => e.get('NO_SECRET')), 'Deployment shop/web container "app": variable NO_SECRET: secret shop/gone not found');
  t.equal(problem(() => e.get('NO_KEY')), 'Deployment shop/web container "app": variable NO_KEY: configmap shop/cfg has no key "missing"');
  t.equal(problem(() => e.get('FORBIDDEN')), 'Deployment shop/web container "app": variable FORBIDDEN: secret shop/locked: the operator may not read it (RBAC: get on secrets in namespace shop)', 'optional does not excuse a failed read');
  t.equal(problem(() => e.get('ANYTHING')), 'Deployment shop/web container "app" has no variable ANYTHING that could be read (envFrom[0]: configmap shop/gone not found)', 'it might have come from the missing ConfigMap');
  t.equal(problem(() => e.get('OPTIONAL_KEY')), problem(() => e.get('ANYTHING')).replace('ANYTHING', 'OPTIONAL_KEY'), 'an optional key left out');
  t.equal(problem(() => e.get('OPTIONAL_SECRET')), problem(() => e.get('ANYTHING')).replace('ANYTHING', 'OPTIONAL_SECRET'), 'an optional Secret left out');
});

t.test('each object is read once, whatever refers to it', async (t) => {
  const r = reader({ 'Secret/creds': { a: '1', b: '2' } });
  const e = await resolveEnvironment(r, 'shop', { containers: [{ envFrom: [{ secretRef: { name: 'creds' } }], env: [{ name: 'A', valueFrom: { secretKeyRef: { name: 'creds', key: 'a' } } }, { name: 'B', valueFrom: { secretKeyRef: { name: 'creds', key: 'b' } } }] }] }, undefined, 'w');
  t.strictSame(r.reads, ['Secret/shop/creds']);
  t.equal(e.get('B'), '2');
  t.equal(e.where, 'w container 0', 'a container without a name, by index');
});

t.test('values never appear in messages', async (t) => {
  const e = await env({ envFrom: [{ secretRef: { name: 'creds' } }, { configMapRef: { name: 'gone' } }], env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'creds', key: 'nope' } } }] }, { 'Secret/creds': { pw: 's3cret' } });
  for (const name of ['P', 'OTHER']) t.notMatch(problem(() => e.get(name)), /s3cret/, name);
});
