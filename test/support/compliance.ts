import keyvTestSuite, { keyvIteratorTests } from "@keyv/test-suite";
import Keyv, { type KeyvStoreAdapter } from "keyv";
import Keyv6 from "keyv6";
import * as vitest from "vitest";
import { KEYV_MAJOR } from "./adapters.ts";

/** The Keyv majors the suite runs under: the installed one, and Keyv 6 when that is 5. */
export const KEYV_MAJORS: readonly (readonly [string, unknown])[] =
  KEYV_MAJOR === 6
    ? [["Keyv 6", Keyv]]
    : [
        ["Keyv 5", Keyv],
        ["Keyv 6", Keyv6],
      ];

/**
 * Tests of @keyv/test-suite 2.x (the suite published for Keyv 5) that check Keyv 5's own API
 * rather than the store: under Keyv 6, `deleteMany` answers one boolean per key, and custom
 * serializers are an adapter object rather than `serialize`/`deserialize` options. Each fails
 * the same way over Keyv 6 with a plain Map, and is skipped under Keyv 6 with this label.
 */
const KEYV5_API_ONLY = new Set([
  ".deleteMany([keys]) with nonexistent keys resolves to false",
  "value can be BigInt using other serializer/deserializer",
]);

/**
 * Runs Keyv's official compliance suite against `store()`, a factory of signed stores that all
 * share one backend, as the suite expects, under Keyv 5 and under Keyv 6.
 */
export function keyvCompliance(
  store: () => KeyvStoreAdapter,
  options: { iterator: boolean },
): void {
  for (const [label, KeyvClass] of KEYV_MAJORS) {
    vitest.describe(label, () => {
      // The suite takes the test runner and the Keyv class as parameters.
      const runner = (label === "Keyv 6" ? keyv6Runner() : vitest) as unknown as Parameters<
        typeof keyvTestSuite
      >[0];
      const keyvClass = KeyvClass as unknown as typeof Keyv;
      keyvTestSuite(runner, keyvClass, store);
      // Keyv 5 binds `iterator()` only for stores it recognizes; Keyv 6 always has one.
      if (options.iterator || label === "Keyv 6") keyvIteratorTests(runner, keyvClass, store);
    });
  }
}

/** vitest, with the suite's Keyv-5-API tests skipped and labelled. */
function keyv6Runner(): typeof vitest {
  const it = ((name: string, body: () => unknown) =>
    KEYV5_API_ONLY.has(name)
      ? vitest.it.skip(`${name} [Keyv 5 API, skipped under Keyv 6]`, body)
      : vitest.it(name, body)) as typeof vitest.it;
  return { ...vitest, it };
}
