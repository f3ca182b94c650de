/**
 * In-process coalescing of identical concurrent work: the first caller of a key starts the task,
 * callers arriving while it runs wait for the same result. Each caller gets its own copy of the
 * result (`fork`), so that a value that can be consumed once — a `Response` body — is never
 * shared. A task that fails settles every waiter with its error.
 *
 * Each waiter may bring an `AbortSignal`: an aborted waiter rejects at once with the signal's
 * reason, and the task itself is aborted only when every waiter has gone.
 */

/** Makes one copy of `value` per waiter still waiting, in order. */
export type Fork<T> = (value: T, count: number) => T[];

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
  gone: boolean;
}

interface Flight<T> {
  readonly waiters: Waiter<T>[];
  readonly controller: AbortController;
}

/** Coalesces identical concurrent tasks; see the module comment. */
export class Coalescer<T> {
  readonly #flights = new Map<string, Flight<T>>();
  readonly #fork: Fork<T>;
  readonly #discard: ((value: T) => void) | undefined;

  /**
   * @param fork - Copies a result for the waiters.
   * @param discard - Releases a result nobody waits for any more (every waiter aborted).
   */
  constructor(fork: Fork<T>, discard?: (value: T) => void) {
    this.#fork = fork;
    this.#discard = discard;
  }

  /** Keys whose task is running. */
  get size(): number {
    return this.#flights.size;
  }

  /**
   * Runs `task` for `key`, or joins the one already running for it.
   *
   * @param task - Started only by the first caller; its signal aborts once every waiter left.
   */
  run(
    key: string,
    signal: AbortSignal | null | undefined,
    task: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let flight = this.#flights.get(key);
    const starting = flight === undefined;
    if (flight === undefined) {
      flight = { waiters: [], controller: new AbortController() };
      this.#flights.set(key, flight);
    }
    const current = flight;
    const result = new Promise<T>((resolve, reject) => {
      const waiter: Waiter<T> = { resolve, reject, gone: false };
      current.waiters.push(waiter);
      if (signal) {
        const onAbort = () => {
          if (waiter.gone) return;
          waiter.gone = true;
          reject(signal.reason);
          if (current.waiters.every((each) => each.gone)) {
            // Nobody waits any more: stop the work, and let the next caller start afresh.
            if (this.#flights.get(key) === current) this.#flights.delete(key);
            current.controller.abort(signal.reason);
          }
        };
        signal.addEventListener("abort", onAbort, { once: true });
        const cleanUp = () => signal.removeEventListener("abort", onAbort);
        waiter.resolve = (value) => {
          cleanUp();
          resolve(value);
        };
        waiter.reject = (error) => {
          cleanUp();
          reject(error);
        };
      }
    });
    if (starting) this.#start(key, current, task);
    return result;
  }

  #start(key: string, flight: Flight<T>, task: (signal: AbortSignal) => Promise<T>): void {
    const settle = (outcome: { value: T } | { error: unknown }) => {
      if (this.#flights.get(key) === flight) this.#flights.delete(key);
      const live = flight.waiters.filter((waiter) => !waiter.gone);
      for (const waiter of live) waiter.gone = true;
      if ("error" in outcome) {
        for (const waiter of live) waiter.reject(outcome.error);
        return;
      }
      if (live.length === 0) {
        this.#discard?.(outcome.value);
        return;
      }
      let copies: T[];
      try {
        copies = this.#fork(outcome.value, live.length);
      } catch (error) {
        for (const waiter of live) waiter.reject(error);
        return;
      }
      live.forEach((waiter, index) => {
        waiter.resolve(copies[index] as T);
      });
    };
    Promise.resolve()
      .then(() => task(flight.controller.signal))
      .then(
        (value) => settle({ value }),
        (error: unknown) => settle({ error }),
      );
  }
}
