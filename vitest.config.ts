import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 30_000,
    // Backend suites share real servers; files run in parallel but each uses its own keys/tables.
    pool: "forks",
  },
});
