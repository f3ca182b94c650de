import { afterEach, describe, expect, it, vi } from "vitest";
import { LocalWrites, REMOVED } from "../../src/http/local-writes.ts";

afterEach(() => vi.useRealTimers());

describe("LocalWrites", () => {
  it("shows a write while it is in flight, and forgets it once the store has it", () => {
    const local = new LocalWrites<string>();
    const token = local.begin("k", "v");
    expect(local.read("k")).toBe("v");
    local.succeeded("k", token);
    expect(local.read("k")).toBeUndefined();
    local.begin("gone", REMOVED);
    expect(local.read("gone")).toBe(REMOVED);
  });

  it("keeps a failed write for its grace only, and lets go of it without a read", () => {
    vi.useFakeTimers({ toFake: ["Date"], now: 1_000_000 });
    const local = new LocalWrites<string>();
    for (let i = 0; i < 300; i++)
      local.failed(`big${i}`, local.begin(`big${i}`, "x".repeat(1024)), 5_000);
    expect(local.size).toBe(300);
    vi.setSystemTime(1_006_000);
    // Any later write sweeps what outlived its grace, read again or not.
    local.begin("next", "v");
    expect(local.size).toBe(1);
  });

  it("never holds more than its capacity", () => {
    const local = new LocalWrites<string>(3);
    for (let i = 0; i < 10; i++) local.begin(`k${i}`, "v");
    expect(local.size).toBe(3);
    expect(local.read("k9")).toBe("v");
    expect(local.read("k0")).toBeUndefined();
  });
});
