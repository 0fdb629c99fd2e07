import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Server tests bind real ports and spawn real processes; two cores, so keep it modest.
    maxWorkers: 2,
  },
});
