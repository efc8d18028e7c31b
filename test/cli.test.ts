// The executable as users run it: flags, exit codes, start-up failures, SIGTERM.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createTestPki } from './helpers/pki.js';
import { freePort } from './helpers/adapter.js';
import { get } from './helpers/https.js';
import { run } from './helpers/tools.js';
import { eventually } from './helpers/loop.js';
import { reap } from './helpers/reaper.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js');
const node = process.execPath;
const cli = (args: string[], env: NodeJS.ProcessEnv = {}) => run(node, [CLI, ...args], '', { ...process.env, ...env });

const dir = t.testdir();
const pki = await createTestPki(join(dir, 'pki'));
const base = [`--cert-dir=${pki.dir}`, `--client-ca-file=${pki.ca.certFile}`, '--bind-address=127.0.0.1'];

t.test('adapter --help lists every flag with its default, once, and none where there is none', async (t) => {
  const r = await cli(['adapter', '--help']);
  t.equal(r.code, 0);
  for (const flag of ['--secure-port', '--cert-dir', '--authorization-always-allow-paths', '--metrics-port', '--tls-min-version', '--tls-cert-file']) {
    t.match(r.stdout, new RegExp(`${flag}\\n.*\\(default `), flag);
  }
  t.match(r.stdout, /--secure-port\n.*\(default 6443\)/);
  t.match(r.stdout, /--cert-dir\n.*\(default "\/certs"\)/);
  t.match(r.stdout, /--tls-cert-file\n.*\(default <cert-dir>\/tls\.crt\) \[env/, 'a default described in words, said once');
  t.notMatch(r.stdout, /--client-ca-file\n[^\n]*\(default /, 'no default for a flag without one');
  t.notMatch(r.stdout, /\(default ""\)|\(default \[\]\)|\(default false\)|\(default .*\(default /, 'never an empty or doubled default');
});

t.test('certs --help describes the command and every flag', async (t) => {
  const r = await cli(['certs', '--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /dev {4}Write a development PKI into DIR/);
  t.match(r.stdout, /--force\n\s+Overwrite an existing PKI in that folder/);
  t.match(r.stdout, /--services\n.*\(default \[keda-operator,keda-metrics-apiserver,keda-admission-webhooks\]\)/);
});

t.test('an older Node is told, in one line, which Node is needed and how to run it, before anything is loaded', async (t) => {
  // This Node pretending to be Node 20 from the very start (--import runs before the entry).
  const pretend = `data:text/javascript,Object.defineProperty(process.versions,'node',{value:'20.20.2'})`;
  const r = await run(node, [`--import=${pretend}`, CLI, 'adapter', '--help'], '', process.env);
  t.equal(r.code, 1);
  t.equal(r.stdout, '', 'no usage printed');
  t.match(r.stderr, /^error: keda-ts needs Node 24 or later, and this is Node v20\.20\.2 \(.*\)\. In a checkout, `npm ci` installs the pinned Node: run node_modules\/\.bin\/node dist\/cli\.js adapter --help \(npm scripts use it already\); the container image has it\.\n$/);
  // A real older Node, where the machine has one (these machines carry Node 20).
  const system = await run('sh', ['-c', 'command -v node'], '', { PATH: '/usr/local/bin:/usr/bin:/bin' });
  const older = system.stdout.trim();
  if (older && older !== node) {
    const version = await run(older, ['--version']);
    if (Number(version.stdout.slice(1).split('.')[0]) < 24) {
      const real = await run(older, [CLI, 'operator', '--help']);
      t.equal(real.code, 1, `${older} (${version.stdout.trim()})`);
      t.match(real.stderr, /^error: keda-ts needs Node 24 or later/);
      t.notMatch(real.stderr, /TypeError|at .*\(/, 'no stack trace');
    }
  }
});

t.test('usage errors exit 2 with one line', async (t) => {
  const cases: [string[], RegExp][] = [
    [['adapter', '--no-such-flag'], /^error: unknown flag: --no-such-flag\n$/],
    [['adapter', '--secure-port=http'], /^error: invalid argument "http" for "--secure-port": not an integer\n$/],
    [['adapter', '--secure-port=70000'], /must be <= 65535/],
    [['adapter', '--tls-min-version=VersionTLS12'], /TLS 1\.3 only/],
    [['adapter', '--tls-cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'], /not TLS 1\.3 suites/],
    [['adapter', '--client-cert-mode=sometimes'], /must be one of require, request/],
    [['adapter', `--cert-dir=${pki.dir}`], /needs --client-ca-file or --requestheader-client-ca-file/],
    [['adapter', 'positional'], /unexpected argument "positional"/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['certs', 'dev'], /certs dev needs --out DIR/],
  ];
  for (const [args, message] of cases) {
    const r = await cli(args);
    t.equal(r.code, 2, args.join(' '));
    t.match(r.stderr, message);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
  }
});

t.test('a flag can come from the environment; the command line wins', async (t) => {
  const r = await cli(['adapter', ...base], { ADAPTER_SECURE_PORT: 'nope' });
  t.equal(r.code, 2);
  t.match(r.stderr, /from environment variable ADAPTER_SECURE_PORT/);
  const r2 = await cli(['adapter', ...base, '--tls-min-version=VersionTLS12'], { ADAPTER_TLS_MIN_VERSION: 'VersionTLS13' });
  t.equal(r2.code, 2, 'the flag overrides the environment');
});

t.test('no valid TLS material at start-up: exit 1, one line naming the file and the problem', async (t) => {
  const bad = join(dir, 'bad');
  await mkdir(bad, { recursive: true });
  await writeFile(join(bad, 'tls.crt'), 'garbage');
  await writeFile(join(bad, 'tls.key'), pki.tls.key);
  const r = await cli(['adapter', `--cert-dir=${bad}`, `--client-ca-file=${pki.ca.certFile}`]);
  t.equal(r.code, 1);
  t.match(r.stderr, new RegExp(`^error: cannot start without valid TLS material: ${join(bad, 'tls.crt')}: no PEM CERTIFICATE block found\\n$`));
  const missing = await cli(['adapter', `--cert-dir=${join(dir, 'nowhere')}`, `--client-ca-file=${pki.ca.certFile}`]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /nowhere\/tls\.crt: file does not exist/);
  await writeFile(join(bad, 'tls.crt'), pki.tls.cert);
  await writeFile(join(bad, 'tls.key'), pki.admin.key);
  const mismatch = await cli(['adapter', `--cert-dir=${bad}`, `--client-ca-file=${pki.ca.certFile}`]);
  t.match(mismatch.stderr, /tls\.key: private key does not match the certificate/);
});

t.test('operator: --help, and a clear line when there is nothing to serve', async (t) => {
  const help = await cli(['operator', '--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /--metrics-service-bind-address\n.*\(default ":9666"\)/);
  t.match(help.stdout, /--ca-dir\n.*\(default \[\/custom\/ca\]\)/);
  t.match(help.stdout, /--enable-cert-rotation\n.*\(default true\)/);
  const nothing = await cli(['operator', `--cert-dir=${pki.dir}`], { KUBECONFIG: '', KUBERNETES_SERVICE_HOST: '' });
  t.equal(nothing.code, 1);
  t.match(nothing.stderr, /^error: no cluster \(no kubeconfig, not in a pod\) and no --scaled-objects-file: nothing to serve\n$/);
  const bad = await cli(['operator', '--metrics-service-bind-address=9666']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /expected host:port or :port/);
  const certs = await cli(['operator', '--cert-validity=1h', '--cert-renew-before=2h']);
  t.equal(certs.code, 2);
  t.match(certs.stderr, /^error: certificate flags: /);
  const lease = await cli(['operator', '--leader-election-lease-duration=5s', '--leader-election-renew-deadline=10s']);
  t.equal(lease.code, 2);
  t.match(lease.stderr, /renew-deadline must be shorter/);
});

t.test('certs dev refuses to overwrite without --force', async (t) => {
  const out = join(dir, 'dev');
  t.equal((await cli(['certs', 'dev', `--out=${out}`])).code, 0);
  const again = await cli(['certs', 'dev', `--out=${out}`]);
  t.equal(again.code, 1);
  t.match(again.stderr, /refusing to overwrite .*; run again with --force to regenerate the development PKI/);
  t.equal((await cli(['certs', 'dev', `--out=${out}`, '--force'])).code, 0);
});

t.test('SIGTERM: readiness drops, the process exits 0; SAN mismatch is warned about at start-up', async (t) => {
  const port = await freePort();
  const metricsPort = await freePort();
  const child = spawn(node, [CLI, 'adapter', ...base, `--secure-port=${port}`, `--metrics-port=${metricsPort}`, '--service-name=elsewhere'], { stdio: ['ignore', 'pipe', 'pipe'] });
  reap(child);
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await eventually('the adapter to serve', async () => (out.includes('adapter serving') ? true : undefined));
  const warn = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.level === 40);
  t.match(warn, { msg: /does not cover elsewhere\.keda\.svc/, missing: ['elsewhere.keda.svc', 'elsewhere.keda.svc.cluster.local'] });
  t.equal((await get({ port, path: '/readyz', ca: pki.ca.cert, client: pki.admin })).status, 200);
  child.kill('SIGTERM');
  t.equal(await exited, 0);
  t.match(out, /"signal":"SIGTERM"/);
});
