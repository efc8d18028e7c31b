// Label and field selectors with the syntax and semantics of k8s.io/apimachinery/pkg/{labels,fields}.
import { badRequest } from './status.js';
import type { KubeObject } from './types.js';

type LabelRequirement =
  | { op: 'exists' | '!'; key: string }
  | { op: '=' | '!='; key: string; value: string }
  | { op: 'in' | 'notin'; key: string; values: string[] }
  | { op: 'gt' | 'lt'; key: string; value: number };

export type Matcher = (obj: KubeObject) => boolean;

const KEY = String.raw`[A-Za-z0-9][-A-Za-z0-9_./]*`;
const VALUE = String.raw`[-A-Za-z0-9_.]*`;

/** Splits on commas outside parentheses. */
function splitTopLevel(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

export function parseLabelSelector(selector: string | undefined): Matcher {
  if (selector === undefined || selector.trim() === '') return () => true;
  const reqs: LabelRequirement[] = [];
  for (const raw of splitTopLevel(selector)) {
    const part = raw.trim();
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^!\\s*(${KEY})$`).exec(part))) reqs.push({ op: '!', key: m[1]! });
    else if ((m = new RegExp(`^(${KEY})\\s+(in|notin)\\s*\\(([^)]*)\\)$`).exec(part))) {
      const values = m[3]!.split(',').map((v) => v.trim());
      if (values.some((v) => !new RegExp(`^${VALUE}$`).test(v))) throw badRequest(`unable to parse requirement: invalid label value in "${part}"`);
      reqs.push({ op: m[2] as 'in' | 'notin', key: m[1]!, values });
    } else if ((m = new RegExp(`^(${KEY})\\s*(==|=|!=)\\s*(${VALUE})$`).exec(part))) {
      reqs.push({ op: m[2] === '!=' ? '!=' : '=', key: m[1]!, value: m[3]! });
    } else if ((m = new RegExp(`^(${KEY})\\s*(>|<)\\s*(-?\\d+)$`).exec(part))) {
      reqs.push({ op: m[2] === '>' ? 'gt' : 'lt', key: m[1]!, value: Number(m[3]) });
    } else if ((m = new RegExp(`^(${KEY})$`).exec(part))) reqs.push({ op: 'exists', key: m[1]! });
    else throw badRequest(`unable to parse requirement: found '${part}', expected: identifier`);
  }
  return (obj) => {
    const labels = obj.metadata?.labels ?? {};
    return reqs.every((r) => {
      const has = Object.prototype.hasOwnProperty.call(labels, r.key);
      const v = labels[r.key];
      switch (r.op) {
        case 'exists':
          return has;
        case '!':
          return !has;
        case '=':
          return has && v === r.value;
        case '!=':
          return !has || v !== r.value;
        case 'in':
          return has && r.values.includes(v!);
        case 'notin':
          return !has || !r.values.includes(v!);
        case 'gt':
          return has && Number(v) > r.value;
        case 'lt':
          return has && Number(v) < r.value;
      }
    });
  };
}

export interface FieldSelector {
  match: Matcher;
  /** The name an equality on metadata.name pins, which Kubernetes puts in the request attributes. */
  name?: string;
}

/**
 * `fields` maps selectable field names to getters; metadata.name and metadata.namespace always work.
 * `custom` selects the error wording of CRDs versus built-in types.
 */
export function parseFieldSelector(selector: string | undefined, fields: Record<string, (o: KubeObject) => string | undefined>, custom: boolean): FieldSelector {
  if (selector === undefined || selector.trim() === '') return { match: () => true };
  const all: Record<string, (o: KubeObject) => string | undefined> = {
    'metadata.name': (o) => o.metadata?.name,
    'metadata.namespace': (o) => o.metadata?.namespace ?? '',
    ...fields,
  };
  const reqs: { field: string; neg: boolean; value: string; get: (o: KubeObject) => string | undefined }[] = [];
  let name: string | undefined;
  for (const raw of selector.split(',')) {
    const part = raw.trim();
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(part);
    if (!m) throw badRequest(`invalid selector: '${selector}'; can't understand '${part}'`);
    const [, field, op, value] = m as unknown as [string, string, string, string];
    const get = all[field];
    if (!get) {
      throw badRequest(
        custom ? `"${field}" is not a known field selector: only "metadata.name", "metadata.namespace"` : `field label not supported: ${field}`,
      );
    }
    if (field === 'metadata.name' && op !== '!=') name = value;
    reqs.push({ field, neg: op === '!=', value, get });
  }
  return { name, match: (obj) => reqs.every((r) => ((r.get(obj) ?? '') === r.value) !== r.neg) };
}
