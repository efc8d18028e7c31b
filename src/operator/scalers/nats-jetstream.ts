// KEDA's `nats-jetstream` scaler: the lag of one JetStream consumer, read from a NATS server's
// monitoring endpoint. https://keda.sh/docs/latest/scalers/nats-jetstream/
//
// The request is KEDA's: GET http(s)://<natsServerMonitoringEndpoint>/jsz?acc=<accountID or
// account>&consumers=true&config=true. In the answer, the account (matched by id or name), its
// stream and the consumer give the value, computed as KEDA computes it: the consumer's
// num_pending (not yet delivered) plus num_ack_pending (delivered, not yet acked); a stream without
// that consumer gives the stream's last sequence number (as if nothing had been consumed yet).
//
// Clusters (the answer's meta_cluster.cluster_size > 1): only the consumer's leader knows its
// current numbers (followers' copies lag behind), and a server only shows the streams it holds a
// replica of. As KEDA does, the scaler then finds the leader: the /varz of the configured
// endpoint lists the cluster's client URLs (connect_urls); each one's host, with the configured
// monitoring port, is asked its /varz (for its server_name) and its /jsz, until the server named
// as the consumer's leader is found. Servers that do not advertise (no_advertise) list their
// route URLs instead; each route host's first DNS label is then taken as the server name and the
// monitoring endpoint as `<name>.<configured endpoint>` (a StatefulSet behind a headless Service:
// nats-1 at nats-1.nats.default.svc:8222). The leader's endpoint is kept and asked first at the
// next poll, until the leader changes.
//
// Where we differ from KEDA (see README): each value is computed from this poll's answer only
// (KEDA keeps the last stream it found, and reports it after the stream is gone, or 0 when it
// was never found); a missing account or stream is an error saying so; a leader that went away is
// forgotten within the same poll, and a cluster server that does not answer is skipped during the
// search (KEDA fails the poll); an answer is taken as the leader's only when it came from the
// leader's own endpoint (KEDA also takes the configured endpoint's when it names the same leader);
// a consumer missing on every server of a cluster gives the stream's
// last sequence as on a single server (KEDA fails); lagThreshold and activationLagThreshold must be
// whole numbers (KEDA's int64) and lagThreshold above 0 (an HPA target of 0 or less is refused by
// Kubernetes); the endpoint must be host[:port]; HTTPS trusts --ca-dir and the auth parameter `ca`
// besides the system roots (KEDA has no CA parameter here). The monitoring endpoint has no
// authentication in NATS, and never asks for client certificates (nats-server 2.9 serves it
// without, even under `tls { verify: true }`): there is nothing to configure for either.
import { UpstreamClient, httpStatusProblem } from './http-upstream.js';
import { metricNameFor, normalizeMetricName } from './metric-name.js';
import { readParameters, type ParamSpec } from './parameters.js';
import { ScalerError, type Scaler, type ScalerContext, type ScalerFactory } from './scaler.js';
import { checkCa, configError, oneLine, truncate, type TlsMaterial } from './upstream.js';
import type { Logger } from 'pino';

const TYPE = 'nats-jetstream';
/** How many names a "not found" message lists. */
const LIST_NAMES = 10;
/** host, IPv4 or [IPv6], with an optional port: what natsServerMonitoringEndpoint may be. */
const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?)(?::(\d{1,5}))?$/;

