// KEDA's `rabbitmq` scaler: the length of a queue (or the rate messages are published to it),
// read over AMQP 0-9-1 (a passive queue declare) or from the management API.
// https://keda.sh/docs/latest/scalers/rabbitmq-queue/
//
// Metadata (as KEDA): host (or from the trigger authentication), protocol (auto|amqp|http),
// queueName, mode (QueueLength|MessageRate) with value and activationValue, the deprecated
// queueLength, vhostName, useRegex/operation/pageSize and excludeUnacknowledged (http only),
// timeout (http only), unsafeSsl. Authentication parameters: username/password (overriding
// the ones in host), and `tls: enable` with ca, cert, key, keyPassword.
//
// This file reads and checks the trigger; rabbitmq-http.ts and rabbitmq-amqp.ts read the queue.
import { RabbitmqAmqpReader, parseAmqpHost } from './rabbitmq-amqp.js';
import { RabbitmqHttpReader, httpTarget } from './rabbitmq-http.js';
import { moveUrlCredentialsToBasicAuth, setBasicAuth } from './http-upstream.js';
import { metricNameFor, normalizeMetricName } from './metric-name.js';
import { readParameters, type ParamSpec } from './parameters.js';
import { ScalerError, type Scaler, type ScalerConfigError, type ScalerContext, type ScalerFactory } from './scaler.js';
import { SecretScrubber, checkCa, checkClientPair, configError as upstreamConfigError, parseKedaDuration, truncate, warnUnsafeSslOnce, type TlsMaterial } from './upstream.js';

const TYPE = 'rabbitmq';
const MODES = ['QueueLength', 'MessageRate'] as const;
type Mode = (typeof MODES)[number];
const OPERATIONS = ['sum', 'avg', 'max'] as const;
export type Operation = (typeof OPERATIONS)[number];
/** KEDA's target when neither mode/value nor queueLength is given. */
const DEFAULT_QUEUE_LENGTH = 20;

/** What the rabbitmq scaler reads (the README's table is generated from this). */
export const RABBITMQ_PARAMETERS: readonly ParamSpec[] = [
  {
    name: 'host',
    type: 'string',
    from: 'metadata, then auth, then env',
    required: true,
    secret: true,
    doc: 'The broker, `amqp://` or `amqps://[user:password@]host[:port]/[vhost]`, or its management API, `http://` or `https://[user:password@]host:15672/[path/][vhost]`. Required, in metadata or the trigger authentication (where it belongs when it holds a password).',
  },
  { name: 'protocol', type: 'enum', values: ['auto', 'amqp', 'http'], from: 'metadata, then auth', default: 'auto', doc: '`auto` picks by the scheme of host; `amqp` or `http` must match it.' },
  { name: 'queueName', type: 'string', from: 'metadata', required: true, doc: 'The queue; with useRegex, a regular expression matching queue names.' },
  { name: 'mode', type: 'enum', values: MODES, from: 'metadata', doc: '`QueueLength`: messages in the queue; `MessageRate`: messages published per second (http only). Given with value.' },
  { name: 'value', type: 'number', from: 'metadata', doc: 'The HPA target for mode (not 0). Without mode, value and queueLength: QueueLength with target 20.' },
  { name: 'activationValue', type: 'number', from: 'metadata', default: 0, doc: 'Active (scaled from zero) strictly above this value; with MessageRate, also while more messages than this wait in the queue.' },
  { name: 'queueLength', type: 'number', from: 'metadata', deprecated: 'use `mode: QueueLength` and `value`', doc: 'The target queue length; not with mode or value.' },
  { name: 'vhostName', type: 'string', from: 'metadata, then auth', doc: 'The vhost, instead of the one in host\'s path.' },
  { name: 'useRegex', type: 'bool', from: 'metadata', default: false, doc: 'http only: queueName is a regular expression; the matching queues are combined by operation.' },
  { name: 'operation', type: 'enum', values: OPERATIONS, from: 'metadata', default: 'sum', doc: 'useRegex: how the matching queues\' values are combined (avg of queue lengths rounds down, as KEDA\'s).' },
  { name: 'pageSize', type: 'number', from: 'metadata', default: 100, doc: 'useRegex: how many queues are read; more matching queues is an error.' },
  { name: 'excludeUnacknowledged', type: 'bool', from: 'metadata', default: false, doc: 'http only: count ready messages only, not those delivered and not yet acknowledged. (AMQP counts ready messages only.)' },
  { name: 'timeout', type: 'string', from: 'metadata', doc: 'http only: per-request timeout, in milliseconds (`2500`) or Go\'s duration form (`2.5s`), as KEDA reads it; `0` or none: `--scaler-timeout` (which bounds AMQP checks).' },
  { name: 'unsafeSsl', type: 'bool', from: 'metadata', default: false, doc: 'Skips verifying the broker\'s certificate (warned about once). Put its CA in `--ca-dir` instead.' },
  { name: 'username', type: 'string', from: 'auth, then env', doc: 'With password: replaces the credentials in host.' },
  { name: 'password', type: 'string', from: 'auth, then env', secret: true, doc: 'With username.' },
  { name: 'tls', type: 'enum', values: ['enable', 'disable'], from: 'auth', default: 'disable', doc: '`enable`: use ca, cert, key and keyPassword (host must be amqps:// or https://).' },
  { name: 'ca', type: 'string', from: 'auth', doc: 'tls enable: a CA (PEM) trusted for this broker, besides the system roots and `--ca-dir`.' },
  { name: 'cert', type: 'string', from: 'auth', doc: 'tls enable: client certificate (PEM), with key.' },
  { name: 'key', type: 'string', from: 'auth', secret: true, doc: 'tls enable: its private key (PEM; encrypted with keyPassword, or not).' },
  { name: 'keyPassword', type: 'string', from: 'auth', secret: true, doc: 'The key\'s passphrase.' },
];

