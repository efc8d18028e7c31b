// A bounded TTL cache with request coalescing, for answers kube-apiserver gives us about callers
// (TokenReview, SubjectAccessReview): identical concurrent questions become one API call, and
// answers are kept for a TTL that can differ by outcome (allowed vs denied).
export type CacheOutcome = 'hit' | 'miss' | 'coalesced';

interface Entry<V> {
  value: V;
  expires: number;
}

export class ReviewCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly inFlight = new Map<string, Promise<V>>();

  constructor(
    private readonly maxEntries: number,
    /** How long an answer stays valid; 0 disables caching for that answer. */
    private readonly ttlOf: (value: V) => number,
    private readonly now: () => number = Date.now,
  ) {}

  async get(key: string, compute: () => Promise<V>, observe?: (o: CacheOutcome) => void): Promise<V> {
    const hit = this.entries.get(key);
    if (hit && hit.expires > this.now()) {
      // Refresh recency so the bound evicts the least recently used entry.
      this.entries.delete(key);
      this.entries.set(key, hit);
      observe?.('hit');
      return hit.value;
    }
    if (hit) this.entries.delete(key);
    const pending = this.inFlight.get(key);
    if (pending) {
      observe?.('coalesced');
      return pending;
    }
    observe?.('miss');
    const p = compute().then(
      (value) => {
        this.inFlight.delete(key);
        const ttl = this.ttlOf(value);
        if (ttl > 0) this.store(key, { value, expires: this.now() + ttl });
        return value;
      },
      (err: unknown) => {
        // Failures are never cached: the next request asks again.
        this.inFlight.delete(key);
        throw err;
      },
    );
    this.inFlight.set(key, p);
    return p;
  }

  get size(): number {
    return this.entries.size;
  }

  private store(key: string, entry: Entry<V>): void {
    this.entries.set(key, entry);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }
}
