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

/** What {@link keyvCompliance} runs beyond the main suite. */
export interface ComplianceOptions {
  /** The iterator tests under Keyv 5 (which binds `iterator()` only for stores it knows). */
  iterator: boolean;
  /** The iterator tests under Keyv 6, which always has one. @default true */
  keyv6Iterator?: boolean;
  /** Tests the backend cannot pass, by name: run as expected failures, so they stay visible. */
  cannot?: readonly string[];
}

/**
 * Runs Keyv's official compliance suite against `store()`, a factory of signed stores that all
 * share one backend, as the suite expects, under the installed Keyv and under Keyv 6.
 */
export function keyvCompliance(store: () => KeyvStoreAdapter, options: ComplianceOptions): void {
  for (const [label, KeyvClass] of KEYV_MAJORS) {
    vitest.describe(label, () => {
      // The suite takes the test runner and the Keyv class as parameters.
      const runner = suiteRunner(label === "Keyv 6", options.cannot ?? []);
      const keyvClass = KeyvClass as unknown as typeof Keyv;
      keyvTestSuite(runner, keyvClass, store);
      const iterator = label === "Keyv 6" ? (options.keyv6Iterator ?? true) : options.iterator;
      if (iterator) keyvIteratorTests(runner, keyvClass, store);
    });
  }
}

/** vitest, with the suite's Keyv-5-API tests skipped (and labelled) under Keyv 6. */
function suiteRunner(
  keyv6: boolean,
  cannot: readonly string[],
): Parameters<typeof keyvTestSuite>[0] {
  const it = Object.assign((name: string, body: () => unknown) => {
    if (keyv6 && KEYV5_API_ONLY.has(name)) {
      return vitest.it.skip(`${name} [Keyv 5 API, skipped under Keyv 6]`, body);
    }
    if (cannot.includes(name)) return vitest.it.fails(name, body);
    return vitest.it(name, body);
  }, vitest.it);
  return { ...vitest, it } as unknown as Parameters<typeof keyvTestSuite>[0];
}
