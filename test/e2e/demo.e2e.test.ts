/** `farm demo` runs its whole story on a real lab farm and exits 0, leaving nothing behind. */
import { spawnSync } from "node:child_process"
import { describe, expect, it } from "vitest"
import { describeLeftovers, hostSnapshot, labLeftovers } from "@vipfarm/runtime"
import { rootOrSkip } from "./harness.ts"

const root = rootOrSkip("demo.e2e.test.ts")

describe.skipIf(!root)("farm demo", () => {
  it("runs every step and cleans up", () => {
    const before = hostSnapshot()
    const r = spawnSync(process.execPath, ["packages/cli/bin/farm.mjs", "demo", "--name", "dm"], { encoding: "utf8", timeout: 240_000 })
    const out = r.stdout
    if (r.status !== 0) console.log(out, r.stderr.split("\n").filter((l) => !l.startsWith("ts=")).join("\n"))
    expect(r.status).toBe(0)
    expect(out).toMatch(/300 clients, each answered by exactly one server/)
    expect(out).toMatch(/landed on s\d all 10 times/)
    expect(out).toMatch(/clients of s2 served again: median \d+ ms, worst \d+ ms/)
    expect(out).toMatch(/long-lived connections kept while s2 took its share back/)
    expect(out).toMatch(/the farm is whole again: all 300 clients answered, [1-9]\d* of them by s2/)
    expect(out).toMatch(/everything removed: no namespace, process or host veth of the lab left, no XDP program left loaded/)
    expect(out).not.toContain("LEFT BEHIND")
    // checked here too, independently of what the demo says
    expect(describeLeftovers(labLeftovers("dm", before))).toEqual([])
  }, 300_000)
})
