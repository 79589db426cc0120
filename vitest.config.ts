import { defineConfig } from "vitest/config"

// Vitest 5's reporter calls Map.groupBy (Node 21+); this project runs on Node 20.
const MapWithGroupBy = Map as unknown as { groupBy?: <K, V>(items: Iterable<V>, key: (v: V, i: number) => K) => Map<K, Array<V>> }
if (typeof MapWithGroupBy.groupBy !== "function") {
  MapWithGroupBy.groupBy = <K, V>(items: Iterable<V>, key: (v: V, i: number) => K) => {
    const out = new Map<K, Array<V>>()
    let i = 0
    for (const v of items) {
      const k = key(v, i++)
      const list = out.get(k)
      if (list) list.push(v)
      else out.set(k, [v])
    }
    return out
  }
}

export default defineConfig({
  test: {
    include: ["packages/*/src/**/*.test.ts", "test/**/*.test.ts"],
    // before the run: remove what a crashed run left; after: report (and in CI fail on) anything left
    globalSetup: ["test/globalSetup.ts"],
    // every process a test starts carries the run's pid, so that its leftovers are found (test/globalSetup.ts)
    env: { VIPFARM_LAB_OWNER: String(process.pid) },
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // one test file at a time: the lab farms measure sub-second failovers on a 2-core machine,
    // and two labs (or a lab and a CPU-bound property test) side by side make that timing noise
    fileParallelism: false,
    reporters: ["default", "json"],
    outputFile: { json: ".ci/results.json" }
  }
})
