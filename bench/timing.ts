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
  /**
   * Time budget of one case in ms: when rounds of very slow operations (a 1 MB write to a
   * database) would exceed it, fewer rounds are run, but never fewer than `minRounds`.
   */
  readonly maxCaseMs: number;
  readonly minRounds: number;
}

/** Per-operation times of every arm, one entry per measured round, in nanoseconds. */
export type RoundTimes = Record<string, number[]>;

/**
 * Times `arms` round by round and returns per-operation wall-clock times for each.
 *
 * @param cpu - When given, filled with per-operation CPU time of this process (all threads) for
 *   each arm, measured over the same batches. Waiting on a server or being preempted by another
 *   process costs wall time but no CPU time, so on a shared machine CPU time shows what an
 *   operation itself costs far more steadily.
 */
export async function interleave(
  arms: readonly Arm[],
  plan: TimingPlan,
  cpu?: RoundTimes,
): Promise<RoundTimes> {
  const { ops, slowest } = await batchSize(arms, plan);
  const roundMs = (ops * slowest * arms.length) / 1e6;
  const rounds = Math.max(
    plan.minRounds,
    Math.min(plan.rounds, Math.floor(plan.maxCaseMs / roundMs) - plan.warmup),
  );
  const times: RoundTimes = Object.fromEntries(arms.map((arm) => [arm.name, []]));
  for (const arm of arms) if (cpu) cpu[arm.name] = [];
  for (let round = 0; round < plan.warmup + rounds; round++) {
    for (const arm of rotate(arms, round)) {
      const perOp = await batch(arm, ops);
      if (round < plan.warmup) continue;
      times[arm.name]?.push(perOp.wall);
      cpu?.[arm.name]?.push(perOp.cpu);
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

async function batchSize(
  arms: readonly Arm[],
  plan: TimingPlan,
): Promise<{ ops: number; slowest: number }> {
  // Calibrated on a steady run of each arm, not on its first calls, which are slower; the slowest
  // arm sets the batch, so every arm does the same number of operations per round.
  let slowest = 0;
  for (const arm of arms) {
    await batch(arm, 1);
    const started = process.hrtime.bigint();
    let ops = 0;
    let perOp = 0;
    while (ops === 0 || Number(process.hrtime.bigint() - started) < plan.batchMs * 2e5) {
      perOp = (await batch(arm, 1 + ops)).wall;
      ops += 1 + ops;
    }
    slowest = Math.max(slowest, perOp);
  }
  const wanted = Math.floor((plan.batchMs * 1e6) / Math.max(slowest, 1));
  return { ops: Math.max(plan.minOps, Math.min(wanted, 100_000)), slowest };
}

async function batch(arm: Arm, ops: number): Promise<{ wall: number; cpu: number }> {
  await arm.prepare?.(ops);
  const cpuStart = process.cpuUsage();
  const start = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) {
    const pending = arm.run();
    // Synchronous arms (the floor) are not charged the cost of an await.
    if (pending instanceof Promise) await pending;
  }
  const wall = Number(process.hrtime.bigint() - start) / ops;
  const used = process.cpuUsage(cpuStart);
  return { wall, cpu: ((used.user + used.system) * 1000) / ops };
}

function rotate<T>(items: readonly T[], round: number): T[] {
  const shift = round % items.length;
  const rotated = [...items.slice(shift), ...items.slice(0, shift)];
  // Every other round also runs backwards, so no arm always follows the same neighbour.
  return Math.floor(round / items.length) % 2 === 1 ? rotated.reverse() : rotated;
}

/** Signed against unsigned from one interleaved run: medians and per-round differences. */
export interface SignedVsUnsigned {
  unsigned: number;
  signed: number;
  added: number;
  addedSpread: number;
  addedCpu: number;
  rounds: number;
}

/** Summarises the `signed` and `unsigned` arms of a run, wall and CPU time. */
export function signedVsUnsigned(times: RoundTimes, cpu: RoundTimes): SignedVsUnsigned {
  const u = times.unsigned ?? [];
  const s = times.signed ?? [];
  return {
    unsigned: median(u),
    signed: median(s),
    added: pairedMedian(s, u),
    addedSpread: pairedSpread(s, u),
    addedCpu: pairedMedian(cpu.signed ?? [], cpu.unsigned ?? []),
    rounds: u.length,
  };
}
