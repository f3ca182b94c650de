import { describe } from "vitest";
import { signedStore } from "../../src/store.ts";
import { keyvCompliance } from "../support/compliance.ts";
import { SECRET } from "../support/secrets.ts";

describe("@keyv/test-suite: signedStore over a Map", () => {
  const map = new Map<string, unknown>();
  // Keyv only builds `keyv.iterator()` itself for a raw Map or a known SQL/Redis dialect; the
  // signed Map's own iterator is covered in test/store.test.ts.
  keyvCompliance(() => signedStore(map, SECRET), { iterator: false });
});