/** What the nats-jetstream scaler reads (the README's table is generated from this). */
export const NATS_JETSTREAM_PARAMETERS: readonly ParamSpec[] = [
  {
    name: 'natsServerMonitoringEndpoint',
    type: 'string',
    from: 'auth, then metadata',
    required: true,
    doc: 'Required. The monitoring endpoint as `host:port`, no scheme (e.g. `nats.nats.svc.cluster.local:8222`); in a cluster, any server\'s: the consumer\'s leader is found from it.',
  },
  { name: 'account', type: 'string', from: 'auth, then metadata', doc: 'The account\'s name: `$G` when the server has no accounts. This or accountID is required.' },
  { name: 'accountID', type: 'string', from: 'auth, then metadata', doc: 'The account\'s id (its public key under operator JWTs); asked for instead of account, and either one matches.' },
  { name: 'stream', type: 'string', from: 'metadata', required: true, doc: 'The stream.' },
  { name: 'consumer', type: 'string', from: 'metadata', required: true, doc: 'The consumer whose lag (num_pending + num_ack_pending) is read.' },
  { name: 'lagThreshold', type: 'number', from: 'metadata', default: 10, doc: 'The HPA target: a whole number above 0.' },
  { name: 'activationLagThreshold', type: 'number', from: 'metadata', default: 0, doc: 'Active (scaled from zero) strictly above this lag; a whole number.' },
  { name: 'useHttps', type: 'bool', from: 'metadata', default: false, doc: 'The endpoint is HTTPS (nats-server\'s `https:` monitoring port); its certificate is verified.' },
  { name: 'ca', type: 'string', from: 'auth', doc: 'A CA (PEM) trusted for the HTTPS endpoint besides the system roots and `--ca-dir` (not in KEDA).' },
];

export const createNatsJetstreamScaler: ScalerFactory = (ctx) => new NatsJetStreamScaler(ctx);

/** What one /jsz answer says about our account, stream and consumer. */
interface Found {
  clusterSize: number;
  /** The server runs without JetStream. */
  disabled: boolean;
  /** The account names (or ids) in the answer, for messages. */
  accounts: string[];
  account: boolean;
  streams: string[];
  stream: JszStream | undefined;
  consumer: JszConsumer | undefined;
}

interface JszStream {
  name?: unknown;
  state?: { last_seq?: unknown } | null;
  consumer_detail?: unknown;
}

interface JszConsumer {
  name?: unknown;
  num_pending?: unknown;
  num_ack_pending?: unknown;
  cluster?: { leader?: unknown } | null;
}

class NatsJetStreamScaler implements Scaler {
  readonly metricName: string;
  readonly targetValue: number;
  private readonly activationLagThreshold: number;
  private readonly scheme: 'http' | 'https';
  /** natsServerMonitoringEndpoint: host[:port]. */
  private readonly endpoint: string;
  /** Its port, with the colon ('' when none is given). */
  private readonly portSuffix: string;
  private readonly account: string | undefined;
  private readonly accountId: string;
  private readonly stream: string;
  private readonly consumer: string;
  /** `acc=...&consumers=true&config=true`, as KEDA asks. */
  private readonly jszQuery: string;
  /** `<scheme>://<endpoint>`: the prefix of every message. */
  private readonly shown: string;
  private readonly timeoutMs: number;
  private readonly client: UpstreamClient;
  private readonly validateOnly: boolean;
  private readonly log: Logger | undefined;

  // KEDA's cache: the consumer's leader (by server name) and that server's /jsz, asked first.
  private consumerLeader: string | undefined;
  private leaderUrl: URL | undefined;
  /** The stream seen without the consumer: warned about once, until the consumer is back. */
  private consumerMissingWarned = false;

