// Kubernetes Status bodies, with the reasons, messages and details kube-apiserver produces
// (k8s.io/apimachinery/pkg/api/errors), so that clients see the same failures as against a cluster.

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  uid?: string;
  causes?: StatusCause[];
  retryAfterSeconds?: number;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, unknown>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: StatusDetails;
  code: number;
}

/** Thrown anywhere in the fake (or by a test's callback) to answer with this Status. */
export class ApiStatusError extends Error {
  override readonly name = 'ApiStatusError';
  constructor(
    readonly code: number,
    readonly reason: string | undefined,
    message: string,
    readonly details?: StatusDetails,
    /** Extra response headers, e.g. Retry-After. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  toStatus(): Status {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      ...(this.reason ? { reason: this.reason } : {}),
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

/** A resource as Kubernetes names it in messages: "configmaps", "scaledobjects.keda.sh". */
export interface GroupResource {
  group: string;
  resource: string;
}

export const qualified = (gr: GroupResource): string => (gr.group ? `${gr.resource}.${gr.group}` : gr.resource);
const groupDetail = (group: string) => (group ? { group } : {});

export function notFound(gr: GroupResource, name: string): ApiStatusError {
  return new ApiStatusError(404, 'NotFound', `${qualified(gr)} "${name}" not found`, { name, ...groupDetail(gr.group), kind: gr.resource });
}

export function alreadyExists(gr: GroupResource, name: string): ApiStatusError {
  return new ApiStatusError(409, 'AlreadyExists', `${qualified(gr)} "${name}" already exists`, { name, ...groupDetail(gr.group), kind: gr.resource });
}

export const OPTIMISTIC_LOCK_MESSAGE = 'the object has been modified; please apply your changes to the latest version and try again';

export function conflict(gr: GroupResource, name: string, why: string = OPTIMISTIC_LOCK_MESSAGE): ApiStatusError {
  return new ApiStatusError(409, 'Conflict', `Operation cannot be fulfilled on ${qualified(gr)} "${name}": ${why}`, {
    name,
    ...groupDetail(gr.group),
    kind: gr.resource,
  });
}

export interface FieldError {
  /** FieldValueRequired, FieldValueInvalid, FieldValueForbidden, ... */
  type: 'FieldValueRequired' | 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueNotSupported' | 'FieldValueDuplicate';
  field: string;
  /** The part after "Invalid value: ...: " or the whole detail for Required. */
  detail: string;
  value?: unknown;
}

function fieldErrorMessage(e: FieldError): string {
  switch (e.type) {
    case 'FieldValueRequired':
      return `Required value${e.detail ? `: ${e.detail}` : ''}`;
    case 'FieldValueForbidden':
      return `Forbidden${e.detail ? `: ${e.detail}` : ''}`;
    case 'FieldValueInvalid':
      return `Invalid value: ${formatValue(e.value)}${e.detail ? `: ${e.detail}` : ''}`;
    case 'FieldValueNotSupported':
      return `Unsupported value: ${formatValue(e.value)}${e.detail ? `: ${e.detail}` : ''}`;
    case 'FieldValueDuplicate':
      return `Duplicate value: ${formatValue(e.value)}`;
  }
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === undefined || v === null) return 'null';
  return JSON.stringify(v);
}

/** 422 Invalid: `ConfigMap "x" is invalid: metadata.name: Required value: ...` (group-qualified Kind, not resource). */
export function invalid(kind: { group: string; kind: string }, name: string, errs: FieldError[]): ApiStatusError {
  const parts = errs.map((e) => `${e.field}: ${fieldErrorMessage(e)}`);
  const joined = parts.length === 1 ? parts[0]! : `[${parts.join(', ')}]`;
  const qk = kind.group ? `${kind.kind}.${kind.group}` : kind.kind;
  return new ApiStatusError(422, 'Invalid', `${qk} "${name}" is invalid: ${joined}`, {
    name,
    ...groupDetail(kind.group),
    kind: kind.kind,
    causes: errs.map((e) => ({ reason: e.type, message: fieldErrorMessage(e), field: e.field })),
  });
}

export const badRequest = (message: string): ApiStatusError => new ApiStatusError(400, 'BadRequest', message);
export const unauthorized = (): ApiStatusError => new ApiStatusError(401, 'Unauthorized', 'Unauthorized');
export const methodNotAllowed = (): ApiStatusError =>
  new ApiStatusError(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {});
export const resourceNotFound = (): ApiStatusError => new ApiStatusError(404, 'NotFound', 'the server could not find the requested resource', {});
export const gone = (message: string): ApiStatusError => new ApiStatusError(410, 'Expired', message);
export const internalError = (message: string): ApiStatusError =>
  new ApiStatusError(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] });
export const unsupportedMediaType = (accepted: string[]): ApiStatusError =>
  new ApiStatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`);

/** The RBAC authorizer's wording, as kube-apiserver returns it for a denied request. */
export function forbidden(
  user: string,
  attrs: { verb: string; isResourceRequest: boolean; path: string; apiGroup: string; resource: string; subresource: string; namespace: string; name: string },
  reason = '',
): ApiStatusError {
  const suffix = reason ? `: ${reason}` : '';
  if (!attrs.isResourceRequest) {
    return new ApiStatusError(403, 'Forbidden', `forbidden: User "${user}" cannot ${attrs.verb} path "${attrs.path}"${suffix}`, {});
  }
  const res = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
  const scope = attrs.namespace ? `in the namespace "${attrs.namespace}"` : 'at the cluster scope';
  const gr = qualified({ group: attrs.apiGroup, resource: attrs.resource });
  const subject = attrs.name ? `${gr} "${attrs.name}"` : gr;
  return new ApiStatusError(
    403,
    'Forbidden',
    `${subject} is forbidden: User "${user}" cannot ${attrs.verb} resource "${res}" in API group "${attrs.apiGroup}" ${scope}${suffix}`,
    { ...(attrs.name ? { name: attrs.name } : {}), ...groupDetail(attrs.apiGroup), kind: attrs.resource },
  );
}

/** A Status for an arbitrary code, as a fault or a test callback would want it. */
export function statusFor(code: number, message?: string, reason?: string, retryAfterSeconds?: number): ApiStatusError {
  const known: Record<number, [string, string]> = {
    400: ['BadRequest', 'the server rejected our request for an unknown reason'],
    401: ['Unauthorized', 'Unauthorized'],
    403: ['Forbidden', 'forbidden'],
    404: ['NotFound', 'the server could not find the requested resource'],
    405: ['MethodNotAllowed', 'the server does not allow this method on the requested resource'],
    409: ['Conflict', 'the server reported a conflict'],
    410: ['Expired', 'the resource version is too old'],
    415: ['UnsupportedMediaType', 'the server does not support the media type'],
    422: ['Invalid', 'the server rejected our request due to an error in our request'],
    429: ['TooManyRequests', 'Too many requests, please try again later.'],
    500: ['InternalError', 'Internal error occurred: injected fault'],
    503: ['ServiceUnavailable', 'the server is currently unable to handle the request'],
    504: ['Timeout', 'the server was unable to return a response in the time allotted, but may still be processing the request'],
  };
  const [defReason, defMessage] = known[code] ?? ['', `the server responded with the status code ${code} but did not return more information`];
  const retry = retryAfterSeconds ?? (code === 429 ? 1 : undefined);
  const details: StatusDetails | undefined = retry !== undefined ? { retryAfterSeconds: retry } : undefined;
  return new ApiStatusError(code, reason ?? (defReason || undefined), message ?? defMessage, details, retry !== undefined ? { 'Retry-After': String(retry) } : {});
}