/** What one read of the queue (or the queues a regex matches) found. */
export interface QueueStatus {
  /** Messages in the queue (ready, plus unacknowledged where counted). */
  messages: number;
  /** Messages published per second (0 over AMQP, which does not say). */
  publishRate: number;
}

export interface QueueReader {
  read(signal: AbortSignal): Promise<QueueStatus>;
  close(): void;
}

export const createRabbitmqScaler: ScalerFactory = (ctx) => new RabbitmqScaler(ctx);

class RabbitmqScaler implements Scaler {
  readonly metricName: string;
  readonly targetValue: number;
  private readonly mode: Mode;
  private readonly activationValue: number;
  /** Absent in validate-only builds: they never read. */
  private readonly reader: QueueReader | undefined;
  /** The queue length that came with the last value (MessageRate's activation looks at it too). */
  private lastMessages = 0;

  constructor(ctx: ScalerContext) {
    const validateOnly = ctx.validateOnly === true;
    const p = readParameters(TYPE, RABBITMQ_PARAMETERS, ctx);
    const queueName = p.string('queueName')!;

    // --- the target: KEDA's rules for mode, value and the deprecated queueLength --------------
    const mode = p.string('mode') as Mode | undefined;
    const value = p.number('value') ?? 0;
    const queueLength = p.number('queueLength') ?? 0;
    if (queueLength === 0 && mode === undefined && value === 0) {
      this.mode = 'QueueLength';
      this.targetValue = DEFAULT_QUEUE_LENGTH;
    } else if (queueLength !== 0) {
      if (mode !== undefined || value !== 0) throw configError('queueLength is deprecated and cannot be combined with mode or value: give mode and value only');
      this.mode = 'QueueLength';
      this.targetValue = queueLength;
    } else if (mode === undefined) {
      throw configError('value needs a mode (QueueLength or MessageRate)');
    } else if (value === 0) {
      throw configError(`mode ${mode} needs a value (the target, not 0)`);
    } else {
      this.mode = mode;
      this.targetValue = value;
    }
    this.activationValue = p.number('activationValue')!;
    // KEDA: the queue name as a query parameter (Go's url.QueryEscape), then normalized.
    this.metricName = metricNameFor(ctx.triggerIndex, normalizeMetricName(`rabbitmq-${goQueryEscape(queueName)}`));

    const useRegex = p.bool('useRegex');
    const operation = p.string('operation') as Operation;
    const excludeUnacknowledged = p.bool('excludeUnacknowledged');
    const pageSize = p.number('pageSize')!;
    if (!Number.isInteger(pageSize) || pageSize < 1) throw configError(`pageSize ${pageSize} must be a whole number, 1 or greater`);
    const timeout = readTimeout(p.string('timeout'));
    const unsafeSsl = p.bool('unsafeSsl');

    // --- the protocol: given, or from host's scheme ------------------------------------------
    let protocol = p.string('protocol') as 'auto' | 'amqp' | 'http';
    const hostText = p.string('host')?.trim();
    let host: URL | undefined;
    if (hostText !== undefined) {
      try {
        host = new URL(hostText);
      } catch {
        // host is never quoted: it may hold a password.
        throw configError('host is not a valid URL (amqp://, amqps://, http:// or https://)');
      }
      const scheme = host.protocol.replace(/:$/, '');
      const kind = scheme === 'amqp' || scheme === 'amqps' ? 'amqp' : scheme === 'http' || scheme === 'https' ? 'http' : undefined;
      if (kind === undefined) throw configError(`host: the scheme "${truncate(scheme, 16)}" is not amqp, amqps, http or https`);
      if (protocol === 'auto') protocol = kind;
      else if (protocol !== kind) throw configError(`protocol ${protocol} needs an ${protocol === 'amqp' ? 'amqp:// or amqps://' : 'http:// or https://'} host, not ${scheme}://`);
    }
    // Without host (validate-only, host in the authentication) and protocol auto: unknown yet.
    if (protocol === 'amqp') {
      const httpOnly = (what: string) => configError(`${what} needs protocol http (the management API); host is amqp`);
      if (useRegex) throw httpOnly('useRegex');
      if (excludeUnacknowledged) throw httpOnly('excludeUnacknowledged');
      if (this.mode === 'MessageRate') throw httpOnly('mode MessageRate');
      if (timeout !== undefined) throw configError('timeout applies to protocol http only (as in KEDA); AMQP checks are bounded by --scaler-timeout');
    }

    // --- credentials and TLS material ----------------------------------------------------------
    const username = p.string('username');
    const password = p.string('password');
    if ((username === undefined) !== (password === undefined)) throw configError('username and password must be given together');
    const cert = p.string('cert');
    const key = p.string('key');
    if ((cert === undefined) !== (key === undefined)) throw configError('cert and key must be given together');
    const tlsEnabled = p.string('tls') === 'enable';
    const keyPassword = p.string('keyPassword');
    const secrets = [password, keyPassword].filter((s): s is string => s !== undefined);
    // As KEDA: the CA and client certificate are used with tls enable only.
    const tls: TlsMaterial = {};
    if (tlsEnabled) {
      if (cert !== undefined && key !== undefined) Object.assign(tls, checkClientPair(TYPE, 'tls enable', cert, key, { value: keyPassword }));
      const ca = p.string('ca');
      if (ca !== undefined) tls.ca = checkCa(TYPE, 'tls enable', ca);
    }
    const secure = host?.protocol === 'amqps:' || host?.protocol === 'https:';
    if (host && tlsEnabled && !secure) throw configError(`tls enable needs an amqps:// or https:// host; with ${host.protocol}// nothing would be encrypted`);

    if (!host) {
      // Validate-only, host in the trigger authentication: nothing more to check.
      this.reader = undefined;
      return;
    }

    // Everything host says is checked in validate-only builds too; only the reader is not made.
    const fail = (shown: string, scrubber: SecretScrubber) => (problem: string) => new ScalerError(scrubber.scrub(`${TYPE} ${shown}: ${problem}`));
    const vhostName = p.string('vhostName');
    let make: () => QueueReader;
    let shown: string;
    if (protocol === 'http') {
      if (host.search !== '' || host.hash !== '') throw configError('host: the management API address has no query or fragment');
      const headers: Record<string, string> = { accept: 'application/json' };
      if (username !== undefined && password !== undefined) setBasicAuth(headers, secrets, username, password);
      // Credentials in host: sent as basic auth unless username/password replace them; never shown.
      moveUrlCredentialsToBasicAuth(TYPE, 'host', host, headers, secrets);
      const target = httpTarget(host, vhostName, queueName, useRegex, pageSize);
      shown = target.shown;
      const timeoutMs = timeout ?? ctx.timeoutMs;
      make = () => new RabbitmqHttpReader({ target, headers, useRegex, operation, excludeUnacknowledged, trust: ctx.trust, timeoutMs, unsafeSsl, tls, fail: fail(shown, new SecretScrubber(secrets)) });
    } else {
      const target = parseAmqpHost(TYPE, host, { vhostName, username, password, unsafeSsl, tls });
      // guest/guest, amqp091-go's default when host has no credentials, is no secret.
      if (target.password !== 'guest') secrets.push(target.password);
      shown = target.shown;
      make = () => new RabbitmqAmqpReader({ target, queueName, trust: ctx.trust, timeoutMs: ctx.timeoutMs, fail: fail(shown, new SecretScrubber(secrets)) });
    }
    if (validateOnly) {
      this.reader = undefined;
      return;
    }
    this.reader = make();
    if (unsafeSsl && secure) warnUnsafeSslOnce(ctx.log, TYPE, shown);
  }

