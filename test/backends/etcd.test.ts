import { expect, it } from "vitest";
import { signedStore } from "../../src/store.ts";
import { keyvCompliance } from "../support/compliance.ts";
import { describeWithTools, haveTools, localStores, startEtcd } from "../support/local-cluster.ts";
import { SECRET } from "../support/secrets.ts";

const installed = await haveTools("etcd");
const { adapter, keyv } = localStores(installed, () => startEtcd(), {
  startTimeout: 30_000,
  throws: () => true,
});

describeWithTools(installed, "etcd", "@keyv/test-suite: signedStore over etcd", () => {
  keyvCompliance(() => signedStore(adapter(), SECRET), { iterator: true });
});

describeWithTools(installed, "etcd", "signedStore over etcd", () => {
  it("rejects an entry altered in etcd", async () => {
    const cache = keyv("tamper", { strict: true });
    const raw = adapter();
    await cache.set("user", { admin: false });
    const row = String(await raw.get("tamper:user"));
    expect(row).toMatch(/^sc2\..*"admin":false/);
    await raw.set("tamper:user", row.replace("false", "true"));
    await expect(cache.get("user")).rejects.toMatchObject({ reason: "mismatch" });
  });

  it("lists and clears exactly one namespace (not those it is a prefix of)", async () => {
    const mine = keyv("u");
    const theirs = keyv("u2");
    for (let index = 0; index < 1500; index++) await mine.set(`k${index}`, index);
    await theirs.set("k1", "other");
    let listed = 0;
    for await (const _ of mine.iterator?.(undefined) ?? []) listed++;
    expect(listed).toBe(1500);
    await mine.clear();
    expect(await mine.get("k1")).toBeUndefined();
    expect(await theirs.get("k1")).toBe("other");
  });
});
