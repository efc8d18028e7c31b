// The operator's certificate lifecycle as a pure decision: given what the Secret holds and the
// time, say what to write next (if anything) and when to look again. No Kubernetes calls and no
// clocks here; the controller reads the Secret, calls planCertificates, writes `data` and
// `annotations` when told to, and sleeps until `nextCheckAt` (re-checking periodically anyway).
//
// The Secret: ca.crt (trust bundle: one CA, or two during a rollover), ca.key (the key of the CA
// that signs now), tls.crt/tls.key (one serving+client certificate for every component).
//
// CA rollover, without a moment where some component holds a certificate its peers cannot verify:
//
//   rollover-publish    ca.crt = old + new, ca.key = new key; the leaf stays (signed by old).
//        |  overlapMs   every component reloads the two-CA bundle
//   rollover-move-leaf  new leaf signed by the new CA; ca.crt still holds both.
//        |  overlapMs   every component reloads the new leaf
//   rollover-finish     ca.crt = new CA only.
//
// Each write keeps the previous leaf valid under the new bundle and the new leaf valid under the
// previous bundle, so a component that reloads any file at any moment keeps working.
//
// When it starts: as soon as the signing CA has at most
//   rolloverLeadMs = certValidityMs + renewBeforeMs + 2 * overlapMs
// left. Every leaf the old CA signed before that moment expires no later than
// notAfter(CA) - renewBeforeMs - 2 * overlapMs, so in normal operation no leaf is ever cut short
// by its CA's expiry, and the old CA is dropped while it still has certValidity + renewBefore to
// live: nothing in the chain is ever near expiry while it is in use.
//
// Progress is kept in two annotations (ROLLOVER_PHASE_ANNOTATION, ROLLOVER_SINCE_ANNOTATION),
// so an operator restarted mid-rollover continues where it stopped. Inconsistent states are
// resolved towards the safe side: two CAs without annotations count as "published now"; more than
// two valid CAs are cut down to the signing CA and the leaf's CA, again as "published now".
import { createCA, issueCertificate, type KeyAlgorithm } from '../../certs/x509.js';
import {
  CA_CERT_KEY,
  CA_KEY_KEY,
  TLS_CERT_KEY,
  TLS_KEY_KEY,
  describe,
  hasNoCertificateData,
  inspectCa,
  inspectLeaf,
  isExpired,
  type CaInspection,
  type LeafInspection,
  type ParsedCa,
} from './bundle.js';
import { parseCertificates } from '../../tls/pem.js';

export { CA_CERT_KEY, CA_KEY_KEY, TLS_CERT_KEY, TLS_KEY_KEY } from './bundle.js';

export const ANNOTATION_PREFIX = 'cert.keda-ts.io/';
/** `published` or `leaf-moved`; absent when no rollover is in progress. */
export const ROLLOVER_PHASE_ANNOTATION = `${ANNOTATION_PREFIX}rollover-phase`;
/** ISO 8601 time the current phase was entered. */
export const ROLLOVER_SINCE_ANNOTATION = `${ANNOTATION_PREFIX}rollover-since`;

export const DEFAULT_CA_COMMON_NAME = 'keda-ts CA';
export const DEFAULT_LEAF_COMMON_NAME = 'keda-ts';

export type RolloverPhase = 'published' | 'leaf-moved';

export interface LifecycleConfig {
  /** Required SANs of the leaf. */
  dnsNames: string[];
  keyAlgorithm: KeyAlgorithm;
  caValidityMs: number;
  certValidityMs: number;
  /** The leaf is renewed once at most this much of its life remains; also part of the rollover lead. */
  renewBeforeMs: number;
  /** How long a new CA is published before the leaf moves to it, and how long the old CA stays after. */
  overlapMs: number;
  caCommonName?: string;
  leafCommonName?: string;
}

export interface SecretState {
  /** Decoded PEM strings; a missing Secret is `{}`. */
  data: Record<string, string>;
  annotations: Record<string, string>;
}

