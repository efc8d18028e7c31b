// Every error a client can see is a Kubernetes Status, built here and nowhere else.
export type StatusReason =
  | 'BadRequest'
  | 'Unauthorized'
  | 'Forbidden'
  | 'NotFound'
  | 'MethodNotAllowed'
  | 'RequestEntityTooLarge'
  | 'InternalError'
  | 'ServiceUnavailable'
  | 'Timeout';

export interface StatusDetails {
  group?: string;
  kind?: string;
  name?: string;
}

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: StatusReason;
  details?: StatusDetails;
  code: number;
}

export class StatusError extends Error {
  override readonly name = 'StatusError';
  constructor(readonly code: number, readonly reason: StatusReason, message: string, readonly details?: StatusDetails) {
    super(message);
  }

  toStatus(): Status {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

export const badRequest = (message: string): StatusError => new StatusError(400, 'BadRequest', message);
export const unauthorized = (): StatusError => new StatusError(401, 'Unauthorized', 'Unauthorized');
export const notFound = (message: string, details?: StatusDetails): StatusError => new StatusError(404, 'NotFound', message, details);
export const methodNotAllowed = (method: string): StatusError =>
  new StatusError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${method})`);
export const internalError = (message: string): StatusError => new StatusError(500, 'InternalError', `Internal error occurred: ${message}`);
export const serviceUnavailable = (message: string): StatusError => new StatusError(503, 'ServiceUnavailable', message);
export const timeout = (message: string): StatusError => new StatusError(504, 'Timeout', message);

/** The message kube-apiserver's RBAC authorizer produces, so that users recognise it. */
export function forbidden(user: string, attrs: ResourceOrPath, reason = ''): StatusError {
  const suffix = reason ? `: ${reason}` : '';
  if (attrs.kind === 'nonResource') {
    return new StatusError(403, 'Forbidden', `forbidden: User "${user}" cannot ${attrs.verb} path "${attrs.path}"${suffix}`);
  }
  const scope = attrs.namespace ? ` in the namespace "${attrs.namespace}"` : ' at the cluster scope';
  const resource = attrs.subresource ? `${attrs.resource}/${attrs.subresource}` : attrs.resource;
  return new StatusError(
    403,
    'Forbidden',
    `${attrs.resource}.${attrs.group} is forbidden: User "${user}" cannot ${attrs.verb} resource "${resource}" in API group "${attrs.group}"${scope}${suffix}`,
    { group: attrs.group, kind: attrs.resource },
  );
}

export type ResourceOrPath =
  | { kind: 'resource'; verb: string; group: string; version: string; resource: string; subresource: string; namespace: string; name: string }
  | { kind: 'nonResource'; verb: string; path: string };
