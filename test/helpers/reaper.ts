// Processes a test starts end with it, however the test process ends: finished, failed, or
// killed by tap's timeout (SIGKILL, which no exit hook survives). One watchdog shell per test
// process, started on first use, polls for the test process and, once it is gone, kills every
// process (or process group) it was told about and removes the paths it was given.
//
//   const child = spawn(cmd, args, { detached: true });   // detached: its own group, children included
//   reap(child, { group: true });
//   reapPath('/dev/shm/envtest-x');                          // removed after everything was killed
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let dir: string | undefined;
const tracked = new Map<number, boolean>();

const SCRIPT = `
parent=$1; dir=$2
while kill -0 "$parent" 2>/dev/null; do sleep 0.5; done
for f in "$dir"/pid-*; do [ -f "$f" ] && kill -TERM -- "$(cat "$f")" 2>/dev/null; done
sleep 2
for f in "$dir"/pid-*; do [ -f "$f" ] && kill -KILL -- "$(cat "$f")" 2>/dev/null; done
for f in "$dir"/path-*; do [ -f "$f" ] && rm -rf -- "$(cat "$f")"; done
rm -rf -- "$dir"`;

function watchdogDir(): string {
  if (dir) return dir;
  const d = mkdtempSync(join(tmpdir(), 'reaper-'));
  dir = d;
  spawn('bash', ['-c', SCRIPT, 'test-reaper', String(process.pid), d], { detached: true, stdio: 'ignore' }).unref();
  // A normal exit does not wait for the watchdog's next look.
  process.once('exit', () => {
    for (const [pid, group] of tracked) {
      try {
        process.kill(group ? -pid : pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  });
  return d;
}

/** Kills `child` (its whole group with `group`, which needs `detached: true`) if this process dies first. */
export function reap(child: ChildProcess, opts: { group?: boolean } = {}): void {
  const pid = child.pid;
  if (pid === undefined) return;
  const group = opts.group ?? false;
  const file = join(watchdogDir(), `pid-${pid}`);
  writeFileSync(file, group ? `-${pid}` : String(pid));
  tracked.set(pid, group);
  child.once('exit', () => {
    tracked.delete(pid);
    try {
      unlinkSync(file);
    } catch {
      // removed already
    }
  });
}

/** Removes `path` (recursively) once this process and what it started are gone. */
export function reapPath(path: string): () => void {
  const file = join(watchdogDir(), `path-${Buffer.from(path).toString('hex').slice(-40)}`);
  writeFileSync(file, path);
  return () => rmSync(file, { force: true });
}