/** Not-after times, for gauges: the unexpired CAs of ca.crt in bundle order, and the leaf. */
export interface CertSummary {
  caNotAfter: Date[];
  leafNotAfter: Date | undefined;
}

export type WriteKind =
  | 'create'
  | 'replace-corrupt'
  | 'renew-leaf'
  | 'reissue-leaf'
  | 'rollover-publish'
  | 'rollover-move-leaf'
  | 'rollover-finish';

export type Plan =
  | { action: 'none'; reason: string; nextCheckAt: Date; summary: CertSummary }
  | {
      action: 'write';
      reason: string;
      kind: WriteKind;
      /**
       * The complete Secret data to write: the input data (other keys preserved) with the four
       * certificate keys set.
       */
      data: Record<string, string>;
      /**
       * The complete annotations to write: the input annotations with the two rollover
       * annotations set or removed. A caller that patches must delete keys present before and
       * absent here (merge-patch them to null).
       */
      annotations: Record<string, string>;
      nextCheckAt: Date;
      summary: CertSummary;
    };

type NonePlan = Extract<Plan, { action: 'none' }>;

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

const MAX_BACKDATE_MS = 5 * 60_000;
const KEY_ALGORITHMS: readonly KeyAlgorithm[] = ['ecdsa-p256', 'ecdsa-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096', 'ed25519'];

/**
 * notBefore = now - backdate, to absorb clock skew between the operator and the verifiers. Five
 * minutes is the usual allowance, but it must not dwarf a short validity (tests use seconds), so
 * it is capped at a tenth of the validity. The requested validity is counted from `now`.
 */
export function backdateMs(validityMs: number): number {
  return Math.min(MAX_BACKDATE_MS, Math.floor(validityMs / 10));
}

/** How long before the signing CA's notAfter a rollover starts. */
export function rolloverLeadMs(config: LifecycleConfig): number {
  return config.certValidityMs + config.renewBeforeMs + 2 * config.overlapMs;
}

/**
 * Throws a RangeError naming the offending setting; planCertificates calls it too, so call it
 * where the configuration is parsed to fail at start-up instead of at the first reconcile.
 */
export function validateLifecycleConfig(config: LifecycleConfig): void {
  const durations = ['caValidityMs', 'certValidityMs', 'renewBeforeMs', 'overlapMs'] as const;
  for (const name of durations) {
    const value = config[name];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new RangeError(`${name} must be a positive number of milliseconds, got ${String(value)}`);
    }
  }
  if (!KEY_ALGORITHMS.includes(config.keyAlgorithm)) {
    throw new RangeError(`keyAlgorithm must be one of ${KEY_ALGORITHMS.join(', ')}, got ${String(config.keyAlgorithm)}`);
  }
  if (!Array.isArray(config.dnsNames) || config.dnsNames.some((n) => typeof n !== 'string' || n.trim() === '')) {
    throw new RangeError('dnsNames must be a list of non-empty DNS names');
  }
  const { certValidityMs, renewBeforeMs, caValidityMs } = config;
  if (renewBeforeMs >= certValidityMs) {
    throw new RangeError(
      `renewBeforeMs (${renewBeforeMs}) must be less than certValidityMs (${certValidityMs}): ` +
        'otherwise every new serving certificate would be due for renewal at once',
    );
  }
  // overlapMs > certValidityMs - renewBeforeMs is allowed (e.g. 8 s leaves with the 5 min default
  // overlap): a leaf that comes due while the new CA is only published moves to it early.
  const lead = rolloverLeadMs(config);
  if (lead >= caValidityMs) {
    throw new RangeError(
      `caValidityMs (${caValidityMs}) must exceed certValidityMs + renewBeforeMs + 2 * overlapMs (${lead}): ` +
        'otherwise a new CA would have to be rolled over as soon as it is created',
    );
  }
}

