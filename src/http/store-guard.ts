/**
 * What a sick store may cost an HTTP request: a budget per request, and a circuit breaker.
 *
 * A request makes up to three store calls (the lookup, the `loading` marker, the write of the
 * response). Bounding each by `storeTimeout` alone lets a store that accepts connections and
 * never answers cost a request three times that. Here the time a request spends waiting on the
 * store, over all its calls, is bounded by one `storeTimeout`: once spent, its remaining calls
 * are skipped. And after repeated faults the store is not called at all for a cool-down — the
 * circuit is open — then probed again with one call (half-open), which closes it on success.
 *
 * The breaker is opossum's (maintained, the one the Node ecosystem uses): rolling window,
 * error threshold, reset timeout and half-open probe are its, not home-made.
 */
import CircuitBreaker from "opossum";
import { withDeadline } from "../deadline.js";
import { BadData, EntryTooLarge, StoreError } from "../errors.js";

/** The breaker's state. */
export type CircuitState = "closed" | "open" | "half-open";

/** What the breaker counted in its rolling window. */
export interface CircuitCounts {
  /** Store calls made. */
  readonly calls: number;
  /** Of which failed or timed out. */
  readonly faults: number;
  /** Calls not made because the circuit was open or the request's budget was spent. */
  readonly bypassed: number;
}

/** Settings of a {@link StoreGuard}. */
export interface StoreGuardOptions {
  /** Most time, in ms, one request may wait on the store over all its calls. */
  readonly budgetMs: number;
  /** How long the circuit stays open before a probe, in ms. @default 5000 */
  readonly coolDownMs?: number;
  /** Called when the circuit changes state, with what the window counted. */
  readonly onStateChange?: (state: CircuitState, counts: CircuitCounts) => void;
}

/** Marks the errors of calls the guard did not make, so that they are not reported as faults. */
const BYPASSED: unique symbol = Symbol("bypassed");

/** Whether `error` is a call the guard skipped (open circuit, spent budget), not a store fault. */
export function isBypassed(error: unknown): boolean {
  return error instanceof StoreError && (error as { [BYPASSED]?: true })[BYPASSED] === true;
}

function bypassed(message: string): StoreError {
  return Object.assign(new StoreError(message), { [BYPASSED]: true as const });
}

/** Rolling window of the fault rate, in ms. */
const WINDOW_MS = 10_000;
/** Fewer calls than this in the window never open the circuit: a lone fault is not an outage. */
const MIN_CALLS = 5;
/** Open when at least this share of the window's calls failed, in percent. */
const FAULT_PERCENT = 50;

/** Guards the store calls of HTTP requests; see the module comment. */
export class StoreGuard {
  readonly #budgetMs: number;
  readonly #spent = new WeakMap<object, number>();
  readonly #breaker: CircuitBreaker<[() => Promise<unknown>], unknown>;
  #bypassed = 0;

  constructor(options: StoreGuardOptions) {
    this.#budgetMs = options.budgetMs;
    this.#breaker = new CircuitBreaker((call: () => Promise<unknown>) => call(), {
      // Timeouts are the request budget's (below) and the signed store's, not the breaker's.
      timeout: false,
      resetTimeout: options.coolDownMs ?? 5_000,
      rollingCountTimeout: WINDOW_MS,
      volumeThreshold: MIN_CALLS,
      errorThresholdPercentage: FAULT_PERCENT,
      // A rejected entry (tampering, strict mode) or one too large to cache is the store working.
      errorFilter: (error: unknown) => error instanceof BadData || error instanceof EntryTooLarge,
    });
    const notify = (state: CircuitState) => options.onStateChange?.(state, this.counts);
    this.#breaker.on("open", () => notify("open"));
    this.#breaker.on("halfOpen", () => notify("half-open"));
    this.#breaker.on("close", () => {
      notify("closed");
      this.#bypassed = 0;
    });
  }

  /** The circuit's state now. */
  get state(): CircuitState {
    if (this.#breaker.opened) return "open";
    return this.#breaker.halfOpen ? "half-open" : "closed";
  }

  /** What the rolling window counted. */
  get counts(): CircuitCounts {
    const { fires, failures, timeouts } = this.#breaker.stats;
    return { calls: fires, faults: failures + timeouts, bypassed: this.#bypassed };
  }

  /**
   * Runs one store call of `request` (any object that stays the same for the whole request),
   * bounded by what is left of its budget, unless the circuit is open.
   *
   * @throws {StoreError} When the store fails, or the call was not made (see {@link isBypassed}).
   */
  async run<T>(request: object | undefined, operation: string, call: () => Promise<T>): Promise<T> {
    const left = this.#budgetMs - (request === undefined ? 0 : (this.#spent.get(request) ?? 0));
    if (left <= 0) {
      this.#bypassed++;
      throw bypassed(`store ${operation} skipped: this request spent its ${this.#budgetMs} ms`);
    }
    if (this.#breaker.opened) {
      this.#bypassed++;
      throw bypassed(`store ${operation} skipped: the store is failing, circuit open`);
    }
    const started = performance.now();
    let outOfTime = false;
    try {
      return (await this.#breaker.fire(() =>
        withDeadline(call(), left, () => {
          outOfTime = true;
          return new StoreError(`store ${operation} did not answer within the request's budget`);
        }),
      )) as T;
    } catch (error) {
      // opossum's own rejection when the circuit opened between the check above and the call.
      if (CircuitBreaker.isOurError(error as Error)) {
        this.#bypassed++;
        throw bypassed(`store ${operation} skipped: the store is failing, circuit open`);
      }
      throw error;
    } finally {
      if (request !== undefined) {
        // A call the deadline ended spent the whole budget, whatever the clocks' rounding says.
        const spent = outOfTime
          ? this.#budgetMs
          : (this.#spent.get(request) ?? 0) + (performance.now() - started);
        this.#spent.set(request, spent);
      }
    }
  }

  /** Stops the breaker's timers. */
  shutdown(): void {
    this.#breaker.shutdown();
  }
}

/**
 * A {@link StoreGuard} that reports the way every HTTP client here does: the circuit opening
 * once, with its counts, through `tell` (an `onError`), and every change of state through
 * `onCircuit`. Callbacks that throw are ignored: a report must never fail a request.
 */
export function reportingGuard(options: {
  readonly budgetMs: number;
  readonly coolDownMs: number;
  readonly tell: (error: StoreError) => void;
  readonly onCircuit?: ((state: CircuitState, counts: CircuitCounts) => void) | undefined;
}): StoreGuard {
  return new StoreGuard({
    budgetMs: options.budgetMs,
    coolDownMs: options.coolDownMs,
    onStateChange: (state, counts) => {
      // One report per change of state, with the counts, rather than one per failing call.
      if (state === "open") {
        options.tell(
          new StoreError(
            `store failing: ${counts.faults} of ${counts.calls} calls in the last 10 s; requests bypass it until a probe succeeds`,
          ),
        );
      }
      try {
        options.onCircuit?.(state, counts);
      } catch {
        // A callback must not fail a request.
      }
    },
  });
}
