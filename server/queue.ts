/**
 * A first-in-first-out mutex: jobs run one at a time, in the order they asked. The preview
 * server has one model (one set of weights, one device), so requests wait their turn rather
 * than run at once.
 */
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
