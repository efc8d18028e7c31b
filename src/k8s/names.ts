// Kubernetes object-name rules (k8s.io/apimachinery/pkg/util/validation), length included.

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** RFC 1123 label, at most 63 characters: namespaces, Service names, DNS labels. */
export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && LABEL.test(s);
}

/** RFC 1123 subdomain, at most 253 characters: most object names. */
export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && SUBDOMAIN.test(s);
}