// ---------------------------------------------------------------------------
// Decision
// ---------------------------------------------------------------------------

interface Rollover {
  phase: RolloverPhase;
  since: Date;
}

interface Signer {
  certPem: string;
  keyPem: string;
  notAfter: Date;
}

type LeafAction = { keep: true } | { issueFrom: 'signer' | Signer };

/** A write still to be carried out: which CA signs, which other CA stays trusted, what happens to the leaf. */
interface Intent {
  action: 'write';
  kind: WriteKind;
  reason: string;
  /** 'new': generate a CA; it becomes the signing CA. */
  signer: Signer | 'new';
  /** CAs kept in ca.crt ahead of the signing CA. */
  retained: ParsedCa[];
  leaf: LeafAction;
  rollover: Rollover | undefined;
}

interface RolloverState {
  /** The second CA of the bundle, on its way out. */
  retiring: ParsedCa | undefined;
  rollover: Rollover | undefined;
  /** Why the annotations (or the bundle) must be written even if nothing else changes. */
  dirty: string | undefined;
}

const iso = (d: Date) => d.toISOString();
const at = (ms: number) => new Date(ms);
const earliest = (...dates: Date[]) => at(Math.min(...dates.map((d) => d.getTime())));

function readRollover(annotations: Record<string, string>): { present: boolean; value?: Rollover; invalid?: string } {
  const phase = annotations[ROLLOVER_PHASE_ANNOTATION];
  const since = annotations[ROLLOVER_SINCE_ANNOTATION];
  if (phase === undefined && since === undefined) return { present: false };
  if (phase !== 'published' && phase !== 'leaf-moved') {
    return { present: true, invalid: `annotation ${ROLLOVER_PHASE_ANNOTATION}=${JSON.stringify(phase ?? null)} is not "published" or "leaf-moved"` };
  }
  const ms = since === undefined ? Number.NaN : Date.parse(since);
  if (Number.isNaN(ms)) {
    return { present: true, invalid: `annotation ${ROLLOVER_SINCE_ANNOTATION}=${JSON.stringify(since ?? null)} is not a timestamp` };
  }
  return { present: true, value: { phase, since: at(ms) } };
}

function rolloverState(
  annotations: Record<string, string>,
  ca: Extract<CaInspection, { ok: true }>,
  leaf: LeafInspection,
  now: Date,
): RolloverState {
  const ann = readRollover(annotations);
  if (ca.others.length === 0) {
    const dirty = ann.present ? 'rollover annotations are present but ca.crt holds a single valid CA; clearing them' : undefined;
    return { retiring: undefined, rollover: undefined, dirty };
  }
  const published: Rollover = { phase: 'published', since: now };
  if (ca.others.length > 1) {
    // Keep what the leaf needs; otherwise the newest of the rest.
    const leafIssuer = leaf.ok && leaf.issuer !== ca.signing ? leaf.issuer : undefined;
    const retiring = leafIssuer ?? ca.others.reduce((a, b) => (b.notBefore > a.notBefore ? b : a));
    const dirty =
      `${CA_CERT_KEY} holds ${ca.others.length + 1} valid CAs; keeping only the signing CA ${describe(ca.signing.cert)} ` +
      `and ${describe(retiring.cert)}, as a rollover published now`;
    return { retiring, rollover: published, dirty };
  }
  const retiring = ca.others[0] as ParsedCa;
  if (!ann.value) {
    const why = ann.invalid ?? `${CA_CERT_KEY} holds two valid CAs but the Secret has no rollover annotations`;
    return { retiring, rollover: published, dirty: `${why}; treating the rollover as published now` };
  }
  if (ann.value.since > now) {
    const dirty = `annotation ${ROLLOVER_SINCE_ANNOTATION}=${iso(ann.value.since)} is in the future; restarting phase ${ann.value.phase} now`;
    return { retiring, rollover: { phase: ann.value.phase, since: now }, dirty };
  }
  return { retiring, rollover: ann.value, dirty: undefined };
}

