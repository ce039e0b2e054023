import type pg from 'pg';
import type { Logger } from 'pino';
import type { PartnerIdentity } from '../tls/identity.ts';

/** What one partner may read: every SLU, or the listed ones. `none` when it has no grant at all. */
export interface Access {
  readonly all: boolean;
  readonly slus: ReadonlySet<number>;
}

export const NO_ACCESS: Access = Object.freeze({ all: false, slus: new Set<number>() });

export function hasAnyAccess(a: Access): boolean {
  return a.all || a.slus.size > 0;
}

export function mayRead(a: Access, sluId: number): boolean {
  return a.all || a.slus.has(sluId);
}

/** 'sha256:<hex>' for a fingerprint as Node prints it (AB:CD:...) or as an operator types it. */
export function fingerprintName(fp: string): string {
  return 'sha256:' + fp.replace(/^sha256:/i, '').replace(/:/g, '').toLowerCase();
}

/**
 * True for a name spelled the way operators write a pin ('sha256:…' in any case, or AB:CD:… with 32 bytes):
 * `partnerName` stores those as 'sha256:<hex>' rows, so a certificate CN spelled so must never be looked up as a
 * name, or its subject could choose another certificate's pinned grants.
 */
export function isPinSpelling(name: string): boolean {
  return /^\s*sha256:/i.test(name) || /^\s*([0-9a-f]{2}:){31}[0-9a-f]{2}\s*$/i.test(name);
}

/**
 * The grant names a certificate answers to: its fingerprint, and its CN unless that is spelled like a pin
 * (identityOf refuses such certificates already; this keeps pins and names apart should it ever not).
 */
export function namesOf(p: PartnerIdentity): string[] {
  return namesOfParts(p.cn, p.fingerprint256);
}

function namesOfParts(cn: string, fingerprint256: string): string[] {
  const pin = fingerprintName(fingerprint256);
  return isPinSpelling(cn) ? [pin] : [cn, pin];
}

function namesOfKey(key: string): string[] {
  const bar = key.indexOf('|');
  return namesOfParts(key.slice(bar + 1), key.slice(0, bar));
}

const ACCESS_SQL = `select bool_or(slu_id is null) as all, coalesce(array_agg(slu_id) filter (where slu_id is not null), '{}') as slus
  from sluice_partner_grant where partner = any($1::text[])`;

interface Entry {
  readonly names: readonly string[];
  promise: Promise<Access>;
}

/**
 * Grants per partner, loaded on first use and kept until the database says they changed (NOTIFY on
 * sluice_grant, see the migration) or the LISTEN connection was lost (everything is reloaded then, since
 * notifications may have been missed). Holders of an Access (stream sessions) register with `watch` and are
 * told the new Access after each change.
 */
export class Grants {
  private readonly byKey = new Map<string, Entry>();
  private readonly watchers = new Map<string, Set<(a: Access | null) => void>>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly log: Logger,
  ) {}

  /** Fingerprint first: it never contains '|', so the CN (which may contain anything) is all after the first one. */
  private static key(p: PartnerIdentity): string {
    return p.fingerprint256 + '|' + p.cn;
  }

  /** The partner's current access (a cached promise: one query per partner until its grants change). */
  accessOf(p: PartnerIdentity): Promise<Access> {
    const key = Grants.key(p);
    let e = this.byKey.get(key);
    if (!e) {
      e = { names: namesOf(p), promise: this.load(namesOf(p)) };
      this.byKey.set(key, e);
      const entry = e;
      // A failed load (database down) is not cached: the next request tries again.
      e.promise.catch(() => this.byKey.get(key) === entry && this.byKey.delete(key));
    }
    return e.promise;
  }

  private async load(names: readonly string[]): Promise<Access> {
    const res = await this.pool.query<{ all: boolean | null; slus: number[] }>({ name: 'sluice_grants', text: ACCESS_SQL, values: [names] });
    const row = res.rows[0];
    return Object.freeze({ all: row?.all === true, slus: new Set(row?.slus ?? []) });
  }

  /** Identities with a watcher (connected stream clients' partners): for leak checks. */
  get watching(): number {
    return this.watchers.size;
  }

  /**
   * Calls `fn` with the partner's new access after each change of its grants, or with null when they changed and
   * could not be read (the holder must stop using its old access). Returns the unwatch function.
   */
  watch(p: PartnerIdentity, fn: (a: Access | null) => void): () => void {
    const key = Grants.key(p);
    let set = this.watchers.get(key);
    if (!set) this.watchers.set(key, (set = new Set()));
    set.add(fn);
    return () => {
      set.delete(fn);
      if (set.size === 0 && this.watchers.get(key) === set) this.watchers.delete(key);
    };
  }

  /**
   * A grant of `partner` (a CN or 'sha256:…' name) changed; undefined = anything may have changed. Settles (never
   * rejects) once every watcher has been given the reloaded grants (or null).
   */
  changed(partner?: string): Promise<void> {
    const affected = new Set<string>();
    for (const key of [...this.byKey.keys(), ...this.watchers.keys()]) {
      if (partner === undefined || namesOfKey(key).includes(partner)) affected.add(key);
    }
    if (affected.size === 0) return Promise.resolve();
    const applied: Array<Promise<void>> = [];
    this.log.info({ partner: partner ?? '*', identities: affected.size }, 'grants changed; reloading');
    for (const key of affected) {
      const names = namesOfKey(key);
      const cn = key.slice(key.indexOf('|') + 1);
      const entry: Entry = { names, promise: this.load(names) };
      this.byKey.set(key, entry);
      const done = entry.promise.then(
        (access) => {
          if (this.byKey.get(key) !== entry) return; // a newer change is already loading
          for (const fn of this.watchers.get(key) ?? []) fn(access);
        },
        (err: Error) => {
          if (this.byKey.get(key) !== entry) return; // a newer change is already loading
          this.byKey.delete(key);
          // Fail closed: the grants changed and what they are now is unknown (a revoke must not keep streaming).
          // Watchers are told `null`: streams close with 1013 and resume with their cursor once grants can be
          // read again (the upgrade reads them afresh); REST reloads on its next request.
          this.log.warn({ partner: cn, err: err.message }, 'could not reload grants after a change; closing the partner\'s streams');
          for (const fn of this.watchers.get(key) ?? []) fn(null);
        },
      );
      applied.push(done.catch(() => undefined));
    }
    return Promise.all(applied).then(() => undefined);
  }
}
