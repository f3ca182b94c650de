import type { KeyvStoreAdapter } from "keyv";
import { expect } from "vitest";
import { KEY_LIMITS, type KeyLimits } from "../../src/key-limits.ts";

/** An adapter from `storeFromUrl`, with the key limits it declares. */
export type LimitedAdapter = KeyvStoreAdapter & { [KEY_LIMITS]: KeyLimits };

/** `namespace:` and then `fill` up to exactly `bytes` UTF-8 bytes, padded with ASCII. */
export function keyOfBytes(namespace: string, fill: string, bytes: number): string {
  const prefix = `${namespace}:`;
  const room = bytes - Buffer.byteLength(prefix);
  const fills = Math.floor(room / Buffer.byteLength(fill));
  return `${prefix}${fill.repeat(fills)}${"k".repeat(room - fills * Buffer.byteLength(fill))}`;
}

/** Sets, reads (one and many), lists and deletes `key` through the adapter itself. */
export async function expectKeyRoundTrip(
  adapter: KeyvStoreAdapter,
  namespace: string,
  key: string,
): Promise<void> {
  const value = `value of ${key.length}`;
  await adapter.set(key, value);
  expect(await adapter.get(key)).toBe(value);
  expect(await adapter.getMany?.([key])).toEqual([value]);
  const listed: string[] = [];
  for await (const [listedKey] of adapter.iterator?.(namespace) ?? []) {
    listed.push(String(listedKey));
  }
  expect(listed).toEqual([key]);
  expect(await adapter.delete(key)).toBe(true);
}