function fresh(kind: 'create' | 'replace-corrupt', reason: string): Intent {
  return { action: 'write', kind, reason, signer: 'new', retained: [], leaf: { issueFrom: 'signer' }, rollover: undefined };
}

/** Synchronous and key-free: what must happen now, or when to look again. */
function decide(current: SecretState, config: LifecycleConfig, now: Date): NonePlan | Intent {
  const { data } = current;
  if (hasNoCertificateData(data)) {
    return fresh('create', 'the Secret holds no certificates; creating a CA and a serving certificate');
  }
  const ca = inspectCa(data, now);
  if (!ca.ok) {
    return fresh('replace-corrupt', `${ca.problem}; replacing the Secret's content with a new CA and serving certificate`);
  }
  const signer: Signer = { certPem: ca.signing.pem, keyPem: ca.signingKeyPem, notAfter: ca.signing.notAfter };
  const leaf = inspectLeaf(data, ca, config.dnsNames, now);
  const rs = rolloverState(current.annotations, ca, leaf, now);
  const retained = rs.retiring ? [rs.retiring] : [];
  const write = (kind: WriteKind, reason: string, leafAction: LeafAction, rollover: Rollover | undefined): Intent => ({
    action: 'write',
    kind,
    reason,
    signer,
    retained,
    leaf: leafAction,
    rollover,
  });
  const issue: LeafAction = { issueFrom: 'signer' };
  const keep: LeafAction = { keep: true };
  const movedNow: Rollover = { phase: 'leaf-moved', since: now };
  /** The rollover state once the leaf has been (re)issued by the signing CA. */
  const afterIssue = (wasFromSigner: boolean): Rollover | undefined => {
    if (!rs.retiring || !rs.rollover) return undefined;
    return wasFromSigner && rs.rollover.phase === 'leaf-moved' ? rs.rollover : movedNow;
  };

  // 1. Unparsable or mismatched tls.crt/tls.key is corruption like any other: everything is
  //    replaced, as the controller's contract says. (Re-issuing only the leaf from the sound CA
  //    would spare peers a bundle reload; kept simple and uniform on purpose.)
  if (!leaf.ok) {
    return fresh('replace-corrupt', `${leaf.problem}; replacing the Secret's content with a new CA and serving certificate`);
  }
  // A leaf that is unfit whatever its age is re-issued at once from the signing CA. During a
  // "published" phase this moves it to the new CA early: the old leaf is broken anyway.
  if (leaf.defect) {
    return write('reissue-leaf', `${leaf.defect}; issuing a new serving certificate from the current CA`, issue, afterIssue(leaf.issuer === ca.signing));
  }

  // A leaf is due for renewal once at most renewBeforeMs of its (CA-capped) life remains.
  // "At most" rather than "less than": the caller wakes exactly at nextCheckAt and must find work.
  const renewAt = at(leaf.effectiveNotAfter.getTime() - config.renewBeforeMs);
  const renewDue = now >= renewAt;
  const leafExpiry = leaf.effectiveNotAfter < leaf.notAfter ? `its CA expires at ${iso(leaf.effectiveNotAfter)}` : `it expires at ${iso(leaf.notAfter)}`;
  const renewReason = `the serving certificate is due for renewal (${leafExpiry}, renewal from ${iso(renewAt)})`;
  const summary = summarize(data, now);

  // 2. A rollover in progress.
  if (rs.retiring && rs.rollover) {
    const { phase, since } = rs.rollover;
    const deadline = at(since.getTime() + config.overlapMs);
    const fromSigner = leaf.issuer === ca.signing;
    if (phase === 'published') {
      if (renewDue || now >= deadline) {
        const reason =
          now >= deadline
            ? `the new CA ${describe(ca.signing.cert)} has been published since ${iso(since)}; moving the serving certificate to it`
            : `${renewReason}; the old CA's key is gone, so the serving certificate moves to the new CA ${describe(ca.signing.cert)} early`;
        return write('rollover-move-leaf', reason, fromSigner && !renewDue ? keep : issue, movedNow);
      }
      if (rs.dirty) return write('rollover-publish', rs.dirty, keep, rs.rollover);
      return {
        action: 'none',
        reason: `rollover in progress: new CA published since ${iso(since)}; the serving certificate moves to it at ${iso(deadline)}`,
        nextCheckAt: earliest(deadline, renewAt),
        summary,
      };
    }
    if (!fromSigner) {
      const reason = `rollover phase is leaf-moved but ${TLS_CERT_KEY} is still signed by the retiring CA ${describe(rs.retiring.cert)}; moving it to the new CA`;
      return write('rollover-move-leaf', reason, issue, movedNow);
    }
    if (renewDue) return write('renew-leaf', `${renewReason}; renewing it from the current CA`, issue, rs.rollover);
    if (now >= deadline) {
      const reason = `the serving certificate moved to the new CA at ${iso(since)}; removing the old CA ${describe(rs.retiring.cert)} from ${CA_CERT_KEY}`;
      return { ...write('rollover-finish', reason, keep, undefined), retained: [] };
    }
    if (rs.dirty) return write('rollover-move-leaf', rs.dirty, keep, rs.rollover);
    return {
      action: 'none',
      reason: `rollover in progress: serving certificate moved to the new CA at ${iso(since)}; the old CA is removed at ${iso(deadline)}`,
      nextCheckAt: earliest(deadline, renewAt),
      summary,
    };
  }

  // 3. A single CA.
  const lead = rolloverLeadMs(config);
  const rolloverAt = at(ca.signing.notAfter.getTime() - lead);
  if (now >= rolloverAt) {
    // The old CA's key is dropped now; if the leaf would need renewal before it moves, renew it
    // from the old CA while that is still possible (the leaf must stay on the old CA until then).
    const refresh = renewAt.getTime() <= now.getTime() + config.overlapMs;
    const reason =
      `the signing CA ${describe(ca.signing.cert)} expires at ${iso(ca.signing.notAfter)} (rollover from ${iso(rolloverAt)}); ` +
      `publishing a new CA next to it${refresh ? ', and renewing the serving certificate from the old CA so that it lasts until it moves' : ''}`;
    return {
      action: 'write',
      kind: 'rollover-publish',
      reason,
      signer: 'new',
      retained: [ca.signing],
      leaf: refresh ? { issueFrom: signer } : keep,
      rollover: { phase: 'published', since: now },
    };
  }
  if (renewDue) return write('renew-leaf', `${renewReason}; renewing it from the current CA`, issue, undefined);
  if (rs.dirty) return write('rollover-finish', rs.dirty, keep, undefined);
  return {
    action: 'none',
    reason: `certificates are valid; the serving certificate is renewed at ${iso(renewAt)}, the CA rolls over from ${iso(rolloverAt)}`,
    nextCheckAt: earliest(renewAt, rolloverAt),
    summary,
  };
}

