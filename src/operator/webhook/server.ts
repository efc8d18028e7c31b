// The operator's validating admission webhooks over HTTPS, at KEDA's paths, for kube-apiserver:
// TLS 1.3 only, serving the operator's certificate (the one the gRPC service serves, from the
// same LiveTls), which is reloaded live: a rotated certificate is used by the next handshake.
//
// Client certificates: kube-apiserver calls webhooks WITHOUT one unless its admission
// configuration gives it one (AdmissionConfiguration `kubeConfigFile`), so none is requested by
// default. Anyone who can reach the port can therefore ask for a verdict; a verdict only says what
// the rules say about the object sent, changes nothing and reveals nothing else (the objects hold
// no Secret values), and the body limit bounds the work. `clientTrust` turns verification on for
// clusters whose API server does present one.
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { StatusError, badRequest, methodNotAllowed, notFound } from '../../k8s/status.js';
import type { AdmissionMetrics } from '../../observability/metrics.js';
import { CustomCaTrust } from '../../tls/custom-ca.js';
import { followLiveTls } from '../../tls/live-server.js';
import type { LiveTls } from '../../tls/live-tls.js';
import { AdmissionReviewError, admissionResponse, parseAdmissionReview, type AdmissionRequest, type Verdict } from './admission.js';
import { WEBHOOK_KINDS, isKindOf, validateRequest, type ScaledObjectView, type ValidationDeps, type WebhookResource } from './validate.js';
import { listenHost, parseBindAddress } from '../../config/bind-address.js';

/** KEDA's webhook paths (controller-runtime's `/validate-<group>-<version>-<kind>`), one per resource. */
export const WEBHOOK_PATHS: Readonly<Record<WebhookResource, string>> = {
  scaledobjects: '/validate-keda-sh-v1alpha1-scaledobject',
  triggerauthentications: '/validate-keda-sh-v1alpha1-triggerauthentication',
  clustertriggerauthentications: '/validate-keda-sh-v1alpha1-clustertriggerauthentication',
  scaledjobs: '/validate-keda-sh-v1alpha1-scaledjob',
};

/**
 * An UPDATE review carries the new object (kube-apiserver takes request bodies up to 3 MiB) and
 * the stored one (etcd: 1.5 MiB) in one envelope; 7 MiB is controller-runtime's limit for the same
 * reason, so what KEDA's webhook accepts is accepted here. Larger bodies are 413.
 */
export const WEBHOOK_BODY_LIMIT = 7 * 1024 * 1024;

export interface WebhookServerOptions {
  /** `host:port`, or `:port` for every interface (e.g. `:9443`, KEDA's webhook port). */
  bindAddress: string;
  /** The operator's serving key pair; its TLS policy (TLS 1.3 only) applies here too. */
  tls: LiveTls;
  /** The ScaledObjects already admitted, for the one-workload-one-ScaledObject rule. */
  store: ScaledObjectView;
  log: Logger;
  metrics?: AdmissionMetrics;
  /**
   * The scalers' trust, so that triggers are built exactly as the metrics engine builds them.
   * Validate-only scalers never dial, so without it the system roots do.
   */
  trust?: CustomCaTrust;
  /** As the metrics engine's (`--scaler-timeout`). */
  scalerTimeoutMs: number;
  /**
   * Named bundles of `tls` a client certificate must chain to. Absent or empty (the default): no
   * client certificate is requested, which is how kube-apiserver calls webhooks unless configured.
   */
  clientTrust?: readonly string[];
  bodyLimit?: number;
}

export interface RunningWebhookServer {
  port: number;
  /** Stops accepting; reviews in flight get `graceMs` (default 10 s, kube-apiserver's timeout) to finish. */
  close(graceMs?: number): Promise<void>;
}

type Outcome = { operation: string; allowed: 'true' | 'false' | 'error' };

