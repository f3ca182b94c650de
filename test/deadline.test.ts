import { describe, expect, it } from "vitest";
import { withDeadline } from "../src/deadline.ts";

const resolvesAfter = <T>(ms: number, value: T) =>
  new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));

describe("withDeadline", () => {
  it("answers what the promise answers in time", async () => {
    await expect(withDeadline(resolvesAfter(5, "v"), 1000, () => new Error("late"))).resolves.toBe(
      "v",
    );
  });

  it("passes the promise's own rejection through", async () => {
    const failing = Promise.reject(new TypeError("refused"));
    await expect(withDeadline(failing, 1000, () => new Error("late"))).rejects.toThrow(TypeError);
  });

  it("rejects with the error late() makes once the time is up, and only then", async () => {
    let made = 0;
    const started = performance.now();
    const result = withDeadline(resolvesAfter(500, "v"), 30, () => {
      made++;
      return new RangeError("no answer within 30 ms");
    });
    await expect(result).rejects.toThrow(RangeError);
    expect(made).toBe(1);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
  });
});
