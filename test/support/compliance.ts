import keyvTestSuite, { keyvIteratorTests } from "@keyv/test-suite";
import Keyv, { type KeyvStoreAdapter } from "keyv";
import * as vitest from "vitest";

/**
 * Runs Keyv's official compliance suite against `store()`, a factory of signed stores that all
 * share one backend, as the suite expects.
 */
export function keyvCompliance(
  store: () => KeyvStoreAdapter,
  options: { iterator: boolean },
): void {
  // The suite takes the test runner and the Keyv class as parameters.
  const runner = vitest as unknown as Parameters<typeof keyvTestSuite>[0];
  keyvTestSuite(runner, Keyv, store);
  if (options.iterator) keyvIteratorTests(runner, Keyv, store);
}