export async function startWebhookServer(opts: WebhookServerOptions): Promise<RunningWebhookServer> {
  const { host, port } = parseBindAddress(opts.bindAddress, 'webhook bind address');
  const clientTrust = opts.clientTrust ?? [];
  const bodyLimit = opts.bodyLimit ?? WEBHOOK_BODY_LIMIT;
  const deps: ValidationDeps = {
    existing: opts.store,
    scalers: { trust: opts.trust ?? new CustomCaTrust([], opts.log), timeoutMs: opts.scalerTimeoutMs, log: opts.log },
  };
  const app = Fastify({
    loggerInstance: opts.log as unknown as FastifyBaseLogger,
    // One line per denial is logged below; one per request would say nothing more.
    logController: new LogController({ disableRequestLogging: true }),
    https: {
      ...opts.tls.secureContextOptions(clientTrust),
      requestCert: clientTrust.length > 0,
      rejectUnauthorized: clientTrust.length > 0,
    },
    bodyLimit,
    return503OnClosing: true,
    exposeHeadRoutes: false,
    // kube-apiserver gives a webhook 10 s at most (timeoutSeconds); a slower client is not it.
    requestTimeout: 30_000,
  });
  followLiveTls(app.server, opts.tls, clientTrust);
  // JSON only: kube-apiserver sends application/json; anything else is 415, not a string to parse.
  app.removeContentTypeParser('text/plain');

  const outcomes = new WeakMap<FastifyRequest, Outcome>();

  for (const [resource, url] of Object.entries(WEBHOOK_PATHS) as [WebhookResource, string][]) {
    app.route({
      method: 'POST',
      url,
      onResponse: async (req, reply) => {
        const o = outcomes.get(req) ?? { operation: 'unknown', allowed: 'error' };
        opts.metrics?.observe(resource, o.operation, o.allowed, reply.elapsedTime / 1000);
      },
      handler: async (req, reply) => {
        let review: AdmissionRequest;
        try {
          review = parseAdmissionReview(req.body);
        } catch (err) {
          if (err instanceof AdmissionReviewError) throw badRequest(err.message);
          throw err;
        }
        outcomes.set(req, { operation: review.operation, allowed: 'error' });
        const verdict = validateRequest(resource, review, deps);
        outcomes.set(req, { operation: review.operation, allowed: verdict.allowed ? 'true' : 'false' });
        logVerdict(req, resource, review, verdict);
        return reply.code(200).type('application/json').send(admissionResponse(review.uid, verdict));
      },
    });
    app.route({
      method: ['GET', 'HEAD', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
      url,
      // Refused before any body is read.
      onRequest: async (req, reply) => {
        void reply.header('allow', 'POST');
        throw methodNotAllowed(req.method);
      },
      handler: async () => undefined,
    });
  }

  app.setNotFoundHandler(async () => {
    throw notFound(`no admission webhook at this path (served: ${Object.values(WEBHOOK_PATHS).join(', ')})`);
  });

  app.setErrorHandler(async (err: FastifyError | StatusError, req, reply) => {
    const status = toStatusError(err, bodyLimit);
    if (status.code >= 500) req.log.error({ err, path: req.url }, 'admission review failed');
    return reply.code(status.code).type('application/json').send(JSON.stringify(status.toStatus()));
  });

  await app.listen({ host: listenHost(host), port });
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  opts.log.info({ host, port: bound, paths: Object.values(WEBHOOK_PATHS), clientCertificates: clientTrust.length > 0 }, 'admission webhooks listening (HTTPS, TLS 1.3)');

  let closing: Promise<void> | undefined;
  return {
    port: bound,
    close: (graceMs = 10_000) =>
      (closing ??= (async () => {
        const force = setTimeout(() => app.server.closeAllConnections(), graceMs);
        force.unref();
        await app.close();
        clearTimeout(force);
      })()),
  };
}

/** One line per denial, naming the object and the reason; never the object itself. */
function logVerdict(req: FastifyRequest, resource: WebhookResource, review: AdmissionRequest, verdict: Verdict): void {
  const metadata = (review.object as { metadata?: { name?: unknown; namespace?: unknown } } | null)?.metadata;
  const fields = {
    resource,
    operation: review.operation,
    namespace: review.namespace ?? (typeof metadata?.namespace === 'string' ? metadata.namespace : undefined),
    name: review.name ?? (typeof metadata?.name === 'string' ? metadata.name : undefined),
    uid: review.uid,
    user: review.userInfo.username,
    dryRun: review.dryRun,
  };
  if (!verdict.allowed) {
    req.log.info({ ...fields, reason: verdict.message }, `${WEBHOOK_KINDS[resource]} denied`);
  } else if ((review.operation === 'CREATE' || review.operation === 'UPDATE') && !isKindOf(resource, review)) {
    req.log.warn(
      { ...fields, kind: `${review.kind.group}/${review.kind.version}.${review.kind.kind}` },
      `a review for another kind reached the ${WEBHOOK_KINDS[resource]} webhook and was allowed unchecked: check the webhook configuration's rules`,
    );
  } else if (verdict.warnings.length > 0) {
    req.log.debug({ ...fields, warnings: verdict.warnings }, `${WEBHOOK_KINDS[resource]} allowed with warnings`);
  }
}

function toStatusError(err: FastifyError | StatusError, bodyLimit: number): StatusError {
  if (err instanceof StatusError) return err;
  const code = err.statusCode ?? 500;
  if (code === 413) return new StatusError(413, 'RequestEntityTooLarge', `the AdmissionReview is larger than ${bodyLimit} bytes`);
  // metav1.StatusReasonUnsupportedMediaType is not among ours yet; the code says it.
  if (code === 415) return new StatusError(415, 'BadRequest', `unsupported media type ${JSON.stringify(String(err.message).replace(/^Unsupported Media Type:?\s*/i, ''))}: send the AdmissionReview as application/json`);
  if (code >= 400 && code < 500) return badRequest(err.message);
  return new StatusError(500, 'InternalError', `Internal error occurred: ${err.message}`);
}
