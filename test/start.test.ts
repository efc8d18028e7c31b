// `npm start` as a first-time user meets it: the stack comes up on development certificates,
// the printed kubectl command reads a metric that changes, Ctrl-C stops everything.
import t from 'tap';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from './helpers/adapter.js';
import { eventually } from './helpers/loop.js';
import { run } from './helpers/tools.js';
import { reap } from './helpers/reaper.js';

const ROOT = join(import.meta.dirname, '..');

t.test('npm start: the whole stack, a changing metric through kubectl, clean Ctrl-C', async (t) => {
  const env = {
    ...process.env,
    DEV_PKI_DIR: join(t.testdir(), 'pki'),
    ADAPTER_SECURE_PORT: String(await freePort()),
    ADAPTER_METRICS_PORT: String(await freePort()),
    OPERATOR_METRICS_PORT: String(await freePort()),
    OPERATOR_GRPC_PORT: String(await freePort()),
  };
  // Its own process group: start-local's operator and adapter go with it, however this test ends.
  const child = spawn(process.execPath, [join(ROOT, 'dist', 'start-local.js')], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  reap(child, { group: true });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the whole group is gone already
    }
  });

  await eventually('the stack to be ready', async () => (out.includes('Ctrl-C stops everything') ? true : undefined), 60_000);
  t.match(out, /\[operator\] .*operator serving/);
  t.match(out, /\[adapter\] .*adapter serving/);
  const command = out.split('\n').map((l) => l.trim()).find((l) => l.startsWith('kubectl ') && l.includes('s0-metric-api-queue-depth') && l.includes('admin.crt'));
  t.ok(command, 'a ready-to-paste kubectl command for the metric');
  const args = (command as string).replace(/"/g, '').split(/\s+/).slice(1);
  const read = async () => {
    const r = await run('kubectl', args, '', { ...process.env, KUBECONFIG: '/dev/null' });
    t.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).items[0].value as string;
  };
  const first = await read();
  t.match(first, /^\d+$/);
  const changed = await eventually('the metric to change', async () => {
    const v = await read();
    return v !== first ? v : undefined;
  }, 10_000);
  t.not(changed, first);

  child.kill('SIGINT');
  t.equal(await exited, 0, 'Ctrl-C stops everything and exits 0');
  t.match(out, /stopping\.\.\./);
  t.notMatch(out, /exited with code [1-9]/);
});
