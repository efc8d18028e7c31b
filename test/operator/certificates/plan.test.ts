// The certificate lifecycle decision, driven by a fake clock through whole lives: creation,
// adoption, renewal exactly on time, re-issue on SAN changes, every kind of corruption, and CA
// rollovers where, at every step, the leaf a component may load chains to the bundle any peer may
// hold. Real X.509 throughout, checked with node:crypto and (at a few points) `openssl verify`.
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCA, issueCertificate, type CertificateBundle } from '../../../src/certs/x509.js';
import { pemBlocks } from '../../../src/tls/pem.js';
import {
  ROLLOVER_PHASE_ANNOTATION,
  ROLLOVER_SINCE_ANNOTATION,
  backdateMs,
  planCertificates,
  rolloverLeadMs,
  validateLifecycleConfig,
  type LifecycleConfig,
  type Plan,
  type SecretState,
  type WriteKind,
} from '../../../src/operator/certificates/plan.js';

const S = 1000;
const H = 3_600_000;
/** The fake clock's origin; far from the real date, so nothing passes by accident of wall time. */
const T0 = Date.parse('2031-03-01T00:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms);
const DNS = ['keda-operator.keda.svc', 'keda-metrics-apiserver.keda.svc', 'localhost'];

const SHORT: LifecycleConfig = {
  dnsNames: DNS,
  keyAlgorithm: 'ecdsa-p256',
  caValidityMs: 60 * S,
  certValidityMs: 20 * S,
  renewBeforeMs: 5 * S,
  overlapMs: 2 * S,
};
/** What the operator runs with by default. */
const LONG: LifecycleConfig = {
  dnsNames: DNS,
  keyAlgorithm: 'ecdsa-p256',
  caValidityMs: 87_600 * H,
  certValidityMs: 8_760 * H,
  renewBeforeMs: 720 * H,
  overlapMs: 5 * 60 * S,
};

type WritePlan = Extract<Plan, { action: 'write' }>;
const EMPTY: SecretState = { data: {}, annotations: {} };

// ---------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------

function apply(state: SecretState, plan: Plan): SecretState {
  return plan.action === 'write' ? { data: plan.data, annotations: plan.annotations } : state;
}

function expectWrite(t: Test, plan: Plan, kind: WriteKind, what: string = kind): WritePlan {
  t.equal(plan.action, 'write', `${what}: a write`);
  if (plan.action !== 'write') throw new Error(`expected a ${kind} write, got none: ${plan.reason}`);
  t.equal(plan.kind, kind, `${what}: kind ${kind} (${plan.reason})`);
  return plan;
}

function expectNone(t: Test, plan: Plan, what: string): Extract<Plan, { action: 'none' }> {
  if (plan.action !== 'none') throw new Error(`${what}: expected none, got ${plan.kind}: ${plan.reason}`);
  t.pass(`${what}: nothing to do`);
  return plan;
}

const cas = (s: SecretState) => pemBlocks(s.data['ca.crt'] ?? '', 'CERTIFICATE').map((p) => new X509Certificate(p));
const leafOf = (s: SecretState) => new X509Certificate(s.data['tls.crt'] as string);
const fingerprints = (s: SecretState) => cas(s).map((c) => c.fingerprint256);
const issuedBy = (leaf: X509Certificate, ca: X509Certificate) => leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
const chainsTo = (leaf: X509Certificate, bundle: X509Certificate[]) => bundle.some((ca) => issuedBy(leaf, ca));
const validAt = (c: X509Certificate, now: Date) => c.validFromDate <= now && now <= c.validToDate;
const signingCa = (s: SecretState) => cas(s).find((c) => c.checkPrivateKey(createPrivateKey(s.data['ca.key'] as string)));
const dnsOf = (c: X509Certificate) => (c.subjectAltName ?? '').split(', ').map((e) => e.replace(/^DNS:/, ''));

/** Everything that must hold for a Secret the operator wrote, at time `now`; empty when sound. */
function problems(s: SecretState, now: Date, config: LifecycleConfig = SHORT): string[] {
  const out: string[] = [];
  const bundle = cas(s);
  const leaf = leafOf(s);
  if (bundle.length < 1 || bundle.length > 2) out.push(`ca.crt holds ${bundle.length} CAs`);
  if (!bundle.every((c) => c.ca && validAt(c, now))) out.push('ca.crt holds a non-CA or a CA not valid now');
  const signing = signingCa(s);
  if (!signing) out.push('ca.key matches no CA in ca.crt');
  if (!leaf.checkPrivateKey(createPrivateKey(s.data['tls.key'] as string))) out.push('tls.key does not match tls.crt');
  const issuer = bundle.find((ca) => issuedBy(leaf, ca));
  if (!issuer) out.push('leaf does not chain to ca.crt');
  if (issuer && leaf.validToDate > issuer.validToDate) out.push('leaf outlives its CA');
  if (!validAt(leaf, now)) out.push(`leaf not valid at ${now.toISOString()} (${leaf.validFrom} - ${leaf.validTo})`);
  if (leaf.ca) out.push('leaf is a CA');
  if (!config.dnsNames.every((n) => dnsOf(leaf).includes(n))) out.push(`leaf SANs ${leaf.subjectAltName} miss some of ${config.dnsNames}`);
  if (!['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'].every((oid) => leaf.keyUsage?.includes(oid))) out.push('leaf lacks serverAuth/clientAuth');
  return out;
}

function openssl(t: Test, s: SecretState, now: Date, label: string): void {
  const dir = t.testdir();
  const caFile = join(dir, 'ca.crt');
  const leafFile = join(dir, 'tls.crt');
  writeFileSync(caFile, s.data['ca.crt'] as string);
  writeFileSync(leafFile, s.data['tls.crt'] as string);
  for (const purpose of ['sslserver', 'sslclient']) {
    const args = ['verify', '-x509_strict', '-attime', String(Math.floor(now.getTime() / 1000)), '-purpose', purpose, '-CAfile', caFile, leafFile];
    const r = spawnSync('openssl', args, { encoding: 'utf8' });
    if (r.error) throw r.error;
    t.equal(r.status, 0, `${label}: openssl verify -purpose ${purpose}: ${r.stdout}${r.stderr}`.trim());
  }
}

async function created(config = SHORT, now = at(0)): Promise<SecretState> {
  return apply(EMPTY, await planCertificates(EMPTY, config, now));
}

async function foreignPair(name = 'foreign CA'): Promise<{ ca: CertificateBundle; leaf: CertificateBundle }> {
  const ca = await createCA({ commonName: name, notBefore: at(-H), notAfter: at(1000 * H) });
  const leaf = await issueCertificate(ca, {
    commonName: 'keda-ts',
    dnsNames: DNS,
    extendedUsages: ['serverAuth', 'clientAuth'],
    notBefore: at(-H),
    notAfter: at(100 * H),
  });
  return { ca, leaf };
}

interface Step {
  now: Date;
  plan: Plan;
  before: SecretState;
  after: SecretState;
}

/**
 * Runs the clock from `start` to `until` the way the controller does: plan, write, sleep until
 * nextCheckAt. At every wake-up it also checks that one millisecond earlier there was nothing to
 * do (no work is ever done early), and that the state is sound right up to that moment.
 */
async function walk(t: Test, state: SecretState, start: Date, until: Date, config = SHORT): Promise<Step[]> {
  const steps: Step[] = [];
  let now = start;
  let previousWrite: Date | undefined;
  while (now <= until) {
    const plan = await planCertificates(state, config, now);
    const after = apply(state, plan);
    steps.push({ now, plan, before: state, after });
    if (plan.action === 'write') {
      const label = `${plan.kind} at +${(now.getTime() - T0) / S}s`;
      t.same(problems(after, now, config), [], `${label}: the written Secret is sound`);
      if (plan.kind !== 'create') {
        // A component that reloaded only one of the files, in either order, still interoperates.
        const [oldLeaf, newLeaf] = [leafOf(state), leafOf(after)];
        t.ok(chainsTo(newLeaf, cas(state)), `${label}: the new leaf chains to the previous ca.crt`);
        t.ok(chainsTo(oldLeaf, cas(after)) && validAt(oldLeaf, now), `${label}: the previous leaf chains to the new ca.crt and is still valid`);
      }
      t.ok(previousWrite === undefined || previousWrite <= now, 'time moves forward');
      previousWrite = now;
    }
    t.ok(plan.nextCheckAt >= now, 'nextCheckAt is not in the past');
    const next = plan.nextCheckAt;
    if (next.getTime() > now.getTime()) {
      const justBefore = new Date(next.getTime() - 1);
      expectNone(t, await planCertificates(after, config, justBefore), `1 ms before the next check (+${(justBefore.getTime() - T0) / S}s)`);
      t.same(problems(after, justBefore, config), [], 'sound until the next check');
      // And somewhere in the middle, as a component that reloads at a random moment would see it.
      const middle = new Date(Math.floor((now.getTime() + next.getTime()) / 2));
      t.same(problems(after, middle, config), [], 'sound between checks');
    }
    state = after;
    now = next;
  }
  return steps;
}

const writes = (steps: Step[]) =>
  steps.flatMap((s) => (s.plan.action === 'write' ? [{ kind: s.plan.kind, at: (s.now.getTime() - T0) / S, step: s }] : []));

// ---------------------------------------------------------------------------
// configuration
// ---------------------------------------------------------------------------

t.test('configuration is validated', async (t) => {
  t.doesNotThrow(() => validateLifecycleConfig(SHORT));
  t.doesNotThrow(() => validateLifecycleConfig(LONG));
  // An 8 s leaf with the default 5 min overlap is allowed (the leaf then moves early).
  t.doesNotThrow(() => validateLifecycleConfig({ ...LONG, certValidityMs: 8 * S, renewBeforeMs: 3 * S }));
  t.throws(() => validateLifecycleConfig({ ...SHORT, renewBeforeMs: 20 * S }), /renewBeforeMs \(20000\) must be less than certValidityMs/);
  t.throws(() => validateLifecycleConfig({ ...SHORT, caValidityMs: 29 * S }), /caValidityMs \(29000\) must exceed .* \(29000\)/);
  t.throws(() => validateLifecycleConfig({ ...SHORT, overlapMs: 0 }), /overlapMs must be a positive/);
  t.throws(() => validateLifecycleConfig({ ...SHORT, certValidityMs: Number.NaN }), /certValidityMs must be a positive/);
  await t.rejects(planCertificates(EMPTY, { ...SHORT, renewBeforeMs: -1 }, at(0)), RangeError);
  await t.rejects(planCertificates(EMPTY, SHORT, new Date(Number.NaN)), /now must be a valid Date/);
  t.equal(rolloverLeadMs(SHORT), 29 * S);
  t.equal(backdateMs(SHORT.certValidityMs), 2 * S, 'short validity: a tenth of it');
  t.equal(backdateMs(LONG.certValidityMs), 5 * 60 * S, 'long validity: five minutes');
});

// ---------------------------------------------------------------------------
// create, adopt, renew, reissue
// ---------------------------------------------------------------------------

t.test('an empty Secret gets a CA and a leaf; the result is adopted unchanged', async (t) => {
  const now = at(0);
  const plan = expectWrite(t, await planCertificates(EMPTY, SHORT, now), 'create');
  const state = apply(EMPTY, plan);
  t.same(Object.keys(plan.data).sort(), ['ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
  t.same(plan.annotations, {}, 'no rollover annotations');
  t.same(problems(state, now), []);
  const [ca] = cas(state);
  const leaf = leafOf(state);
  t.equal(cas(state).length, 1);
  t.match(ca!.subject, /CN=keda-ts CA/);
  t.match(leaf.subject, /CN=keda-ts/);
  t.same(dnsOf(leaf), DNS);
  t.same(ca!.validToDate, at(60 * S), 'CA validity counted from now');
  t.same(ca!.validFromDate, at(-6 * S), 'CA backdated by a tenth of its validity');
  t.same(leaf.validToDate, at(20 * S));
  t.same(leaf.validFromDate, at(-2 * S), 'leaf backdated by a tenth of its validity: valid at once');
  t.same(plan.summary, { caNotAfter: [at(60 * S)], leafNotAfter: at(20 * S) });
  t.same(plan.nextCheckAt, at(15 * S), 'next: leaf renewal (before the rollover at +31 s)');
  openssl(t, state, now, 'created');

  const adopted = expectNone(t, await planCertificates(state, SHORT, at(1 * S)), 'adopt');
  t.same(adopted.nextCheckAt, at(15 * S));
  t.same(adopted.summary, plan.summary);
  t.match(adopted.reason, /certificates are valid/);

  // Other data keys and annotations are carried along.
  const withExtras: SecretState = { data: { other: 'x' }, annotations: { 'example.com/keep': 'me' } };
  const extra = expectWrite(t, await planCertificates(withExtras, SHORT, now), 'create');
  t.equal(extra.data.other, 'x');
  t.same(extra.annotations, { 'example.com/keep': 'me' });
});

t.test('a valid Secret made elsewhere is adopted', async (t) => {
  const { ca, leaf } = await foreignPair('someone else CA');
  const state: SecretState = {
    data: { 'ca.crt': ca.certPem, 'ca.key': ca.keyPem, 'tls.crt': leaf.certPem, 'tls.key': leaf.keyPem },
    annotations: {},
  };
  const plan = expectNone(t, await planCertificates(state, SHORT, at(0)), 'adopt foreign');
  t.same(plan.nextCheckAt, at(100 * H - 5 * S), 'renewal of the adopted leaf');
  // Its leaf is renewed from the adopted CA, not from a new one.
  const renewed = expectWrite(t, await planCertificates(state, SHORT, at(100 * H - 5 * S)), 'renew-leaf');
  t.equal(renewed.data['ca.crt'], ca.certPem);
  t.equal(renewed.data['ca.key'], ca.keyPem);
  t.ok(issuedBy(leafOf(apply(state, renewed)), new X509Certificate(ca.certPem)));
});

t.test('the leaf is renewed when renewBefore remains, not a millisecond before', async (t) => {
  const state = await created();
  expectNone(t, await planCertificates(state, SHORT, at(15 * S - 1)), 'at +15 s - 1 ms');
  const plan = expectWrite(t, await planCertificates(state, SHORT, at(15 * S)), 'renew-leaf');
  t.match(plan.reason, /due for renewal/);
  const after = apply(state, plan);
  t.equal(plan.data['ca.crt'], state.data['ca.crt'], 'same CA');
  t.equal(plan.data['ca.key'], state.data['ca.key'], 'same CA key');
  t.not(plan.data['tls.key'], state.data['tls.key'], 'new leaf key');
  t.same(leafOf(after).validToDate, at(35 * S));
  t.same(plan.nextCheckAt, at(30 * S));
  t.same(problems(after, at(15 * S)), []);

  // An expired leaf (operator down for a while) is renewed too.
  const late = expectWrite(t, await planCertificates(state, SHORT, at(25 * S)), 'renew-leaf', 'expired leaf');
  t.same(problems(apply(state, late), at(25 * S)), []);
});

t.test('a leaf missing SANs the configuration now wants is re-issued from the same CA', async (t) => {
  const state = await created();
  const wider = { ...SHORT, dnsNames: [...DNS, 'keda-admission-webhooks.keda.svc'] };
  const plan = expectWrite(t, await planCertificates(state, wider, at(1 * S)), 'reissue-leaf');
  t.match(plan.reason, /does not cover the DNS names keda-admission-webhooks\.keda\.svc/);
  t.equal(plan.data['ca.crt'], state.data['ca.crt'], 'CA unchanged');
  t.equal(plan.data['ca.key'], state.data['ca.key']);
  const after = apply(state, plan);
  t.same(problems(after, at(1 * S), wider), []);
  t.ok(dnsOf(leafOf(after)).includes('keda-admission-webhooks.keda.svc'));
  expectNone(t, await planCertificates(after, wider, at(2 * S)), 'then adopted');
  // Dropping a name needs nothing: the leaf still covers what is asked.
  expectNone(t, await planCertificates(state, { ...SHORT, dnsNames: ['localhost'] }, at(2 * S)), 'fewer names');
  // A wildcard SAN covers one label.
  const wildcard = await issueCertificate(
    { certPem: state.data['ca.crt'] as string, keyPem: state.data['ca.key'] as string },
    { commonName: 'keda-ts', dnsNames: ['*.keda.svc', 'localhost'], extendedUsages: ['serverAuth', 'clientAuth'], notBefore: at(0), notAfter: at(20 * S) },
  );
  const wild: SecretState = { data: { ...state.data, 'tls.crt': wildcard.certPem, 'tls.key': wildcard.keyPem }, annotations: {} };
  expectNone(t, await planCertificates(wild, SHORT, at(2 * S)), 'wildcard covers *.keda.svc');
  expectWrite(t, await planCertificates(wild, { ...SHORT, dnsNames: ['a.b.keda.svc'] }, at(2 * S)), 'reissue-leaf', 'wildcard covers one label only');
});

t.test('a leaf signed by a CA outside the bundle is re-issued from the current CA', async (t) => {
  const state = await created();
  const { leaf } = await foreignPair();
  const bad: SecretState = { data: { ...state.data, 'tls.crt': leaf.certPem, 'tls.key': leaf.keyPem }, annotations: {} };
  const plan = expectWrite(t, await planCertificates(bad, SHORT, at(1 * S)), 'reissue-leaf');
  t.match(plan.reason, /tls\.crt \(issuer "CN=foreign CA"\) is not signed by any valid CA in ca\.crt/);
  t.equal(plan.data['ca.crt'], state.data['ca.crt'], 'not a new CA');
  t.equal(plan.data['ca.key'], state.data['ca.key']);
  t.same(problems(apply(bad, plan), at(1 * S)), []);
});

// ---------------------------------------------------------------------------
// corruption
// ---------------------------------------------------------------------------

t.test('corrupt Secrets are replaced, and the reason says what was wrong', async (t) => {
  const state = await created();
  const other = await createCA({ commonName: 'other CA', notBefore: at(-H), notAfter: at(H) });
  const otherLeaf = await issueCertificate(other, { commonName: 'x', dnsNames: DNS, extendedUsages: ['serverAuth'], notBefore: at(-H), notAfter: at(H) });
  const now = at(1 * S);
  const cases: Array<{ name: string; data: Record<string, string>; reason: RegExp; now?: Date }> = [
    { name: 'garbage ca.crt', data: { 'ca.crt': 'this is not PEM' }, reason: /^ca\.crt: no PEM CERTIFICATE block found/ },
    {
      name: 'unparsable certificate in ca.crt',
      data: { 'ca.crt': '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n' },
      reason: /^ca\.crt: certificate #1 cannot be parsed/,
    },
    { name: 'missing ca.key', data: { 'ca.key': '' }, reason: /^ca\.key is missing or empty/ },
    { name: 'garbage ca.key', data: { 'ca.key': 'junk' }, reason: /^ca\.key: no parsable PEM private key/ },
    { name: 'ca.key of another CA', data: { 'ca.key': other.keyPem }, reason: /^ca\.key does not match any certificate in ca\.crt \("CN=keda-ts CA"\)/ },
    {
      name: 'ca.key matching a non-CA certificate',
      data: { 'ca.crt': otherLeaf.certPem, 'ca.key': otherLeaf.keyPem },
      reason: /^ca\.key belongs to "CN=x" in ca\.crt, which is not a CA certificate/,
    },
    { name: 'expired CA', data: {}, reason: /^the signing CA "CN=keda-ts CA" \(the one ca\.key belongs to\) expired at 2031-03-01T00:01:00\.000Z/, now: at(61 * S) },
    { name: 'tls.key of another certificate', data: { 'tls.key': otherLeaf.keyPem }, reason: /^tls\.key: private key does not match the certificate in tls\.crt/ },
    { name: 'garbage tls.key', data: { 'tls.key': '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' }, reason: /^tls\.key: no parsable PEM private key/ },
    { name: 'garbage tls.crt', data: { 'tls.crt': 'nope' }, reason: /^tls\.crt: no PEM CERTIFICATE block found/ },
    { name: 'missing tls.crt', data: { 'tls.crt': '' }, reason: /^tls\.crt is missing or empty/ },
  ];
  for (const c of cases) {
    const when = c.now ?? now;
    const bad: SecretState = { data: { ...state.data, ...c.data }, annotations: {} };
    const plan = expectWrite(t, await planCertificates(bad, SHORT, when), 'replace-corrupt', c.name);
    t.match(plan.reason, c.reason, `${c.name}: reason names the problem: ${plan.reason}`);
    const after = apply(bad, plan);
    t.same(problems(after, when), [], `${c.name}: replaced by sound certificates`);
    t.not(fingerprints(after)[0], fingerprints(state)[0], `${c.name}: a new CA`);
    t.equal(cas(after).length, 1, `${c.name}: one CA`);
    t.match(plan.reason, /; replacing the Secret's content with a new CA and serving certificate$/);
    expectNone(t, await planCertificates(after, SHORT, when), `${c.name}: the replacement is adopted`);
  }
  openssl(t, apply(state, await planCertificates({ data: { ...state.data, 'ca.crt': 'x' }, annotations: {} }, SHORT, now)), now, 'replaced');
});

// ---------------------------------------------------------------------------
// rollover
// ---------------------------------------------------------------------------

t.test('a whole life under short validities: renewals and rollovers, never a broken chain', async (t) => {
  const steps = await walk(t, EMPTY, at(0), at(130 * S));
  const log = writes(steps);
  t.same(
    log.slice(0, 11).map((w) => [w.kind, w.at]),
    [
      ['create', 0],
      ['renew-leaf', 15],
      ['renew-leaf', 30],
      // CA1 expires at +60 s; lead = 20 + 5 + 2*2 = 29 s.
      ['rollover-publish', 31],
      ['rollover-move-leaf', 33],
      ['rollover-finish', 35],
      ['renew-leaf', 48],
      // CA2 (made at +31 s) expires at +91 s: rollover from +62 s. The leaf would come due at
      // +63 s, inside the published phase, so the publish renews it from the old CA first.
      ['rollover-publish', 62],
      ['rollover-move-leaf', 64],
      ['rollover-finish', 66],
      ['renew-leaf', 79],
    ],
    'the expected sequence, each at the expected time',
  );
  t.ok(log.filter((w) => w.kind === 'rollover-finish').length >= 3, 'three rollovers within 130 s');

  // Walk every rollover's three steps.
  for (let i = 0; i < log.length; i++) {
    const w = log[i]!;
    if (w.kind !== 'rollover-publish') continue;
    const [move, finish] = [log[i + 1]!, log[i + 2]!];
    t.equal(move.kind, 'rollover-move-leaf');
    t.equal(finish.kind, 'rollover-finish');
    t.ok(move.at - w.at >= 2 && finish.at - move.at >= 2, 'each phase lasts at least overlapMs');
    const { before, after: published } = w.step;
    const oldCa = fingerprints(before);
    t.equal(oldCa.length, 1, 'one CA before');
    t.same(fingerprints(published).slice(0, 1), oldCa, 'publish: old CA first, kept');
    t.equal(fingerprints(published).length, 2, 'publish: two CAs');
    const newCa = fingerprints(published)[1]!;
    t.equal(signingCa(published)?.fingerprint256, newCa, 'publish: ca.key is the new CA key');
    t.ok(issuedBy(leafOf(published), cas(published)[0]!), 'publish: the leaf is still signed by the old CA');
    t.same(published.annotations, { [ROLLOVER_PHASE_ANNOTATION]: 'published', [ROLLOVER_SINCE_ANNOTATION]: at(w.at * S).toISOString() });
    const moved = move.step.after;
    t.same(fingerprints(moved), [oldCa[0], newCa], 'move: both CAs still trusted');
    t.ok(issuedBy(leafOf(moved), cas(moved)[1]!), 'move: the leaf is signed by the new CA');
    t.equal(moved.annotations[ROLLOVER_PHASE_ANNOTATION], 'leaf-moved');
    const done = finish.step.after;
    t.same(fingerprints(done), [newCa], 'finish: only the new CA');
    t.notOk(fingerprints(done).includes(oldCa[0]!), 'finish: the old CA is gone');
    t.same(done.annotations, {}, 'finish: annotations cleared');
    t.equal(done.data['tls.crt'], moved.data['tls.crt'], 'finish: leaf unchanged');
  }

  // The real openssl agrees at the two delicate points of the first rollover.
  const first = log.find((w) => w.kind === 'rollover-publish')!;
  openssl(t, first.step.after, first.step.now, 'published (leaf on the old CA, two CAs)');
  const moved = log.find((w) => w.kind === 'rollover-move-leaf')!;
  openssl(t, moved.step.after, moved.step.now, 'moved (leaf on the new CA, two CAs)');
  // Summary for gauges: both CAs while both are published.
  t.equal(first.step.plan.summary.caNotAfter.length, 2);
  t.same(first.step.plan.summary.caNotAfter[0], at(60 * S));
  t.same(first.step.plan.summary.caNotAfter[1], at(91 * S));
});

t.test('a restart mid-rollover continues from the recorded phase', async (t) => {
  const steps = await walk(t, EMPTY, at(0), at(31 * S));
  const publish = writes(steps).at(-1)!;
  t.equal(publish.kind, 'rollover-publish');
  const published = publish.step.after;

  // A new operator process sees the Secret some time later: it waits out the rest of the overlap.
  const waiting = expectNone(t, await planCertificates(published, SHORT, at(32 * S)), 'restart during published');
  t.same(waiting.nextCheckAt, at(33 * S), 'the move is still due at publish + overlap');
  t.match(waiting.reason, /moves to it at 2031-03-01T00:00:33\.000Z/);
  const move = expectWrite(t, await planCertificates(published, SHORT, at(33 * S)), 'rollover-move-leaf');
  const moved = apply(published, move);
  t.same(problems(moved, at(33 * S)), []);

  // Restarted long after the move was due: it moves at once, then finishes after a full overlap.
  const late = expectWrite(t, await planCertificates(published, SHORT, at(40 * S)), 'rollover-move-leaf', 'late restart');
  t.same(late.nextCheckAt, at(42 * S));

  // Restarted after the move: finishes at move + overlap.
  t.same(expectNone(t, await planCertificates(moved, SHORT, at(34 * S)), 'restart during leaf-moved').nextCheckAt, at(35 * S));
  const finish = expectWrite(t, await planCertificates(moved, SHORT, at(35 * S)), 'rollover-finish');
  t.same(fingerprints(apply(moved, finish)), fingerprints(moved).slice(1));

  // Annotations lost (or never written) with two CAs in the bundle: published since now.
  const bare: SecretState = { data: published.data, annotations: { unrelated: 'x' } };
  const republish = expectWrite(t, await planCertificates(bare, SHORT, at(32 * S)), 'rollover-publish', 'missing annotations');
  t.match(republish.reason, /holds two valid CAs but the Secret has no rollover annotations; treating the rollover as published now/);
  t.same(republish.data, published.data, 'data unchanged');
  t.same(republish.annotations, { unrelated: 'x', [ROLLOVER_PHASE_ANNOTATION]: 'published', [ROLLOVER_SINCE_ANNOTATION]: at(32 * S).toISOString() });
  t.same(republish.nextCheckAt, at(34 * S));
  const rest = await walk(t, apply(bare, republish), at(34 * S), at(40 * S));
  t.same(writes(rest).map((w) => [w.kind, w.at]), [['rollover-move-leaf', 34], ['rollover-finish', 36]], 'then the normal steps');
  t.same(rest.at(-1)!.after.annotations, { unrelated: 'x' });

  // Nonsense annotations count as missing.
  const bogus: SecretState = { data: published.data, annotations: { [ROLLOVER_PHASE_ANNOTATION]: 'halfway', [ROLLOVER_SINCE_ANNOTATION]: 'yesterday' } };
  const fixed = expectWrite(t, await planCertificates(bogus, SHORT, at(32 * S)), 'rollover-publish', 'bogus phase');
  t.match(fixed.reason, /rollover-phase="halfway" is not "published" or "leaf-moved"; treating the rollover as published now/);
  const badSince = { data: published.data, annotations: { ...published.annotations, [ROLLOVER_SINCE_ANNOTATION]: 'yesterday' } };
  t.match(expectWrite(t, await planCertificates(badSince, SHORT, at(32 * S)), 'rollover-publish', 'bogus since').reason, /rollover-since="yesterday" is not a timestamp/);
  const future = { data: published.data, annotations: { ...published.annotations, [ROLLOVER_SINCE_ANNOTATION]: at(3600 * S).toISOString() } };
  const reset = expectWrite(t, await planCertificates(future, SHORT, at(32 * S)), 'rollover-publish', 'since in the future');
  t.equal(reset.annotations[ROLLOVER_SINCE_ANNOTATION], at(32 * S).toISOString());

  // Stale annotations next to a single CA are cleared, nothing else changes.
  const single = steps.at(-2)!.after;
  t.equal(cas(single).length, 1);
  const stale = { data: single.data, annotations: { [ROLLOVER_PHASE_ANNOTATION]: 'leaf-moved', [ROLLOVER_SINCE_ANNOTATION]: at(0).toISOString() } };
  const cleared = expectWrite(t, await planCertificates(stale, SHORT, at(30 * S + 500)), 'rollover-finish', 'stale annotations');
  t.same(cleared.annotations, {});
  t.same(cleared.data, single.data);

  // Inconsistent: phase leaf-moved but the leaf still on the old CA: move it (again), do not finish.
  const wrong = { data: published.data, annotations: { [ROLLOVER_PHASE_ANNOTATION]: 'leaf-moved', [ROLLOVER_SINCE_ANNOTATION]: at(31 * S).toISOString() } };
  const remove = expectWrite(t, await planCertificates(wrong, SHORT, at(34 * S)), 'rollover-move-leaf', 'leaf-moved but leaf on old CA');
  t.equal(cas(apply(wrong, remove)).length, 2, 'the old CA stays');
  t.same(remove.annotations[ROLLOVER_SINCE_ANNOTATION], at(34 * S).toISOString());
});

t.test('leaf problems during a rollover are fixed without breaking the chain', async (t) => {
  const steps = await walk(t, EMPTY, at(0), at(31 * S));
  const published = writes(steps).at(-1)!.step.after;
  // A SAN change while published: the leaf can only come from the new CA now (the old key is gone).
  const wider = { ...SHORT, dnsNames: [...DNS, 'extra.keda.svc'] };
  const plan = expectWrite(t, await planCertificates(published, wider, at(32 * S)), 'reissue-leaf');
  const after = apply(published, plan);
  t.same(problems(after, at(32 * S), wider), []);
  t.equal(cas(after).length, 2, 'both CAs stay');
  t.same(after.annotations[ROLLOVER_PHASE_ANNOTATION], 'leaf-moved', 'the leaf has moved; the old CA stays a full overlap');
  const rest = await walk(t, after, at(32 * S), at(36 * S), wider);
  t.same(writes(rest).map((w) => [w.kind, w.at]), [['rollover-finish', 34]]);
  // Corrupt tls.key while published: replaced like any corruption, and the rollover state goes with it.
  const corrupt = { data: { ...published.data, 'tls.key': 'junk' }, annotations: published.annotations };
  const fixed = expectWrite(t, await planCertificates(corrupt, SHORT, at(32 * S)), 'replace-corrupt');
  t.equal(cas(apply(corrupt, fixed)).length, 1);
  t.same(fixed.annotations, {});
});

t.test('a late start: rollover due and leaf due together; a leaf never outlives its CA', async (t) => {
  const state = await created();
  // At +50 s the leaf (to +20 s) has expired and CA1 (to +60 s) is inside its rollover lead.
  const plan = expectWrite(t, await planCertificates(state, SHORT, at(50 * S)), 'rollover-publish');
  t.match(plan.reason, /renewing the serving certificate from the old CA/);
  const after = apply(state, plan);
  t.same(problems(after, at(50 * S)), []);
  const [oldCa, newCa] = cas(after);
  t.ok(issuedBy(leafOf(after), oldCa!), 'renewed from the old CA, which every peer already trusts');
  t.same(leafOf(after).validToDate, oldCa!.validToDate, 'capped at the old CA notAfter (+60 s), not +70 s');
  t.ok(newCa!.validToDate > oldCa!.validToDate);

  // Even later: the capped leaf is due at once, so it moves to the new CA early rather than expire.
  const late = expectWrite(t, await planCertificates(state, SHORT, at(56 * S)), 'rollover-publish');
  t.same(late.nextCheckAt, at(56 * S), 'follow-up due at once');
  const early = expectWrite(t, await planCertificates(apply(state, late), SHORT, at(56 * S)), 'rollover-move-leaf');
  t.match(early.reason, /early/);
  t.same(problems(apply(apply(state, late), early), at(56 * S)), []);
});

t.test('odd bundles are brought back to at most two CAs without breaking the leaf', async (t) => {
  const state = await created();
  const [a, b] = await Promise.all([
    createCA({ commonName: 'stray A', notBefore: at(-H), notAfter: at(H) }),
    createCA({ commonName: 'stray B', notBefore: at(-H / 2), notAfter: at(H) }),
  ]);
  const expired = await createCA({ commonName: 'long gone', notBefore: at(-2 * H), notAfter: at(-H) });
  const three: SecretState = { data: { ...state.data, 'ca.crt': a.certPem + expired.certPem + state.data['ca.crt'] + b.certPem }, annotations: {} };
  const plan = expectWrite(t, await planCertificates(three, SHORT, at(1 * S)), 'rollover-publish', 'three valid CAs');
  t.match(plan.reason, /holds 3 valid CAs; keeping only the signing CA "CN=keda-ts CA" and "CN=stray B"/);
  const after = apply(three, plan);
  t.same(problems(after, at(1 * S)), []);
  t.same(cas(after).map((c) => c.subject), ['CN=stray B', 'CN=keda-ts CA'], 'expired and surplus CAs dropped');
  const rest = await walk(t, after, at(1 * S), at(10 * S));
  t.same(fingerprints(rest.at(-1)!.after), fingerprints(state), 'ends with the signing CA alone');

  // ca.key belonging to the older of two CAs, leaf on the newer: the older one signs from now on,
  // the leaf moves to it with overlap, and the newer one is retired.
  const newer = await createCA({ commonName: 'newer CA', notBefore: at(0), notAfter: at(60 * S) });
  const leafOnNewer = await issueCertificate(newer, { commonName: 'keda-ts', dnsNames: DNS, extendedUsages: ['serverAuth', 'clientAuth'], notBefore: at(0), notAfter: at(20 * S) });
  const swapped: SecretState = {
    data: { ...state.data, 'ca.crt': state.data['ca.crt'] + newer.certPem, 'tls.crt': leafOnNewer.certPem, 'tls.key': leafOnNewer.keyPem },
    annotations: {},
  };
  const life = await walk(t, swapped, at(1 * S), at(10 * S));
  t.same(writes(life).map((w) => [w.kind, w.at]), [['rollover-publish', 1], ['rollover-move-leaf', 3], ['rollover-finish', 5]]);
  t.same(fingerprints(life.at(-1)!.after), fingerprints(state));

  // A stale expired CA next to the valid one is left alone until the next write, then dropped.
  const withExpired: SecretState = { data: { ...state.data, 'ca.crt': expired.certPem + state.data['ca.crt'] }, annotations: {} };
  const none = expectNone(t, await planCertificates(withExpired, SHORT, at(1 * S)), 'expired extra CA');
  t.same(none.summary.caNotAfter, [at(60 * S)], 'the gauge shows only trusted CAs');
  const renew = expectWrite(t, await planCertificates(withExpired, SHORT, at(15 * S)), 'renew-leaf');
  t.same(fingerprints(apply(withExpired, renew)), fingerprints(state), 'expired CA dropped on write');
});

t.test('default (long) validities: ten years of renewals and a rollover, no overflow', async (t) => {
  const state = await created(LONG);
  const ca = cas(state)[0]!;
  const leaf = leafOf(state);
  t.same(ca.validToDate, at(87_600 * H));
  t.same(ca.validFromDate, at(-5 * 60 * S), 'backdated five minutes');
  t.same(leaf.validToDate, at(8_760 * H));
  const first = expectNone(t, await planCertificates(state, LONG, at(1 * S)), 'adopt');
  t.same(first.nextCheckAt, at(8_040 * H), 'renewal 720 h before expiry');
  const rolloverAt = 87_600 * H - rolloverLeadMs(LONG);
  const steps = await walk(t, state, at(1 * S), at(rolloverAt + 60 * 60 * S), LONG);
  const log = writes(steps);
  t.same(log.slice(-3).map((w) => w.kind), ['rollover-publish', 'rollover-move-leaf', 'rollover-finish']);
  t.same(log.at(-3)!.step.now, at(rolloverAt), 'rollover starts 8760 h + 720 h + 10 min before the CA expires');
  t.same(log.at(-2)!.step.now, at(rolloverAt + 5 * 60 * S));
  t.same(log.at(-1)!.step.now, at(rolloverAt + 10 * 60 * S));
  t.ok(log.slice(0, -3).every((w) => w.kind === 'renew-leaf'), 'only renewals before that');
  // 720 h before each 8760 h leaf expires: every 8040 h, nine times before the rollover at ~78120 h.
  t.equal(log.length - 3, 9, 'nine renewals in those years');
  openssl(t, log.at(-2)!.step.after, log.at(-2)!.step.now, 'long validity, leaf moved');
});
