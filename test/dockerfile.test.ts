// No Docker engine runs here, so the image's facts that can be checked without building are
// checked from the Dockerfile itself.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const ROOT = join(import.meta.dirname, '..');
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> };
const lines = dockerfile.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
const stages = lines.filter((l) => /^FROM\s/i.test(l));
const testedMajor = pkg.devDependencies.node!.split('.')[0];

t.test('every stage runs the Node major the tests run on', async (t) => {
  t.equal(testedMajor, process.versions.node.split('.')[0], 'the suite itself runs on the pinned major');
  t.ok(stages.length >= 2, 'multi-stage');
  for (const from of stages) t.match(from, new RegExp(`(node:${testedMajor}\\b|nodejs${testedMajor}\\b)`), from);
});

t.test('the runtime stage is distroless, non-root, and gets production dependencies only', async (t) => {
  const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
  t.match(runtime, /FROM gcr\.io\/distroless\/nodejs\d+-debian\d+:nonroot/);
  t.match(runtime, /^USER 65532:65532$/m);
  t.notMatch(runtime, /COPY --from=build \/src\/node_modules/, 'no node_modules from the build stage (it has dev dependencies)');
  t.match(runtime, /COPY --from=prod-deps \/src\/node_modules/);
  t.match(dockerfile, /npm ci --omit=dev/, 'the prod-deps stage omits dev dependencies');
  t.notMatch(runtime, /COPY (src|test|bench)\b/, 'no sources or tests in the runtime image');
});

t.test('the entrypoint exists in the build output', async (t) => {
  const entry = /ENTRYPOINT \["\/nodejs\/bin\/node", "([^"]+)"\]/.exec(dockerfile);
  t.ok(entry, 'exec-form entrypoint on the image\'s node');
  t.ok(existsSync(join(ROOT, entry![1]!)), `${entry![1]} is built by npm run build`);
});

t.test('the build stage has what npm run build runs', async (t) => {
  const build = dockerfile.split(/^FROM /m).find((stage) => / AS build$/m.test(stage.split('\n')[0] ?? '')) ?? '';
  const script = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.build!;
  for (const file of script.match(/scripts\/[\w.-]+/g) ?? []) t.ok(existsSync(join(ROOT, file)), file);
  t.match(build, /^COPY scripts \.\/scripts$/m);
  t.match(build, /^COPY src \.\/src$/m);
  t.match(build, /^COPY tsconfig\.json tsconfig\.build\.json \.\/$/m);
});

t.test('the build output needs nothing from src/ at run time: the channel\'s codecs are code, not .proto files', async (t) => {
  t.same(readdirSync(join(ROOT, 'dist', 'channel')).filter((f) => !/\.js(\.map)?$/.test(f)), [], 'only compiled code in dist/channel');
  // From outside the repository, so that nothing could be found through src/.
  const script = `const s = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'channel', 'service.js')).href)}); const m = s.metricsServiceDefinition.GetMetrics; console.log(JSON.stringify(m.requestDeserialize(m.requestSerialize({ name: 'web', namespace: 'shop', metricName: 's0-x' }))))`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: tmpdir(), encoding: 'utf8' });
  t.equal(run.status, 0, run.stderr);
  t.same(JSON.parse(run.stdout), { name: 'web', namespace: 'shop', metricName: 's0-x' });
});

t.test('the image\'s NODE_OPTIONS is accepted by node and caps the young generation', async (t) => {
  const options = /^ENV NODE_OPTIONS="([^"]*)"$/m.exec(dockerfile)?.[1];
  t.match(options, /--max-semi-space-size=\d+/);
  const capMb = Number(/--max-semi-space-size=(\d+)/.exec(options ?? '')?.[1]);
  // Enough short-lived garbage to grow an uncapped young generation to its largest.
  const script = "let k=[];for(let i=0;i<3e6;i++){k.push({i,s:'x'+i});if(k.length>5e4)k=[]}console.log(require('v8').getHeapSpaceStatistics().find((s)=>s.space_name==='new_space').space_size)";
  const run = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, NODE_OPTIONS: options }, encoding: 'utf8' });
  t.equal(run.status, 0, run.stderr);
  t.ok(Number(run.stdout) <= 2 * capMb * 2 ** 20, `new space ${Number(run.stdout) >> 20} MB, at most two ${capMb} MB semi-spaces`);
});
