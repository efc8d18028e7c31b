// The declarative parameter model: sources in order, types read as KEDA (Go) reads them, required
// and required-with checks (not in validate-only builds), secrets never quoted, and the README's
// tables generated from the scalers' own declarations.
import t from 'tap';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { CustomCaTrust } from '../../../src/tls/custom-ca.js';
import { scalerParameters } from '../../../src/operator/scalers/index.js';
import { readParameters, withParameterTables, type ParamSpec } from '../../../src/operator/scalers/parameters.js';
import { ScalerConfigError, type ScalerContext } from '../../../src/operator/scalers/scaler.js';
import { ContainerEnvironment } from '../../../src/operator/scaledobjects/resolve-env.js';
import { repoRoot } from '../../helpers/repo.js';
import { thrownMessage } from '../../helpers/errors.js';

const trust = new CustomCaTrust([], pino({ level: 'silent' }));
const ctx = (metadata: Record<string, string>, auth: Record<string, string> = {}, extra: Partial<ScalerContext> = {}): ScalerContext => ({ triggerIndex: 0, trigger: { type: 'x', metadata }, auth, trust, timeoutMs: 1000, ...extra });
const SPECS: ParamSpec[] = [
  { name: 'address', type: 'url', from: 'metadata', required: true, doc: '' },
  { name: 'target', type: 'number', from: 'metadata', default: 5, doc: '' },
  { name: 'flag', type: 'bool', from: 'metadata', default: true, doc: '' },
  { name: 'wait', type: 'milliseconds', from: 'metadata', doc: '' },
  { name: 'period', type: 'duration', from: 'metadata', doc: '' },
  { name: 'mode', type: 'enum', values: ['a', 'b'], from: 'metadata, then auth', doc: '' },
  { name: 'modes', type: 'list', values: ['x', 'y'], from: 'metadata', doc: '' },
  { name: 'pairs', type: 'map', from: 'metadata', doc: '' },
  { name: 'token', type: 'string', from: 'auth, then metadata', requiredWith: { param: 'mode', value: 'a' }, secret: true, doc: '' },
  { name: 'pin', type: 'enum', values: ['1'], from: 'auth', secret: true, doc: '' },
];
const read = (metadata: Record<string, string>, auth: Record<string, string> = {}, extra: Partial<ScalerContext> = {}) => readParameters('x', SPECS, ctx(metadata, auth, extra));
const refusal = (f: () => unknown): string => thrownMessage(f, ScalerConfigError, 'not refused');
const address = 'https://u:p@example.test/x';

t.test('types, defaults and sources', async (t) => {
  const p = read({ address, flag: 'F', wait: '250', mode: 'b', modes: 'y, x,y,,', pairs: 'k=v, a = b ,', target: ' 1.5e1 ' }, { mode: 'a', token: 's' });
  t.equal(p.url('address')?.hostname, 'example.test');
  t.equal(p.number('target'), 15);
  t.equal(p.bool('flag'), false, "Go's ParseBool");
  t.equal(p.number('wait'), 250);
  t.equal(read({ address, period: '1m30.5s' }).number('period'), 90_500, "Go's duration, in milliseconds");
  t.equal(read({ address, period: '1h' }).number('period'), 3_600_000);
  t.equal(read({ address, period: '250ms' }).number('period'), 250);
  t.equal(read({ address, period: '2500' }).number('period'), 2500, 'whole milliseconds');
  t.equal(p.string('mode'), 'b', 'metadata first');
  t.strictSame(p.list('modes'), ['y', 'x'], 'trimmed, blanks and repeats dropped');
  t.strictSame(p.pairs('pairs'), [['k', 'v'], ['a', 'b']]);
  const d = read({ address, target: '  ' }, { mode: 'a', token: 's' });
  t.equal(d.number('target'), 5, 'a blank value is not given: the default');
  t.equal(d.bool('flag'), true);
  t.equal(d.string('mode'), 'a', 'then the trigger authentication');
  t.equal(read({ address, mode: 'a', token: 'from-metadata' }).string('token'), 'from-metadata', 'auth, then metadata');
  t.equal(read({ address, mode: 'a', token: 'm' }, { token: 'a' }).string('token'), 'a');
});

t.test('every problem named, secrets never quoted', async (t) => {
  const cases: [Record<string, string>, Record<string, string>, string][] = [
    [{}, {}, 'x: no address given in metadata'],
    [{ address: 'nope' }, {}, 'x: address is not a valid URL'],
    [{ address: 'ftp://h/x' }, {}, 'x: address must be http or https, not ftp'],
    [{ address, target: 'NaN' }, {}, 'x: target "NaN" is not a number'],
    [{ address, flag: 'yes' }, {}, 'x: flag "yes" is not a boolean (true or false)'],
    [{ address, wait: '1.5' }, {}, 'x: wait "1.5" is not a positive whole number of milliseconds'],
    [{ address, wait: '0' }, {}, 'x: wait "0" is not a positive whole number of milliseconds'],
    [{ address, period: '1.5' }, {}, 'x: period "1.5" is not a positive duration (milliseconds, or Go\'s form: 30s, 1m30s, 500ms)'],
    [{ address, period: '0s' }, {}, 'x: period "0s" is not a positive duration (milliseconds, or Go\'s form: 30s, 1m30s, 500ms)'],
    [{ address, period: '5 min' }, {}, 'x: period "5 min" is not a positive duration (milliseconds, or Go\'s form: 30s, 1m30s, 500ms)'],
    [{ address, mode: 'c' }, {}, 'x: mode "c" is not supported (one of: a, b)'],
    [{ address, modes: 'x,z' }, {}, 'x: modes: "z" is not supported (one of: x, y)'],
    [{ address, pairs: 'k' }, {}, 'x: pairs: "k" is not key=value (the format is k1=v1,k2=v2)'],
    [{ address, pairs: '=v' }, {}, 'x: pairs: "=v" has an empty key'],
    [{ address, mode: 'a' }, {}, 'x: mode a: no token given in the trigger authentication or metadata'],
    [{ address }, { pin: 'hunter2' }, "x: pin's value is not supported (one of: 1)"],
  ];
  for (const [md, auth, message] of cases) t.equal(refusal(() => read(md, auth)), message, JSON.stringify(md));
});

