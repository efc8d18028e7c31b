// The rules of the validating admission webhooks (KEDA's `keda-admission`), as pure functions of
// the object under review and the ScaledObjects already known. They are the rules the operator
// itself applies when it reads an object (src/operator/scaledobjects/manifest.ts, the scalers), so
// that what the API server accepts is what the operator can act on:
//
// - ScaledObject CREATE/UPDATE: the object parses (fields, min <= max, unique trigger names...),
//   every trigger builds a scaler in validate-only mode (known type, valid metadata; credentials
//   are not checked, the webhook cannot read Secrets), and no other ScaledObject in the namespace
//   scales the same workload (KEDA's rule and message).
// - ScaledJob CREATE/UPDATE: the object parses and every trigger builds in validate-only mode.
// - TriggerAuthentication / ClusterTriggerAuthentication CREATE/UPDATE: the object parses.
// - Fields KEDA has and this operator does not act on are accepted, with a warning each.
// - DELETE, CONNECT and any other kind: allowed. An UPDATE that leaves the spec as it was (labels,
//   annotations, finalizers, deletion) is allowed without a look: refusing it would fix nothing and
//   could block the removal of a finalizer from an object admitted before a rule existed (KEDA skips
//   validation on finalizer removal for the same reason).
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { CustomCaTrust } from '../../tls/custom-ca.js';
import { ManifestError, scaledObjectFromApi, triggerAuthenticationFromApi, type ScaledObjectManifest } from '../scaledobjects/manifest.js';
import type { ScaleTargetRef, ScaledObject, Trigger } from '../scaledobjects/types.js';
import { scaledJobFromApi, type ScaledJobManifest } from '../scaledjobs/manifest.js';
import { ScalerConfigError, createScaler } from '../scalers/index.js';
import type { AdmissionRequest, Verdict } from './admission.js';

/** The resources with a webhook, as in the webhook configuration's rules (and the metrics label). */
export type WebhookResource = 'scaledobjects' | 'triggerauthentications' | 'clustertriggerauthentications' | 'scaledjobs';

export const WEBHOOK_KINDS: Readonly<Record<WebhookResource, 'ScaledObject' | 'TriggerAuthentication' | 'ClusterTriggerAuthentication' | 'ScaledJob'>> = {
  scaledobjects: 'ScaledObject',
  triggerauthentications: 'TriggerAuthentication',
  clustertriggerauthentications: 'ClusterTriggerAuthentication',
  scaledjobs: 'ScaledJob',
};

const KEDA_GROUP = 'keda.sh';
const KEDA_VERSION = 'v1alpha1';

/** The ScaledObjects already admitted (the operator's store). */
export interface ScaledObjectView {
  list(): readonly ScaledObject[];
}

/** What building a scaler needs; nothing is ever dialled (validate-only). */
export interface ScalerCheck {
  trust: CustomCaTrust;
  timeoutMs: number;
  log?: Logger;
}

