import { describe, expect, it } from "vitest";
import { BadSignature, StoreError } from "../../src/errors.ts";
import { isBypassed, StoreGuard } from "../../src/http/store-guard.ts";

const never = () => new Promise<never>(() => {});
const fail = async () => {
  throw new Error("ECONNREFUSED");
};

describe("StoreGuard", () => {
  it("bounds all the calls of one request by one budget, then skips the rest", async () => {
    const guard = new StoreGuard({ budgetMs: 100 });
    const request = {};
    const started = performance.now();
    await expect(guard.run(request, "get", never)).rejects.toThrow(/within the request's budget/);
    const skipped = await guard.run(request, "set", async () => "ran").catch((error) => error);
    expect(isBypassed(skipped)).toBe(true);
    expect(performance.now() - started).toBeLessThan(1_000);
    // Another request has its own budget.
    expect(await guard.run({}, "get", async () => "ok")).toBe("ok");
  });

  it("opens after repeated faults, bypasses the store, and probes it after the cool-down", async () => {
    const states: string[] = [];
    const guard = new StoreGuard({
      budgetMs: 1_000,
      coolDownMs: 100,
      onStateChange: (state) => states.push(state),
    });
    for (let i = 0; i < 5; i++) await guard.run({}, "get", fail).catch(() => {});
    expect(guard.state).toBe("open");
    let called = false;
    const skipped = await guard
      .run({}, "get", async () => {
        called = true;
      })
      .catch((error) => error);
    expect(called).toBe(false);
    expect(isBypassed(skipped)).toBe(true);
    expect(guard.counts.bypassed).toBe(1);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(await guard.run({}, "get", async () => "back")).toBe("back");
    expect(guard.state).toBe("closed");
    expect(states).toEqual(["open", "half-open", "closed"]);
    guard.shutdown();
  });

  it("does not count rejected entries as store faults", async () => {
    const guard = new StoreGuard({ budgetMs: 1_000 });
    const tampered = async () => {
      throw new BadSignature("mismatch", "entry signature does not match");
    };
    for (let i = 0; i < 10; i++) await guard.run({}, "get", tampered).catch(() => {});
    expect(guard.state).toBe("closed");
    const fault = await guard.run({}, "get", fail).catch((error) => error);
    expect(fault).not.toBeInstanceOf(StoreError);
    expect(isBypassed(fault)).toBe(false);
    guard.shutdown();
  });
});
