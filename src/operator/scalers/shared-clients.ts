// Connections to an upstream, shared by every scaler that connects to it the same way: a thousand
// ScaledObjects reading one Redis hold one connection, not a thousand. "The same way" is an
// identity the scaler builds from everything that shapes the connection (address, database,
// user, password, TLS material), kept only as a hash, plus the trust bundle it was made with: when
// the --ca-dir trust changes, the next use leases a client made with the new trust, and the old
// client goes once its last user has moved on.
//
// A client whose last user leaves lingers a little before it is closed: the metrics engine
// rebuilds a failing trigger's scaler (close, then build), and that must not cost a reconnect.
import { createHash } from 'node:crypto';
import type { CustomCaTrust } from '../../tls/custom-ca.js';

interface Entry<C> {
  client: C;
  users: number;
  linger: NodeJS.Timeout | undefined;
}

export interface SharedClientsOptions<C> {
  close(client: C): void;
  /** How long a client with no users stays open (default 10 s). */
  lingerMs?: number;
}

/** A pool of clients by identity, each counted by its users. */
export class SharedClients<C> {
  private readonly entries = new Map<string, Entry<C>>();

  constructor(private readonly o: SharedClientsOptions<C>) {}

  /** Clients open now, lingering ones included. */
  get size(): number {
    return this.entries.size;
  }

  /** The client for this identity (made by `create` when there is none); `release` once done with it. */
  acquire(identity: string, create: () => C): { client: C; release(): void } {
    const key = hash(identity);
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { client: create(), users: 0, linger: undefined };
      this.entries.set(key, entry);
    }
    const mine = entry;
    clearTimeout(mine.linger);
    mine.linger = undefined;
    mine.users++;
    let released = false;
    return {
      client: mine.client,
      release: () => {
        if (released) return;
        released = true;
        if (--mine.users > 0) return;
        mine.linger = setTimeout(() => this.drop(key, mine), this.o.lingerMs ?? 10_000);
        mine.linger.unref();
      },
    };
  }

  /** Closes a client now and forgets it (it broke beyond repair); its users lease a new one on their next use. */
  discard(client: C): void {
    for (const [key, entry] of this.entries) if (entry.client === client) this.drop(key, entry);
  }

  private drop(key: string, entry: Entry<C>): void {
    clearTimeout(entry.linger);
    if (this.entries.get(key) === entry) this.entries.delete(key);
    this.o.close(entry.client);
  }
}

/**
 * One scaler's lease on a shared client, following the trust bundle: `get()` gives the client
 * made with the current trust, leasing a new one (and releasing the old) when the trust changed.
 * `library`, when given, is the client library, loaded at the first `get()` (see loadOnFirstUse).
 */
export class TrustedLease<C, L = undefined> {
  private lease: { client: C; release(): void } | undefined;
  private leasedWith: string | undefined;
  private closed = false;

  constructor(
    private readonly pool: SharedClients<C>,
    private readonly trust: CustomCaTrust,
    /** Everything that shapes the connection; hashed, never kept or shown. */
    private readonly identity: string,
    private readonly create: (trustBundle: string, library: L) => C,
    private readonly library?: () => Promise<L>,
  ) {}

  async get(): Promise<C> {
    const library = this.library ? await this.library() : (undefined as L);
    if (this.closed) throw new Error('the scaler is closed');
    const bundle = this.trust.caBundle();
    if (this.lease && this.leasedWith === bundle) return this.lease.client;
    const old = this.lease;
    this.lease = this.pool.acquire(`${this.identity}\0${bundle}`, () => this.create(bundle, library));
    this.leasedWith = bundle;
    old?.release();
    return this.lease.client;
  }

  close(): void {
    this.closed = true;
    this.lease?.release();
    this.lease = undefined;
  }
}

/** An identity from the parts of a connection's configuration, order-sensitive. */
export function connectionIdentity(...parts: unknown[]): string {
  return JSON.stringify(parts);
}

function hash(identity: string): string {
  return createHash('sha256').update(identity).digest('hex');
}

/**
 * A client library, imported at its first use, once: each costs an operator 10 to 25 MB when
 * loaded, and most operators use one or two of them, or none.
 */
export function loadOnFirstUse<M>(load: () => Promise<M>): () => Promise<M> {
  let loading: Promise<M> | undefined;
  return () => (loading ??= load());
}
