// Reading the server children's V8 CPU profiles (--cpu-prof): self time per function, and how the
// samples split between our code, each dependency, Node's own JavaScript and native/GC time.
import { readFile } from 'node:fs/promises';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface SelfTime {
  fn: string;
  /** Where, relative to the project (dist-bench/… mapped back to the .ts path), `:line` 1-based of the compiled file. */
  where: string;
  selfMs: number;
  /** Share of the profile's non-idle time. */
  share: number;
}

export interface ProfileSummary {
  file: string;
  /** Sampled time, idle excluded. */
  busyMs: number;
  byCategory: { category: string; ms: number; share: number }[];
  top: SelfTime[];
  /** The top self-time functions among our own sources (src/). */
  topOurs: SelfTime[];
}

const OURS = /\/dist-bench\/(src\/.*)\.js$/;

function category(url: string, fn: string): string {
  if (url === '') return fn === '(garbage collector)' ? 'GC' : fn === '(idle)' ? 'idle' : fn.startsWith('(') ? fn : 'native';
  if (OURS.test(url)) return 'ours (src/)';
  const dep = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (dep) return dep[1]!;
  if (url.startsWith('node:')) return 'node (JS)';
  return 'other';
}

function where(frame: CallFrame): string {
  const m = OURS.exec(frame.url);
  const file = m ? `${m[1]}.ts` : frame.url.replace(/^.*\/node_modules\//, '').replace(/^file:\/\//, '');
  return `${file}:${frame.lineNumber + 1}`;
}

export async function summarizeProfile(file: string, topN = 12): Promise<ProfileSummary> {
  const p = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  // Same function reached by different stacks: one row.
  const rows = new Map<string, { frame: CallFrame; us: number }>();
  const cats = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    const c = category(frame.url, frame.functionName);
    cats.set(c, (cats.get(c) ?? 0) + us);
    const key = `${frame.functionName}@${frame.url}:${frame.lineNumber}:${frame.columnNumber}`;
    const row = rows.get(key) ?? { frame, us: 0 };
    row.us += us;
    rows.set(key, row);
  }
  const busyUs = [...cats].filter(([c]) => c !== 'idle' && c !== '(program)').reduce((s, [, us]) => s + us, 0) || 1;
  const toSelf = (r: { frame: CallFrame; us: number }): SelfTime => ({
    fn: r.frame.functionName || '(anonymous)',
    where: where(r.frame),
    selfMs: r.us / 1e3,
    share: r.us / busyUs,
  });
  const sorted = [...rows.values()].filter((r) => !['(idle)', '(program)'].includes(r.frame.functionName)).sort((a, b) => b.us - a.us);
  return {
    file,
    busyMs: busyUs / 1e3,
    byCategory: [...cats]
      .filter(([c]) => c !== 'idle')
      .sort((a, b) => b[1] - a[1])
      .map(([c, us]) => ({ category: c, ms: us / 1e3, share: us / busyUs })),
    top: sorted.slice(0, topN).map(toSelf),
    topOurs: sorted.filter((r) => OURS.test(r.frame.url)).slice(0, topN).map(toSelf),
  };
}

export function formatProfile(s: ProfileSummary): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const lines = [`${s.file}: ${s.busyMs.toFixed(0)} ms sampled, idle and (program) excluded`];
  lines.push(`  by origin: ${s.byCategory.slice(0, 10).map((c) => `${c.category} ${pct(c.share)}`).join(', ')}`);
  lines.push('  top self time:');
  for (const t of s.top) lines.push(`    ${t.selfMs.toFixed(0).padStart(6)} ms ${pct(t.share).padStart(6)}  ${t.fn}  ${t.where}`);
  lines.push('  top self time in src/:');
  for (const t of s.topOurs) lines.push(`    ${t.selfMs.toFixed(0).padStart(6)} ms ${pct(t.share).padStart(6)}  ${t.fn}  ${t.where}`);
  return lines.join('\n');
}