  constructor(ctx: ScalerContext) {
    // Validation only (an admission webhook, which cannot read Secrets): the metadata is checked,
    // values a TriggerAuthentication may give are not required, and no request is ever sent.
    this.validateOnly = ctx.validateOnly === true;
    this.log = ctx.log;
    const p = readParameters(TYPE, NATS_JETSTREAM_PARAMETERS, ctx);

    const account = p.string('account')?.trim();
    const accountId = p.string('accountID')?.trim();
    if (account === undefined && accountId === undefined && !p.unseen('account') && !p.unseen('accountID')) {
      throw configError(TYPE, 'no account or accountID given in the trigger authentication or metadata (`$G` is the account of a server without accounts)');
    }
    this.account = account;
    // KEDA asks for the id, which defaults to the name.
    this.accountId = accountId ?? account ?? '';
    this.stream = p.string('stream')!;
    this.consumer = p.string('consumer')!;
    this.targetValue = wholeNumber(p, 'lagThreshold');
    if (this.targetValue <= 0) throw configError(TYPE, `lagThreshold ${this.targetValue} must be above 0 (it is the HPA's target)`);
    this.activationLagThreshold = wholeNumber(p, 'activationLagThreshold');
    this.scheme = p.bool('useHttps') ? 'https' : 'http';
    this.metricName = metricNameFor(ctx.triggerIndex, normalizeMetricName(`nats-jetstream-${this.stream}`));

    // A validate-only build without the endpoint (it is in a TriggerAuthentication) stops here.
    const endpoint = p.string('natsServerMonitoringEndpoint')?.trim() ?? 'validate-only.invalid';
    const hostPort = HOST_PORT.exec(endpoint);
    if (!hostPort || (hostPort[1] !== undefined && (Number(hostPort[1]) < 1 || Number(hostPort[1]) > 65535))) {
      // Quoted only when it cannot hold credentials (user:password@host).
      const quoted = endpoint.includes('@') ? '' : ` "${truncate(endpoint, 100)}"`;
      const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(endpoint);
      throw configError(
        TYPE,
        `natsServerMonitoringEndpoint${quoted} is not host:port${scheme ? ' (give no scheme: useHttps "true" selects https)' : ''}, e.g. nats.nats.svc.cluster.local:8222`,
      );
    }
    this.endpoint = endpoint;
    this.portSuffix = hostPort[1] !== undefined ? `:${hostPort[1]}` : '';
    this.jszQuery = new URLSearchParams({ acc: this.accountId, consumers: 'true', config: 'true' }).toString();
    this.shown = `${this.scheme}://${endpoint}`;
    this.timeoutMs = ctx.timeoutMs;

    const tls: TlsMaterial = {};
    const ca = p.string('ca');
    if (ca !== undefined) tls.ca = checkCa(TYPE, '', ca);
    this.client = new UpstreamClient({
      trust: ctx.trust,
      timeoutMs: ctx.timeoutMs,
      https: this.scheme === 'https',
      unsafeSsl: false,
      tls,
      // nats-server never asks for a client certificate on its monitoring port: whatever closed
      // the connection is something else in front of it.
      clientCertHint: 'this scaler sends none, and nats-server never asks for one on its monitoring port: is a proxy in front of it?',
      // Messages are prefixed where they are caught (which server was asked).
      fail: (problem) => new ScalerError(problem),
    });
  }

  isActive(value: number): boolean {
    return value > this.activationLagThreshold; // KEDA: strictly above
  }

  async getMetricValue(signal: AbortSignal): Promise<number> {
    if (this.validateOnly) throw this.fail('this scaler was built to validate the trigger only, not to query');
    // The whole poll (a leader search asks several servers) is bounded by the timeout.
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.timeoutMs);
    const both = AbortSignal.any([signal, deadline.signal]);
    try {
      return await this.poll(both);
    } catch (err) {
      if (deadline.signal.aborted && !signal.aborted) throw this.fail(`no answer within ${this.timeoutMs} ms`);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): void {
    this.client.close();
  }

  // --- KEDA's getNATSJetstreamMonitoringData --------------------------------------------------

  private async poll(signal: AbortSignal): Promise<number> {
    const cachedLeader = this.consumerLeader;
    let found: Found | undefined;
    // Whether this answer is the known leader's (KEDA assumes so whenever the name is unchanged,
    // even after its request went to the configured endpoint; we check where it came from).
    let fromLeader = false;
    if (this.leaderUrl) {
      try {
        found = this.find(await this.fetchJson(this.leaderUrl, signal));
        fromLeader = true;
      } catch (err) {
        if (signal.aborted || !(err instanceof Problem)) throw err;
        // The leader we knew went away: ask the configured endpoint, in this same poll.
        this.debug(`the consumer's leader ${cachedLeader ?? ''} at ${this.leaderUrl.origin} did not answer (${err.message}); asking the configured endpoint again`);
        this.forgetLeader();
      }
    }
    found ??= this.find(await this.getJson(this.jszUrl(this.endpoint), signal, ''));
    if (found.consumer) this.consumerLeader = leaderOf(found.consumer);
    else if (cachedLeader !== undefined) this.forgetLeader();
    // The leader did not change since the last poll, and this is its answer.
    if (fromLeader && found.consumer && cachedLeader !== undefined && cachedLeader === this.consumerLeader) return this.lag(found, '');
    if (found.clusterSize > 1) {
      const search = await this.findLeader(signal, found);
      return this.lag(search.found, search.where);
    }
    return this.lag(found, '');
  }