  async getMetricValue(signal: AbortSignal): Promise<number> {
    if (!this.reader) throw new ScalerError(`${TYPE}: this scaler was built to validate the trigger only, not to query`);
    const status = await this.reader.read(signal);
    this.lastMessages = status.messages;
    return this.mode === 'QueueLength' ? status.messages : status.publishRate;
  }

  isActive(value: number): boolean {
    // KEDA: strictly above activationValue; MessageRate also while messages wait in the queue.
    if (this.mode === 'MessageRate') return value > this.activationValue || this.lastMessages > this.activationValue;
    return value > this.activationValue;
  }

  close(): void {
    this.reader?.close();
  }
}

/** Go's url.QueryEscape: all but [A-Za-z0-9-_.~] percent-encoded (upper-case hex), space as `+`. */
export function goQueryEscape(s: string): string {
  return encodeURIComponent(s)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%20/g, '+');
}

/** KEDA's time.Duration: Go's form (`30s`, `1m30s`), else whole milliseconds; 0 is "not given". */
function readTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const s = text.trim();
  const ms = parseKedaDuration(s);
  if (ms === undefined) throw configError(`timeout "${truncate(s, 32)}" is not a duration: milliseconds (2500) or Go's form (2.5s)`);
  return ms === 0 ? undefined : Math.max(1, Math.round(ms));
}

function configError(message: string): ScalerConfigError {
  return upstreamConfigError(TYPE, message);
}