// ---------------------------------------------------------------------------
// Execution
// ---------------------------------------------------------------------------

function summarize(data: Record<string, string>, now: Date): CertSummary {
  const certs = (key: string) => {
    try {
      return parseCertificates(key, data[key] ?? '');
    } catch {
      return [];
    }
  };
  return {
    caNotAfter: certs(CA_CERT_KEY)
      .filter((c) => c.ca && !isExpired(c.validToDate, now))
      .map((c) => c.validToDate),
    leafNotAfter: certs(TLS_CERT_KEY)[0]?.validToDate,
  };
}

function withRollover(annotations: Record<string, string>, rollover: Rollover | undefined): Record<string, string> {
  const result = { ...annotations };
  delete result[ROLLOVER_PHASE_ANNOTATION];
  delete result[ROLLOVER_SINCE_ANNOTATION];
  if (rollover) {
    result[ROLLOVER_PHASE_ANNOTATION] = rollover.phase;
    result[ROLLOVER_SINCE_ANNOTATION] = iso(rollover.since);
  }
  return result;
}

async function newCa(config: LifecycleConfig, now: Date): Promise<Signer> {
  const ms = now.getTime();
  const ca = await createCA({
    commonName: config.caCommonName ?? DEFAULT_CA_COMMON_NAME,
    keyAlgorithm: config.keyAlgorithm,
    notBefore: at(ms - backdateMs(config.caValidityMs)),
    notAfter: at(ms + config.caValidityMs),
  });
  return { certPem: ca.certPem, keyPem: ca.keyPem, notAfter: ca.notAfter };
}

