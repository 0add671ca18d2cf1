/**
 * Queues for the preview server's one model (one set of weights, one device): jobs run one at
 * a time, in the order they asked.
 *
 * `FifoMutex` is the plain form. `JobQueue` bounds how many may wait (a flood of requests
 * gets a quick "full" instead of an ever longer line) and lets a waiting job leave as soon as
 * its client goes away, so hung-up clients cost no model time and hold no place.
 */

/** Runs jobs one at a time in call order; no bound, no cancellation. */
export class FifoMutex {
  #tail: Promise<void> = Promise.resolve();
  #size = 0;

  /** Jobs running or waiting. */
  get size(): number {
    return this.#size;
  }

  /** Runs `job` after every job queued before it has settled (resolved or thrown). */
  async run<T>(job: () => Promise<T>): Promise<T> {
    const previous = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((resolve) => (release = resolve));
    this.#size++;
    try {
      await previous;
      return await job();
    } finally {
      this.#size--;
      release();
    }
  }
}

/** The queue already holds its limit of waiting jobs. */
export class QueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`the generate queue is full (${limit} requests waiting)`);
    this.name = "QueueFullError";
  }
}

/** The job's signal fired before its turn came: it never ran. */
export class CancelledWhileQueuedError extends Error {
  constructor() {
    super("request cancelled while queued");
    this.name = "CancelledWhileQueuedError";
  }
}

interface Waiter {
  start(): void;
}

/** One job at a time, in order, at most `maxWaiting` waiting; waiters leave when aborted. */
export class JobQueue {
  #running = false;
  #waiting: Waiter[] = [];
  /** Seconds the last job took: a basis for Retry-After. */
  lastJobSeconds = 0;

  constructor(readonly maxWaiting: number) {}

  /** Jobs running or waiting. */
  get size(): number {
    return this.#waiting.length + (this.#running ? 1 : 0);
  }

  /** True when a new job would be refused. */
  get full(): boolean {
    return this.#running && this.#waiting.length >= this.maxWaiting;
  }

  /**
   * Runs `job` once every job queued before it has settled. Rejects at once with
   * QueueFullError when full, and with CancelledWhileQueuedError when `signal` fires before
   * the job starts (it then gives up its place at once).
   */
  run<T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) return Promise.reject(new CancelledWhileQueuedError());
    if (this.full) return Promise.reject(new QueueFullError(this.maxWaiting));
    return new Promise<T>((resolve, reject) => {
      const execute = () => {
        signal?.removeEventListener("abort", leave);
        this.#running = true;
        const started = performance.now();
        job().then(resolve, reject).finally(() => {
          this.lastJobSeconds = (performance.now() - started) / 1000;
          this.#running = false;
          this.#next();
        });
      };
      const waiter: Waiter = { start: execute };
      const leave = () => {
        const at = this.#waiting.indexOf(waiter);
        if (at >= 0) this.#waiting.splice(at, 1);
        reject(new CancelledWhileQueuedError());
      };
      if (!this.#running) execute();
      else {
        this.#waiting.push(waiter);
        signal?.addEventListener("abort", leave, { once: true });
      }
    });
  }

  #next(): void {
    if (this.#running) return;
    this.#waiting.shift()?.start();
  }
}

/**
 * At most `limit` units (images) per client in any `windowMs`. Each client's recent grants are
 * kept until they leave the window; at most `maxClients` clients are tracked at once.
 */
export class RateLimiter {
  #grants = new Map<string, { at: number; units: number }[]>();

  constructor(
    readonly limit: number,
    readonly windowMs = 60_000,
    readonly maxClients = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Grants `units` to `client` and returns 0, or returns the seconds until it could be
   * granted (for Retry-After) and grants nothing.
   */
  take(client: string, units: number): number {
    const now = this.now();
    this.#prune(now);
    const list = this.#grants.get(client) ?? [];
    let used = list.reduce((n, g) => n + g.units, 0);
    if (used + units <= this.limit && (list.length > 0 || this.#grants.size < this.maxClients)) {
      list.push({ at: now, units });
      this.#grants.set(client, list);
      return 0;
    }
    if (list.length === 0) return Math.ceil(this.windowMs / 1000); // too many clients at once
    // The oldest grants leave the window first: wait until enough of them have.
    for (const g of list) {
      used -= g.units;
      if (used + units <= this.limit) {
        return Math.max(1, Math.ceil((g.at + this.windowMs - now) / 1000));
      }
    }
    return Math.ceil(this.windowMs / 1000);
  }

  /** Gives back units granted to `client` that were not used (a job cancelled unstarted). */
  refund(client: string, units: number): void {
    const list = this.#grants.get(client);
    if (!list) return;
    for (let i = list.length - 1; i >= 0 && units > 0; i--) {
      const back = Math.min(units, list[i].units);
      list[i].units -= back;
      units -= back;
      if (list[i].units === 0) list.splice(i, 1);
    }
    if (list.length === 0) this.#grants.delete(client);
  }

  #prune(now: number): void {
    for (const [client, list] of this.#grants) {
      while (list.length > 0 && list[0].at + this.windowMs <= now) list.shift();
      if (list.length === 0) this.#grants.delete(client);
    }
  }
}