  /** KEDA's search for the consumer's leader among the cluster's servers. */
  private async findLeader(signal: AbortSignal, first: Found): Promise<{ found: Found; where: string }> {
    const varz = await this.getJson(new URL(`${this.scheme}://${this.endpoint}/varz`), signal, 'its /varz: ');
    const connectUrls = stringList((varz as { connect_urls?: unknown }).connect_urls);
    const advertised = connectUrls.length > 0;
    const routeUrls = stringList((varz as { cluster?: { urls?: unknown } | null }).cluster?.urls);
    // Each server: its monitoring endpoint, and (for route URLs) its name.
    const servers: { endpoint: string; name?: string }[] = advertised
      ? connectUrls.map((u) => ({ endpoint: `${hostOf(u)}${this.portSuffix}` }))
      : routeUrls.map((u) => {
          const name = hostOf(u).split('.')[0]!;
          return { endpoint: `${name}.${this.endpoint}`, name };
        });
    if (servers.length === 0) {
      throw this.fail(`the cluster has ${first.clusterSize} servers, but this server's /varz lists neither connect_urls nor cluster urls to find the consumer's leader by`);
    }
    const asked: string[] = [];
    const unreachable: string[] = [];
    let consumerSeen = first.consumer !== undefined;
    let leaderSeen = first.consumer ? leaderOf(first.consumer) : undefined;
    let withStream: Found | undefined = first.stream ? first : undefined;
    for (const server of [...new Map(servers.map((s) => [s.endpoint, s])).values()]) {
      let name = server.name;
      let found: Found;
      try {
        if (name === undefined) {
          const v = await this.fetchJson(new URL(`${this.scheme}://${server.endpoint}/varz`), signal);
          const serverName = (v as { server_name?: unknown }).server_name;
          name = typeof serverName === 'string' ? serverName : '';
        }
        found = this.find(await this.fetchJson(this.jszUrl(server.endpoint), signal));
      } catch (err) {
        if (signal.aborted || !(err instanceof Problem)) throw err;
        unreachable.push(`${server.endpoint}${name ? ` (${name})` : ''}: ${err.message}`);
        continue;
      }
      asked.push(`${server.endpoint} (${name || 'no server_name'})`);
      if (found.stream && !withStream) withStream = found;
      if (!found.consumer) continue;
      consumerSeen = true;
      const leader = leaderOf(found.consumer);
      leaderSeen ??= leader;
      if (leader !== undefined && name === leader) {
        const url = this.jszUrl(server.endpoint);
        if (this.leaderUrl?.href !== url.href) this.debug(`following the consumer's leader ${leader} at ${url.origin}`);
        this.consumerLeader = leader;
        this.leaderUrl = url;
        return { found, where: '' };
      }
    }
    // Every server answered and none has the consumer: as on a single server, the stream's last
    // sequence (or the stream's absence) is the answer.
    if (!consumerSeen && unreachable.length === 0) {
      const answered = asked.length < first.clusterSize ? ` on the ${asked.length} of its ${first.clusterSize} servers that answered` : ' on any server';
      return { found: withStream ?? first, where: ` in the cluster${answered}` };
    }
    const where = `asked: ${asked.join(', ') || 'none'}${unreachable.length > 0 ? `; not answering: ${unreachable.join('; ')}` : ''}`;
    if (!consumerSeen) throw this.fail(`consumer "${this.consumer}" of stream "${this.stream}" not found on the cluster's servers that answered; ${where}`);
    if (leaderSeen === undefined) throw this.fail(`consumer "${this.consumer}" has no leader at the moment (an election?); ${where}`);
    throw this.fail(`the leader of consumer "${this.consumer}" (${leaderSeen}) was not found among the cluster's servers; ${where}`);
  }