export interface ValidationDeps {
  existing: ScaledObjectView;
  scalers: ScalerCheck;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

const allow = (warnings: string[] = []): Verdict => ({ allowed: true, warnings });
const deny = (message: string, warnings: string[] = []): Verdict => ({ allowed: false, message, warnings });

/** Whether a request is for the kind a webhook path validates (keda.sh/v1alpha1). */
export function isKindOf(resource: WebhookResource, request: AdmissionRequest): boolean {
  const k = request.kind;
  return k.group === KEDA_GROUP && k.version === KEDA_VERSION && k.kind === WEBHOOK_KINDS[resource];
}

/** The decision for one review arriving at the webhook for `resource`. */
export function validateRequest(resource: WebhookResource, request: AdmissionRequest, deps: ValidationDeps): Verdict {
  if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return allow();
  if (!isKindOf(resource, request)) return allow();
  const object = request.object as Obj;
  if (request.operation === 'UPDATE' && unchangedOrDeleting(object, request.oldObject)) return allow();
  const named = withIdentity(object, request, resource !== 'clustertriggerauthentications');
  if (resource === 'scaledobjects') return validateScaledObject(named, deps.existing, deps.scalers);
  if (resource === 'scaledjobs') return validateScaledJob(named, deps.scalers);
  return validateTriggerAuthentication(named, WEBHOOK_KINDS[resource] as 'TriggerAuthentication' | 'ClusterTriggerAuthentication');
}

/** A ScaledObject as the API server would store it, checked against the ScaledObjects already there. */
export function validateScaledObject(object: unknown, existing: ScaledObjectView, scalers: ScalerCheck): Verdict {
  let so: ScaledObjectManifest;
  try {
    so = scaledObjectFromApi(object);
  } catch (err) {
    if (err instanceof ManifestError) return deny(err.message);
    throw err;
  }
  const warnings = [...so.unsupported];
  const problems = [...triggerProblems(so.spec.triggers, scalers)];
  const other = otherManager(so, existing);
  if (other) {
    problems.push(`the workload '${so.spec.scaleTargetRef.name}' of type '${typeOf(so.spec.scaleTargetRef)}' is already managed by the ScaledObject '${other.name}'`);
  }
  return problems.length > 0 ? deny(`ScaledObject ${so.namespace}/${so.name}: ${problems.join('; ')}`, warnings) : allow(warnings);
}

/** A ScaledJob: it parses (KEDA's fields and rules) and every trigger builds in validate-only mode. */
export function validateScaledJob(object: unknown, scalers: ScalerCheck): Verdict {
  let job: ScaledJobManifest;
  try {
    job = scaledJobFromApi(object);
  } catch (err) {
    if (err instanceof ManifestError) return deny(err.message);
    throw err;
  }
  const problems = triggerProblems(job.spec.triggers, scalers);
  return problems.length > 0 ? deny(`ScaledJob ${job.namespace}/${job.name}: ${problems.join('; ')}`, [...job.unsupported]) : allow([...job.unsupported]);
}

/** A TriggerAuthentication or ClusterTriggerAuthentication: it must parse; unsupported fields warn. */
export function validateTriggerAuthentication(object: unknown, kind: 'TriggerAuthentication' | 'ClusterTriggerAuthentication'): Verdict {
  try {
    return allow([...triggerAuthenticationFromApi(object, kind).auth.unsupported]);
  } catch (err) {
    if (err instanceof ManifestError) return deny(err.message);
    throw err;
  }
}

/** Every trigger's scaler built in validate-only mode; one message per trigger that does not build. */
function triggerProblems(triggers: readonly Trigger[], scalers: ScalerCheck): string[] {
  const problems: string[] = [];
  triggers.forEach((trigger, index) => {
    try {
      createScaler({
        triggerIndex: index,
        trigger,
        // The Secrets behind an authenticationRef are not the webhook's to read: validate-only
        // mode accepts missing credentials and still refuses invalid metadata.
        auth: {},
        trust: scalers.trust,
        timeoutMs: scalers.timeoutMs,
        validateOnly: true,
        ...(scalers.log ? { log: scalers.log } : {}),
      }).close();
    } catch (err) {
      // Anything else is a bug, not a verdict on the object: it becomes a 500 and the failurePolicy.
      if (!(err instanceof ScalerConfigError)) throw err;
      const prefix = `${trigger.type}: `;
      const message = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
      problems.push(`spec.triggers[${index}] (${trigger.type}): ${message}`);
    }
  });
  return problems;
}

/**
 * The group a scaleTargetRef's apiVersion names: what identifies a workload together with kind and
 * name (apps/v1 and apps/v1beta2 Deployments are the same objects). KEDA's defaults: apps/v1, Deployment.
 */
function targetKey(ref: ScaleTargetRef): string {
  const apiVersion = ref.apiVersion ?? 'apps/v1';
  const slash = apiVersion.indexOf('/');
  const group = slash === -1 ? '' : apiVersion.slice(0, slash);
  return `${group}\u0000${ref.kind ?? 'Deployment'}\u0000${ref.name}`;
}

/** As KEDA prints it: `apps/v1.Deployment`. */
const typeOf = (ref: ScaleTargetRef): string => `${ref.apiVersion ?? 'apps/v1'}.${ref.kind ?? 'Deployment'}`;

/**
 * Another ScaledObject of the namespace scaling the same workload. The object itself (an UPDATE)
 * is known by name. Two CREATEs racing each other can both pass, as with KEDA's webhook, which
 * reads the same kind of cache: the operator still reports the conflict on the objects.
 */
function otherManager(so: ScaledObjectManifest, existing: ScaledObjectView): ScaledObject | undefined {
  const key = targetKey(so.spec.scaleTargetRef);
  return existing
    .list()
    .filter((o) => o.namespace === so.namespace && o.name !== so.name && targetKey(o.spec.scaleTargetRef) === key)
    .sort((a, b) => a.name.localeCompare(b.name))[0];
}

/**
 * The object as it will be stored: the namespace (and a generated name) may be absent from the
 * object in a review, kube-apiserver gives them in the request.
 */
function withIdentity(object: Obj, request: AdmissionRequest, namespaced: boolean): Obj {
  if (!isObj(object.metadata)) return object;
  const metadata = { ...object.metadata };
  if (namespaced && (metadata.namespace === undefined || metadata.namespace === null || metadata.namespace === '') && request.namespace) {
    metadata.namespace = request.namespace;
  }
  if ((metadata.name === undefined || metadata.name === null || metadata.name === '') && request.name) metadata.name = request.name;
  return { ...object, metadata };
}

function unchangedOrDeleting(object: Obj, oldObject: unknown): boolean {
  const metadata = isObj(object.metadata) ? object.metadata : {};
  if (metadata.deletionTimestamp !== undefined && metadata.deletionTimestamp !== null) return true;
  return isObj(oldObject) && oldObject.spec !== undefined && isDeepStrictEqual(object.spec, oldObject.spec);
}
