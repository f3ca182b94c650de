import { describe, expect, it } from "vitest";
import { ReplayBounds } from "../../src/http/replay-bounds.ts";

describe("ReplayBounds", () => {
  it("gives a rewrite exactly the life left to the entry it rewrites", () => {
    const bounds = new ReplayBounds();
    bounds.remember("k", 10_000);
    expect(bounds.inherit("k", 999_999, 4_000)).toBe(6_000);
    expect(bounds.inherit("k", 1, 4_000)).toBe(6_000);
  });

  it("uses the rewrite's own ttl when the entry never expires or was never seen", () => {
    const bounds = new ReplayBounds();
    bounds.remember("forever", null);
    expect(bounds.inherit("forever", 5_000, 0)).toBe(5_000);
    expect(bounds.inherit("unseen", 7_000, 0)).toBe(7_000);
    bounds.remember("gone", 10);
    bounds.forget("gone");
    expect(bounds.inherit("gone", 3, 0)).toBe(3);
  });

  it("keeps at most its capacity, forgetting the oldest first", () => {
    const bounds = new ReplayBounds(2);
    bounds.remember("a", 1);
    bounds.remember("b", 2);
    bounds.remember("a", 3);
    bounds.remember("c", 4);
    expect(bounds.inherit("b", 99, 0)).toBe(99);
    expect(bounds.inherit("a", 99, 0)).toBe(3);
    expect(bounds.inherit("c", 99, 0)).toBe(4);
  });
});