  private forgetLeader(): void {
    this.consumerLeader = undefined;
    this.leaderUrl = undefined;
  }

  // --- reading an answer ------------------------------------------------------------------------

  private jszUrl(endpoint: string): URL {
    return new URL(`${this.scheme}://${endpoint}/jsz?${this.jszQuery}`);
  }

  /** A GET whose answer must be a JSON object; every failure says which server (`what`, else its origin when not the configured one) and why. */
  private async getJson(url: URL, signal: AbortSignal, what: string): Promise<Record<string, unknown>> {
    try {
      return await this.fetchJson(url, signal);
    } catch (err) {
      if (!(err instanceof Problem)) throw err;
      const prefix = what || (url.host === new URL(this.shown).host ? '' : `${url.origin}: `);
      throw this.fail(`${prefix}${err.message}`);
    }
  }

  /** The same, failing with a Problem: what went wrong, without saying where. */
  private async fetchJson(url: URL, signal: AbortSignal): Promise<Record<string, unknown>> {
    let res;
    try {
      res = await this.client.get(url, { accept: 'application/json' }, signal);
    } catch (err) {
      if (!(err instanceof ScalerError)) throw err;
      throw new Problem(`${err.message}${this.networkHint(err.message)}`);
    }
    if (!res.ok) throw new Problem(`${httpStatusProblem(res.status, res.text)}${this.statusHint(res.status, res.text)}`);
    let doc: unknown;
    try {
      doc = JSON.parse(res.text);
    } catch {
      throw new Problem(`the answer is not JSON (it starts "${truncate(oneLine(res.text), 60)}"): is natsServerMonitoringEndpoint a NATS monitoring endpoint?`);
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc) || typeof (doc as { server_id?: unknown }).server_id !== 'string') {
      throw new Problem('the answer is not a NATS monitoring document (no server_id): is natsServerMonitoringEndpoint a NATS monitoring endpoint?');
    }
    return doc as Record<string, unknown>;
  }

  /** KEDA's setNATSJetStreamMonitoringData, without keeping anything from an earlier answer. */
  private find(jsz: Record<string, unknown>): Found {
    const meta = jsz.meta_cluster as { cluster_size?: unknown } | null | undefined;
    const found: Found = {
      clusterSize: typeof meta?.cluster_size === 'number' ? meta.cluster_size : 0,
      disabled: jsz.disabled === true,
      accounts: [],
      account: false,
      streams: [],
      stream: undefined,
      consumer: undefined,
    };
    if (found.disabled) return found;
    const accounts = Array.isArray(jsz.account_details) ? (jsz.account_details as { id?: unknown; name?: unknown; stream_detail?: unknown }[]) : [];
    for (const account of accounts) {
      if (account === null || typeof account !== 'object') continue;
      const name = typeof account.name === 'string' ? account.name : undefined;
      if (name !== undefined) found.accounts.push(name);
      // KEDA's IsAccount: the id is the one asked for, or the name is the account's.
      if (account.id !== this.accountId && (this.account === undefined || name !== this.account)) continue;
      found.account = true;
      const streams = Array.isArray(account.stream_detail) ? (account.stream_detail as JszStream[]) : [];
      for (const stream of streams) {
        if (stream === null || typeof stream !== 'object') continue;
        if (typeof stream.name === 'string') found.streams.push(stream.name);
        if (stream.name !== this.stream || found.stream) continue;
        found.stream = stream;
        const consumers = Array.isArray(stream.consumer_detail) ? (stream.consumer_detail as JszConsumer[]) : [];
        found.consumer = consumers.find((c) => c !== null && typeof c === 'object' && c.name === this.consumer);
      }
      break;
    }
    return found;
  }

  /** KEDA's getMaxMsgLag. `where` completes "not found" (e.g. " in the cluster on any server"). */
  private lag(found: Found, where: string): number {
    const account = this.account ?? this.accountId;
    if (found.disabled) throw this.fail('JetStream is not enabled on this server (no jetstream block in its configuration)');
    if (!found.account) {
      const seen = found.accounts.length > 0 ? `accounts with JetStream there: ${listNames(found.accounts)}` : 'no account has JetStream there';
      throw this.fail(`account "${account}" not found in the JetStream report${where} (${seen}): is JetStream enabled for it?`);
    }
    if (!found.stream) {
      throw this.fail(`stream "${this.stream}" not found in account "${account}"${where} (${found.streams.length > 0 ? `its streams: ${listNames(found.streams)}` : 'it has no streams'})`);
    }
    if (!found.consumer) {
      // KEDA: a stream without the consumer counts every message it ever took as pending.
      const lastSeq = found.stream.state?.last_seq;
      if (!isCount(lastSeq)) throw this.fail(`stream "${this.stream}" has no state.last_seq in the answer`);
      if (!this.consumerMissingWarned) {
        this.consumerMissingWarned = true;
        this.log?.warn(
          { scaler: TYPE, url: this.shown, stream: this.stream, consumer: this.consumer },
          `${TYPE} ${this.shown}: consumer "${this.consumer}" not found in stream "${this.stream}": the lag is the stream's last sequence (${lastSeq}), as KEDA reports it`,
        );
      }
      return lastSeq;
    }
    this.consumerMissingWarned = false;
    const { num_pending: pending, num_ack_pending: ackPending } = found.consumer;
    if (!isCount(pending) || !isCount(ackPending)) {
      throw this.fail(`consumer "${this.consumer}" has no num_pending and num_ack_pending counts in the answer`);
    }
    return pending + ackPending;
  }

  // --- messages ---------------------------------------------------------------------------------

  private networkHint(message: string): string {
    if (/HPE_|Expected HTTP/i.test(message)) return ' (is natsServerMonitoringEndpoint the monitoring port, not the client port?)';
    if (this.scheme === 'https' && /WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST/i.test(message)) return ' (is the endpoint plain HTTP? useHttps is true)';
    return '';
  }

  private statusHint(status: number, body: string): string {
    if (status === 400 && /HTTP request to an HTTPS server/i.test(body)) return ' (the endpoint is HTTPS: set useHttps "true")';
    if (status === 404) return ' (is natsServerMonitoringEndpoint a NATS monitoring endpoint?)';
    return '';
  }

  private debug(message: string): void {
    this.log?.debug({ scaler: TYPE, url: this.shown, stream: this.stream, consumer: this.consumer }, `${TYPE} ${this.shown}: ${message}`);
  }

  private fail(problem: string): ScalerError {
    return new ScalerError(`${TYPE} ${this.shown}: ${problem}`);
  }
}

/** What went wrong with one request, without saying where: the caller knows. */
class Problem extends Error {}

/** A whole number parameter (KEDA reads these as int64). */
function wholeNumber(p: { number(name: string): number | undefined }, name: string): number {
  const n = p.number(name)!;
  if (!Number.isInteger(n)) throw configError(TYPE, `${name} ${n} is not a whole number`);
  return n;
}

function leaderOf(consumer: JszConsumer): string | undefined {
  const leader = consumer.cluster?.leader;
  return typeof leader === 'string' && leader !== '' ? leader : undefined;
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

function stringList(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string' && s !== '') : [];
}

/** The host of `host:port`, `[v6]:port` or `scheme://host:port` (a URL as nats-server lists them). */
function hostOf(u: string): string {
  const rest = u.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/.*$/, '');
  const v6 = /^(\[[^\]]*\])/.exec(rest);
  if (v6) return v6[1]!;
  return rest.split(':')[0]!;
}

function listNames(names: string[]): string {
  const shown = names.slice(0, LIST_NAMES).map((n) => `"${truncate(n, 64)}"`);
  return `${shown.join(', ')}${names.length > LIST_NAMES ? ` and ${names.length - LIST_NAMES} more` : ''}`;
}