t.test('validate-only builds (the webhook cannot read Secrets): credentials may be absent, the rest is checked', async (t) => {
  t.equal(refusal(() => read({ address, mode: 'a' }, {}, { validateOnly: true })), 'not refused');
  t.equal(refusal(() => read({ address: 'nope', mode: 'a' }, {}, { validateOnly: true })), 'x: address is not a valid URL');
});

t.test('required as a function of the trigger', async (t) => {
  const specs: ParamSpec[] = [{ name: 'targetValue', type: 'number', from: 'metadata', required: (c) => c.trigger.metricType !== 'Utilization', doc: '' }];
  t.equal(refusal(() => readParameters('x', specs, ctx({}))), 'x: no targetValue given in metadata');
  t.equal(refusal(() => readParameters('x', specs, { ...ctx({}), trigger: { type: 'x', metadata: {}, metricType: 'Utilization' } })), 'not refused');
});

t.test('the README\'s parameter tables are the declarations\' (npm run docs rewrites them)', async (t) => {
  const readme = await readFile(join(repoRoot(), 'README.md'), 'utf8');
  for (const type of Object.keys(scalerParameters)) t.match(readme, `<!-- parameters: ${type} -->`, `a table for ${type}`);
  t.equal(withParameterTables(readme, scalerParameters), readme, 'in sync');
  t.throws(() => withParameterTables('<!-- parameters: kafka -->\n<!-- /parameters -->', scalerParameters), /no scaler "kafka" declares parameters/);
  const stale = readme.replace('| `threshold` | metadata | number |  | yes |', '| `threshold` | metadata | number |  | no |');
  t.not(withParameterTables(stale, scalerParameters), stale, 'an edited table is rewritten');
});

t.test('*FromEnv: the workload container\'s variable, at its place in the parameter\'s order', async (t) => {
  const specs: ParamSpec[] = [
    { name: 'host', type: 'string', from: 'metadata, then env, then auth', doc: '' },
    { name: 'port', type: 'number', from: 'metadata, then auth, then env', required: true, doc: '' },
  ];
  const vars = new Map<string, string | { problem: string }>([['HOST', 'from-env'], ['PORT', '6380'], ['BLANK', ' '], ['BROKEN', { problem: 'variable BROKEN: secret shop/gone not found' }]]);
  const env = new ContainerEnvironment('Deployment shop/web container "app"', vars);
  const readEnv = (metadata: Record<string, string>, auth: Record<string, string> = {}, extra: Partial<ScalerContext> = {}) => readParameters('x', specs, ctx(metadata, auth, { env, ...extra }));
  t.equal(readEnv({ host: 'md', hostFromEnv: 'HOST', port: '1' }, { host: 'auth' }).string('host'), 'md', 'metadata first');
  t.equal(readEnv({ hostFromEnv: 'HOST', port: '1' }, { host: 'auth' }).string('host'), 'from-env', 'then the environment');
  t.equal(readEnv({ hostFromEnv: ' HOST ', port: '1' }, { host: 'auth' }).string('host'), 'from-env', 'the variable\'s name trimmed');
  t.equal(readEnv({ hostFromEnv: 'BLANK', port: '1' }, { host: 'auth' }).string('host'), 'auth', 'a blank variable is not given (KEDA)');
  t.equal(readEnv({ portFromEnv: 'PORT' }, { port: '2' }).number('port'), 2, 'port: the authentication before the environment');
  t.equal(readEnv({ portFromEnv: 'PORT' }).number('port'), 6380, 'typed as the parameter is');
  t.equal(refusal(() => readEnv({ portFromEnv: 'NOPE' })), 'x: portFromEnv: Deployment shop/web container "app" has no variable NOPE');
  t.equal(refusal(() => readEnv({ portFromEnv: 'BROKEN' })), 'x: portFromEnv: Deployment shop/web container "app": variable BROKEN: secret shop/gone not found');
  t.equal(refusal(() => readEnv({ portFromEnv: 'HOST' })), 'x: port "from-env" is not a number');
  t.equal(refusal(() => readEnv({})), 'x: no port given in metadata, the trigger authentication or portFromEnv');
  t.equal(refusal(() => readParameters('x', specs, ctx({ portFromEnv: 'PORT' }))), 'x: portFromEnv: there is no workload environment to read PORT from');

  const validateOnly = (metadata: Record<string, string>, extra: Partial<ScalerContext> = {}) => readParameters('x', specs, ctx(metadata, {}, { validateOnly: true, ...extra }));
  t.ok(validateOnly({ portFromEnv: 'PORT' }).unseen('port'), 'validate-only: a value in the environment cannot be seen, so its absence proves nothing');
  t.ok(validateOnly({}, { trigger: { type: 'x', metadata: {}, authenticationRef: { name: 'a' } } }).unseen('port'), 'nor one in a trigger authentication');
  t.equal(refusal(() => validateOnly({})), 'x: no port given in metadata, the trigger authentication or portFromEnv', 'with neither, it is missing');
  t.notOk(validateOnly({ portFromEnv: 'PORT' }).unseen('host'), 'only the parameters that may come from there');
});
