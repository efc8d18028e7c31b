// The cluster's own word on who may front-proxy and which CAs sign client certificates:
// ConfigMap kube-system/extension-apiserver-authentication, read at start-up and watched, so that
// a rotated front-proxy CA takes effect without a restart. Flags win: a CA file given on the
// command line replaces the matching part of the ConfigMap, as in Kubernetes' own servers.
import type { KubeClient } from '../../k8s/client.js';
import type { ConfigMap } from '../../k8s/types.js';
import type { Logger } from 'pino';
import { informer, type Informer } from '../../k8s/informer.js';
import { statusCodeOf } from '../../k8s/kubeconfig.js';
import type { RequestHeaderConfig } from '../config.js';

export const AUTH_CONFIGMAP_NAMESPACE = 'kube-system';
export const AUTH_CONFIGMAP_NAME = 'extension-apiserver-authentication';

export interface ClusterAuthentication {
  clientCaPem: string;
  requestHeader: Omit<RequestHeaderConfig, 'caFile'> & { caPem: string; uidHeaders: string[] };
}

export class LookupForbiddenError extends Error {
  override readonly name = 'LookupForbiddenError';
}

function jsonList(data: Record<string, string>, key: string): string[] {
  const raw = data[key];
  if (raw === undefined || raw === '') return [];
  try {
    const v = JSON.parse(raw) as unknown;
    return Array.isArray(v) ? v.map(String) : [];
  } catch {
    throw new Error(`${AUTH_CONFIGMAP_NAMESPACE}/${AUTH_CONFIGMAP_NAME}: ${key} is not a JSON list of strings`);
  }
}

export function parseAuthenticationConfigMap(cm: ConfigMap | undefined): ClusterAuthentication {
  const data = cm?.data ?? {};
  return {
    clientCaPem: data['client-ca-file'] ?? '',
    requestHeader: {
      caPem: data['requestheader-client-ca-file'] ?? '',
      allowedNames: jsonList(data, 'requestheader-allowed-names'),
      usernameHeaders: jsonList(data, 'requestheader-username-headers'),
      groupHeaders: jsonList(data, 'requestheader-group-headers'),
      extraHeaderPrefixes: jsonList(data, 'requestheader-extra-headers-prefix'),
      uidHeaders: jsonList(data, 'requestheader-uid-headers'),
    },
  };
}

/** Reads the ConfigMap once (failing clearly when RBAC forbids it), then follows its changes. */
export class ClusterAuthenticationWatch {
  private informer: Informer<ConfigMap> | undefined;

  constructor(
    private readonly client: KubeClient,
    private readonly log: Logger,
    private readonly apply: (auth: ClusterAuthentication) => void,
  ) {}

  async start(): Promise<void> {
    let cm: ConfigMap | undefined;
    try {
      cm = await this.client.get<ConfigMap>(`/api/v1/namespaces/${AUTH_CONFIGMAP_NAMESPACE}/configmaps/${AUTH_CONFIGMAP_NAME}`);
    } catch (err) {
      const code = statusCodeOf(err);
      if (code === 403) {
        throw new LookupForbiddenError(
          `cannot read ConfigMap ${AUTH_CONFIGMAP_NAMESPACE}/${AUTH_CONFIGMAP_NAME} (403 Forbidden): bind the Role "extension-apiserver-authentication-reader" in namespace ${AUTH_CONFIGMAP_NAMESPACE} to this service account with a RoleBinding, or pass --authentication-skip-lookup with the CA flags`,
          { cause: err },
        );
      }
      if (code !== 404) throw new Error(`cannot read ConfigMap ${AUTH_CONFIGMAP_NAMESPACE}/${AUTH_CONFIGMAP_NAME}: ${(err as Error).message}`, { cause: err });
      this.log.warn(`ConfigMap ${AUTH_CONFIGMAP_NAMESPACE}/${AUTH_CONFIGMAP_NAME} does not exist: no cluster-provided client CAs until it appears`);
    }
    this.apply(parseAuthenticationConfigMap(cm));

    this.informer = informer<ConfigMap>({
      client: this.client,
      path: `/api/v1/namespaces/${AUTH_CONFIGMAP_NAMESPACE}/configmaps`,
      // RBAC grants this ConfigMap by name: list and watch must select it by name too.
      fieldSelector: `metadata.name=${AUTH_CONFIGMAP_NAME}`,
      name: `configmap ${AUTH_CONFIGMAP_NAMESPACE}/${AUTH_CONFIGMAP_NAME}`,
      log: this.log,
    });
    this.informer.onObject((obj, event) => {
      if (event === 'delete') {
        // Emptying the trust pool would lock out the aggregator; keep what was last seen.
        this.log.warn(`ConfigMap ${AUTH_CONFIGMAP_NAMESPACE}/${AUTH_CONFIGMAP_NAME} was deleted: keeping the last settings`);
        return;
      }
      try {
        this.apply(parseAuthenticationConfigMap(obj));
        this.log.info({ event }, `applied ${AUTH_CONFIGMAP_NAMESPACE}/${AUTH_CONFIGMAP_NAME}`);
      } catch (err) {
        this.log.error({ reason: (err as Error).message }, `ignoring an invalid ${AUTH_CONFIGMAP_NAME}, keeping the last good settings`);
      }
    });
    await this.informer.start();
  }

  async close(): Promise<void> {
    await this.informer?.stop();
  }
}
