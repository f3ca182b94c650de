/** Every client entry point has a way to close the store it opened, and then the process exits. */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { backendOrSkip, findBackend } from "../support/backends.ts";
import { startStallingServer } from "../support/redis-server.ts";

const run = promisify(execFile);
const redis = await findBackend("Redis", "REDIS_URL", "redis://127.0.0.1:6379");
const postgres = await findBackend(
  "PostgreSQL",
  "POSTGRES_URL",
  "postgres://postgres@127.0.0.1:5432/test",
);

describe.each([
  ["Redis", redis],
  ["PostgreSQL", postgres],
])("closing the store on %s", (name, backend) => {
  it.runIf(backendOrSkip(backend, `closing the store on ${name}`))(
    "lets the process exit once setupCache and createKeyv stores are closed",
    async () => {
      const script = join(import.meta.dirname, "../support/close-and-exit.ts");
      const { stdout } = await run(process.execPath, ["--import", "tsx", script, backend.url], {
        timeout: 15_000,
      });
      expect(stdout.trim()).toBe("closed");
    },
  );
});

describe("closing a store that stopped answering", () => {
  it("still lets the process exit, and the close resolves", async () => {
    const stall = await startStallingServer();
    try {
      const script = join(import.meta.dirname, "../support/close-and-exit.ts");
      const { stdout } = await run(process.execPath, ["--import", "tsx", script, stall.url], {
        timeout: 20_000,
      });
      expect(stdout.trim()).toBe("closed");
    } finally {
      await stall.close();
    }
  });
});
