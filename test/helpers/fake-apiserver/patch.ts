// The patch formats kube-apiserver accepts: JSON merge patch (RFC 7386), JSON patch (RFC 6902), and a
// strategic merge patch that knows the merge keys of the list fields our built-in types use.
import { ApiStatusError, badRequest } from './status.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
export const clone = <T>(v: T): T => (v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T));

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return clone(patch);
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Strategic merge patch (the subset of directives clients send)
// ---------------------------------------------------------------------------

const DELETE = Symbol('delete');

export function strategicMergePatch(target: unknown, patch: unknown, keys: Record<string, string>): unknown {
  const r = smp(target, patch, [], keys);
  return r === DELETE ? {} : r;
}

function smp(target: unknown, patch: unknown, path: string[], keys: Record<string, string>): unknown {
  if (!isObject(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return clone(rest);
  }
  if (patch.$patch === 'delete') return DELETE;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k.startsWith('$setElementOrder/') || k === '$retainKeys') continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      if (Array.isArray(out[field]) && Array.isArray(v)) out[field] = (out[field] as unknown[]).filter((x) => !v.some((d) => deepEqual(d, x)));
      continue;
    }
    const p = [...path, k];
    if (v === null) delete out[k];
    else if (Array.isArray(v)) out[k] = mergeList(out[k], v, p, keys);
    else {
      const r = smp(out[k], v, p, keys);
      if (r === DELETE) delete out[k];
      else out[k] = r;
    }
  }
  return out;
}

function mergeList(target: unknown, patch: unknown[], path: string[], keys: Record<string, string>): unknown[] {
  const key = keys[path.join('.')];
  const base = Array.isArray(target) ? [...(target as unknown[])] : [];
  if (key === undefined) return clone(patch).filter((x) => !(isObject(x) && x.$patch !== undefined));
  if (key === '') {
    for (const v of patch) if (!base.some((b) => deepEqual(b, v))) base.push(clone(v));
    return base;
  }
  for (const item of patch) {
    if (!isObject(item)) continue;
    const i = base.findIndex((b) => isObject(b) && deepEqual(b[key], item[key]));
    if (item.$patch === 'delete') {
      if (i >= 0) base.splice(i, 1);
      continue;
    }
    if (i >= 0) base[i] = smp(base[i], item, path, keys);
    else {
      const { $patch: _, ...rest } = item;
      base.push(clone(rest));
    }
  }
  return base;
}

// ---------------------------------------------------------------------------
// JSON patch
// ---------------------------------------------------------------------------

interface Op {
  op: string;
  path: string;
  from?: string;
  value?: unknown;
}

/** 422 with the library's error, as kube-apiserver answers a JSON patch that does not apply. */
const applyError = (message: string) =>
  new ApiStatusError(422, 'Invalid', `the server rejected our request due to an error in our request: ${message}`, { causes: [{ reason: 'UnexpectedServerResponse', message }] });

function pointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw applyError(`invalid JSON pointer: "${p}"`);
  return p
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: Json, tokens: string[], p: string): { parent: Json; last: string } {
  let cur: Json = doc;
  for (const t of tokens.slice(0, -1)) {
    if (Array.isArray(cur)) cur = cur[Number(t)] as Json;
    else if (isObject(cur)) cur = (cur as JsonObject)[t] as Json;
    else cur = undefined as unknown as Json;
    if (cur === undefined) throw applyError(`doc is missing path: "${p}": missing value`);
  }
  return { parent: cur, last: tokens[tokens.length - 1]! };
}

function getAt(doc: Json, p: string): Json {
  const tokens = pointer(p);
  if (tokens.length === 0) return doc;
  const { parent, last } = parentOf(doc, tokens, p);
  const v = Array.isArray(parent) ? parent[Number(last)] : isObject(parent) ? (parent as JsonObject)[last] : undefined;
  if (v === undefined) throw applyError(`doc is missing path: "${p}": missing value`);
  return v;
}

function arrayIndex(arr: Json[], last: string, p: string, forAdd: boolean): number {
  if (forAdd && last === '-') return arr.length;
  if (!/^(0|[1-9]\d*)$/.test(last)) throw applyError(`invalid array index "${last}" in "${p}"`);
  const i = Number(last);
  if (i > arr.length || (!forAdd && i === arr.length)) throw applyError(`index out of bounds: ${i} in "${p}"`);
  return i;
}

function addAt(doc: Json, p: string, value: Json): Json {
  const tokens = pointer(p);
  if (tokens.length === 0) return value;
  const { parent, last } = parentOf(doc, tokens, p);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, p, true), 0, value);
  else if (isObject(parent)) (parent as JsonObject)[last] = value;
  else throw applyError(`doc is missing path: "${p}": missing value`);
  return doc;
}

function removeAt(doc: Json, p: string): Json {
  const tokens = pointer(p);
  const { parent, last } = parentOf(doc, tokens, p);
  if (Array.isArray(parent)) parent.splice(arrayIndex(parent, last, p, false), 1);
  else if (isObject(parent) && last in parent) delete (parent as JsonObject)[last];
  else throw applyError(`unable to remove nonexistent key: ${last}: missing value`);
  return doc;
}

export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  let doc = clone(target) as Json;
  for (const raw of ops as Op[]) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') throw badRequest(`invalid JSON patch operation: ${JSON.stringify(raw)}`);
    const value = clone(raw.value) as Json;
    switch (raw.op) {
      case 'add':
        doc = addAt(doc, raw.path, value);
        break;
      case 'remove':
        doc = removeAt(doc, raw.path);
        break;
      case 'replace':
        getAt(doc, raw.path);
        if (pointer(raw.path).length === 0) doc = value;
        else doc = addAt(removeAt(doc, raw.path), raw.path, value);
        break;
      case 'move': {
        const v = clone(getAt(doc, raw.from ?? ''));
        doc = addAt(removeAt(doc, raw.from ?? ''), raw.path, v);
        break;
      }
      case 'copy':
        doc = addAt(doc, raw.path, clone(getAt(doc, raw.from ?? '')));
        break;
      case 'test':
        if (!deepEqual(getAt(doc, raw.path), value)) throw applyError(`testing value ${raw.path} failed: test failed`);
        break;
      default:
        throw badRequest(`Unexpected kind: ${raw.op}`);
    }
  }
  return doc;
}
