/**
 * Holds an exclusive lock on a SQLite file from another process. In-process lock holders do not
 * work: SQLite's POSIX locks belong to the process, so a second copy of SQLite in the same
 * process (sqlite3 beside node:sqlite or better-sqlite3) neither sees nor respects them.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";

// CommonJS, so that `require` finds the project's sqlite3 from the working directory.
const HOLDER = `
const sqlite3 = require("sqlite3");
const db = new sqlite3.Database(process.argv[1]);
db.exec("BEGIN EXCLUSIVE", (error) => {
  if (error) throw error;
  console.log("locked");
});
process.stdin.once("data", () =>
  db.exec("ROLLBACK", () => db.close(() => console.log("released"))),
);
`;

/** Resolves once another process holds `file`'s exclusive lock; `release` ends it. */
export async function holdExclusiveLock(file: string): Promise<{ release: () => Promise<void> }> {
  const child = spawn(process.execPath, ["-e", HOLDER, file], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const next = async (expected: string) => {
    const [line] = (await once(lines, "line")) as [string];
    if (line !== expected) throw new Error(`lock holder said ${line}, not ${expected}`);
  };
  await next("locked");
  return {
    release: async () => {
      child.stdin.write("\n");
      await next("released");
      child.stdin.end();
      await once(child, "exit");
    },
  };
}
