// Real external clients: openssl s_client and kubectl, run as child processes.
import { spawn } from 'node:child_process';

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], input = '', env: NodeJS.ProcessEnv = process.env, timeoutMs = 20_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // A child that exits without reading its input is not an error here.
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** An HTTP request through `openssl s_client`, TLS options as given; the output shows alerts and any response. */
export function sClient(port: number, tlsArgs: string[], path = '/apis'): Promise<RunResult> {
  const request = `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`;
  return run('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-ign_eof', ...tlsArgs], request);
}

export function kubectl(args: string[]): Promise<RunResult> {
  return run('kubectl', args, '', { ...process.env, KUBECONFIG: '/dev/null', HOME: process.env.HOME ?? '/tmp' });
}
