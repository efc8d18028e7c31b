// AdmissionReview v1 envelopes: what is accepted as a request, what the answer looks like.
import t from 'tap';
import { AdmissionReviewError, admissionResponse, parseAdmissionReview } from '../../../src/operator/webhook/admission.js';

const review = (request: Record<string, unknown>, envelope: Record<string, unknown> = {}) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  ...envelope,
  request: {
    uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
    kind: { group: 'keda.sh', version: 'v1alpha1', kind: 'ScaledObject' },
    resource: { group: 'keda.sh', version: 'v1alpha1', resource: 'scaledobjects' },
    requestKind: { group: 'keda.sh', version: 'v1alpha1', kind: 'ScaledObject' },
    requestResource: { group: 'keda.sh', version: 'v1alpha1', resource: 'scaledobjects' },
    name: 'web',
    namespace: 'default',
    operation: 'CREATE',
    userInfo: { username: 'kubernetes-admin', uid: 'u-1', groups: ['system:masters', 'system:authenticated'] },
    object: { apiVersion: 'keda.sh/v1alpha1', kind: 'ScaledObject', metadata: { name: 'web' }, spec: {} },
    oldObject: null,
    dryRun: false,
    options: { kind: 'CreateOptions', apiVersion: 'meta.k8s.io/v1', fieldManager: 'kubectl' },
    ...request,
  },
});

t.test('a review as kube-apiserver sends it', async (t) => {
  const r = parseAdmissionReview(review({}));
  t.match(r, {
    uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
    kind: { group: 'keda.sh', version: 'v1alpha1', kind: 'ScaledObject' },
    resource: { resource: 'scaledobjects' },
    name: 'web',
    namespace: 'default',
    operation: 'CREATE',
    userInfo: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
    oldObject: null,
    dryRun: false,
  });
  t.same((r.object as { metadata: unknown }).metadata, { name: 'web' });
});

t.test('cluster-scoped and DELETE reviews: no namespace, no object', async (t) => {
  const r = parseAdmissionReview(review({ namespace: undefined, operation: 'DELETE', object: null, oldObject: { metadata: { name: 'x' } }, dryRun: true }));
  t.equal(r.namespace, undefined);
  t.equal(r.object, null);
  t.equal(r.dryRun, true);
  t.equal(parseAdmissionReview(review({ namespace: '' })).namespace, undefined, 'an empty namespace is none');
});

const malformed: [string, unknown, RegExp][] = [
  ['not an object', [1, 2], /expected a JSON object/],
  ['a string', 'hello', /expected a JSON object/],
  ['v1beta1', review({}, { apiVersion: 'admission.k8s.io/v1beta1' }), /apiVersion must be admission\.k8s\.io\/v1 \(got "admission\.k8s\.io\/v1beta1"\)/],
  ['another kind', review({}, { kind: 'TokenReview' }), /kind must be AdmissionReview/],
  ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, /request is required/],
  ['no uid', review({ uid: undefined }), /request\.uid is required/],
  ['empty uid', review({ uid: '' }), /request\.uid must not be empty/],
  ['a number uid', review({ uid: 7 }), /request\.uid must be a string/],
  ['an unknown operation', review({ operation: 'PATCH' }), /request\.operation must be one of CREATE, UPDATE, DELETE, CONNECT/],
  ['no kind', review({ kind: undefined }), /request\.kind is required/],
  ['a kind without version', review({ kind: { group: 'keda.sh', kind: 'ScaledObject' } }), /request\.kind\.version is required/],
  ['no resource', review({ resource: undefined }), /request\.resource is required/],
  ['CREATE without object', review({ object: null }), /request\.object is required for CREATE/],
  ['an object that is a list', review({ object: [] }), /request\.object must be an object or null/],
  ['dryRun as a string', review({ dryRun: 'yes' }), /request\.dryRun must be true or false/],
  ['userInfo as a string', review({ userInfo: 'admin' }), /request\.userInfo must be an object/],
];
for (const [name, body, message] of malformed) {
  t.test(`malformed: ${name}`, async (t) => {
    t.throws(() => parseAdmissionReview(body), AdmissionReviewError);
    t.throws(() => parseAdmissionReview(body), { message: /^malformed AdmissionReview: / });
    t.throws(() => parseAdmissionReview(body), { message });
  });
}

t.test('the answer', async (t) => {
  t.same(admissionResponse('abc', { allowed: true, warnings: [] }), {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: 'abc', allowed: true },
  }, 'allowed: no status, no warnings');
  t.same(admissionResponse('abc', { allowed: false, message: 'min > max', warnings: ['spec.fallback is not supported'] }), {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: 'abc', allowed: false, status: { code: 403, reason: 'Forbidden', message: 'min > max' }, warnings: ['spec.fallback is not supported'] },
  }, 'denied: 403 Status, as controller-runtime answers');
  const [w] = admissionResponse('u', { allowed: true, warnings: [`line one\nline two ${'x'.repeat(300)}`] }).response.warnings ?? [];
  t.notMatch(w, /\n/, 'a warning stays on one line (it travels as an HTTP header)');
  t.equal(w?.length, 256, 'and within 256 characters');
});