/** A leaf never outlives its CA: notAfter = min(now + certValidity, CA notAfter). */
async function newLeaf(issuer: Signer, config: LifecycleConfig, now: Date): Promise<{ certPem: string; keyPem: string }> {
  const ms = now.getTime();
  const leaf = await issueCertificate(
    { certPem: issuer.certPem, keyPem: issuer.keyPem },
    {
      commonName: config.leafCommonName ?? DEFAULT_LEAF_COMMON_NAME,
      dnsNames: [...config.dnsNames],
      extendedUsages: ['serverAuth', 'clientAuth'],
      keyAlgorithm: config.keyAlgorithm,
      notBefore: at(ms - backdateMs(config.certValidityMs)),
      notAfter: at(Math.min(ms + config.certValidityMs, issuer.notAfter.getTime())),
    },
  );
  return { certPem: leaf.certPem, keyPem: leaf.keyPem };
}

async function execute(intent: Intent, current: SecretState, config: LifecycleConfig, now: Date): Promise<Plan> {
  const signer = intent.signer === 'new' ? await newCa(config, now) : intent.signer;
  const tls =
    'keep' in intent.leaf
      ? { certPem: current.data[TLS_CERT_KEY] as string, keyPem: current.data[TLS_KEY_KEY] as string }
      : await newLeaf(intent.leaf.issueFrom === 'signer' ? signer : intent.leaf.issueFrom, config, now);
  const data: Record<string, string> = {
    ...current.data,
    [CA_CERT_KEY]: [...intent.retained.map((c) => c.pem), signer.certPem].join(''),
    [CA_KEY_KEY]: signer.keyPem,
    [TLS_CERT_KEY]: tls.certPem,
    [TLS_KEY_KEY]: tls.keyPem,
  };
  const annotations = withRollover(current.annotations, intent.rollover);
  // Judge what was just built by the same rules: it must be sound, and it tells when to look again.
  const next = decide({ data, annotations }, config, now);
  if (next.action === 'write' && (next.kind === 'create' || next.kind === 'replace-corrupt' || next.kind === intent.kind)) {
    throw new Error(`internal error: the certificates planned for "${intent.kind}" would at once need "${next.kind}": ${next.reason}`);
  }
  return {
    action: 'write',
    kind: intent.kind,
    reason: intent.reason,
    data,
    annotations,
    nextCheckAt: next.action === 'none' ? next.nextCheckAt : now,
    summary: summarize(data, now),
  };
}

/**
 * What to do with the certificate Secret at `now`. Deterministic given its inputs, apart from the
 * keys and serial numbers of anything it generates. Throws only on an invalid configuration (see
 * validateLifecycleConfig) or an invalid `now`.
 */
export async function planCertificates(current: SecretState, config: LifecycleConfig, now: Date): Promise<Plan> {
  validateLifecycleConfig(config);
  if (!(now instanceof Date) || Number.isNaN(now.getTime())) throw new RangeError('now must be a valid Date');
  const decision = decide({ data: current.data ?? {}, annotations: current.annotations ?? {} }, config, now);
  if (decision.action === 'none') return decision;
  return execute(decision, { data: current.data ?? {}, annotations: current.annotations ?? {} }, config, now);
}
