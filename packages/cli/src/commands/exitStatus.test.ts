import { describe, expect, it } from "vitest"
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const FIXTURE = fileURLToPath(new URL("./exitStatus.fixture.ts", import.meta.url))
const FARM = fileURLToPath(new URL("../../bin/farm.mjs", import.meta.url))

/** Run the fixture; with `signal`, send it that once it is ready. */
const runFixture = (mode: string, signal?: NodeJS.Signals) =>
  new Promise<{ code: number | null; signal: NodeJS.Signals | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", FIXTURE, mode], { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    const timer = setTimeout(() => child.kill("SIGKILL"), 100_000)
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString()
      if (signal !== undefined && out.includes("ready\n")) child.kill(signal)
    })
    child.on("exit", (code, sig) => {
      clearTimeout(timer)
      resolve({ code, signal: sig, out })
    })
  })

describe("exit statuses of the long-running commands", () => {
  it("SIGTERM and SIGINT: 0 after the finalizers ran (not the runtime's 130)", async () => {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      const r = await runFixture("signal", sig)
      expect(r, sig).toEqual({ code: 0, signal: null, out: "ready\nfinalized\n" })
    }
  }, 240_000)

  it("a config error exits 78, another failure 1, a success 0", async () => {
    expect((await runFixture("config")).code).toBe(78)
    expect((await runFixture("fatal")).code).toBe(1)
    expect((await runFixture("done")).code).toBe(0)
  }, 240_000)

  it("farm daemon with a bad config file exits 78 naming the key", () => {
    const dir = mkdtempSync(join(tmpdir(), "exitstatus-"))
    try {
      const file = join(dir, "farm.yaml")
      writeFileSync(file, "farm: web\n")
      const r = spawnSync(process.execPath, [FARM, "daemon", "--config", file], { encoding: "utf8", timeout: 100_000 })
      expect(r.status, r.stderr).toBe(78)
      expect(r.stderr).toMatch(/farm\.yaml:\d+: .*interface/)
      const missing = spawnSync(process.execPath, [FARM, "daemon", "--config", join(dir, "none.yaml")], { encoding: "utf8", timeout: 100_000 })
      expect(missing.status, missing.stderr).toBe(78)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 240_000)
})
