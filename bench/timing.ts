/**
 * Interleaved timing. Every arm of a case (unsigned, signed, the floor…) runs one batch per
 * round, in a rotating order, so that drift in machine load lands on every arm alike; warm-up
 * rounds are thrown away and each arm reports the median over rounds.
 */

/** One thing to time: a synchronous or asynchronous operation. */
export interface Arm {
  readonly name: string;
  readonly run: () => unknown;
  /** Untimed preparation before each batch of `ops` runs (e.g. fresh inputs to consume). */
  readonly prepare?: (ops: number) => unknown;
}

/** How hard to measure. */
export interface TimingPlan {
  /** Measured rounds; the median is taken over these. */
  readonly rounds: number;
  /** Rounds run first and discarded: JIT, connection pools and caches settle in them. */
  readonly warmup: number;
  /** Wall time one arm's batch should take, in ms; it sets the operations per batch. */
  readonly batchMs: number;
  /** Fewest operations in a batch, however slow one is. */
  readonly minOps: number;
}

/** Per-operation times of every arm, one entry per measured round, in nanoseconds. */
export type RoundTimes = Record<string, number[]>;

/** Times `arms` round by round and returns per-operation times for each. */
export async function interleave(arms: readonly Arm[], plan: TimingPlan): Promise<RoundTimes> {
  const ops = await batchSize(arms, plan);
  const times: RoundTimes = Object.fromEntries(arms.map((arm) => [arm.name, []]));
  for (let round = 0; round < plan.warmup + plan.rounds; round++) {
    for (const arm of rotate(arms, round)) {
      const perOp = await batch(arm, ops);
      if (round >= plan.warmup) times[arm.name]?.push(perOp);
    }
  }
  return times;
}

/** Median of a list of numbers (the list is not modified). */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  if (sorted.length === 0) return Number.NaN;
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/**
 * Median of the round-by-round differences `a[i] - b[i]`. Pairing by round cancels load that
 * shifts between rounds, which a difference of two medians would not.
 */
export function pairedMedian(a: readonly number[], b: readonly number[]): number {
  return median(a.map((value, index) => value - (b[index] ?? Number.NaN)));
}

/** Median absolute deviation of the paired differences, relative to their median: the noise. */
export function pairedSpread(a: readonly number[], b: readonly number[]): number {
  const diffs = a.map((value, index) => value - (b[index] ?? Number.NaN));
  const middle = median(diffs);
  return median(diffs.map((value) => Math.abs(value - middle)));
}

async function batchSize(arms: readonly Arm[], plan: TimingPlan): Promise<number> {
  // The slowest arm sets the batch, so every arm does the same number of operations per round.
  let slowest = 0;
  for (const arm of arms) {
    await batch(arm, 1);
    slowest = Math.max(slowest, await batch(arm, 1), await batch(arm, 1));
  }
  const wanted = Math.floor((plan.batchMs * 1e6) / Math.max(slowest, 1));
  return Math.max(plan.minOps, Math.min(wanted, 100_000));
}

async function batch(arm: Arm, ops: number): Promise<number> {
  await arm.prepare?.(ops);
  const start = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    const pending = arm.run();
    // Synchronous arms (the floor) are not charged the cost of an await.
    if (pending instanceof Promise) await pending;
  }
  return Number(process.hrtime.bigint() - start) / ops;
}

function rotate<T>(items: readonly T[], round: number): T[] {
  const shift = round % items.length;
  const rotated = [...items.slice(shift), ...items.slice(0, shift)];
  // Every other round also runs backwards, so no arm always follows the same neighbour.
  return Math.floor(round / items.length) % 2 === 1 ? rotated.reverse() : rotated;
}
