import { afterEach, describe, expect, it, vi } from "vitest"
import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { Effect } from "effect"
import { Command } from "effect/cli"
import { NodeServices } from "@effect/platform-node"
import { getLogLevel, log, setLogLevel } from "@vipfarm/runtime"
import { cliConfigLayer, envLogLevelError, withLogLevel } from "./logLevel.ts"

const farmBin = fileURLToPath(new URL("../bin/farm.mjs", import.meta.url))

/** Run the real `farm` with an environment; its exit code and stderr. */
const farm = (args: Array<string>, env: Record<string, string>) =>
  new Promise<{ code: number; stderr: string; stdout: string }>((resolve) => {
    execFile(process.execPath, [farmBin, ...args], { env: { ...process.env, ...env }, timeout: 100_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stderr, stdout })
    })
  })

/** A command tree like farm's: the level must reach a nested subcommand's handler. */
const lines: Array<string> = []
const leaf = Command.make("leaf", {}, () =>
  Effect.sync(() => {
    log("debug", "test.debug", { node: "s1" })
    log("info", "test.info", { node: "s1" })
    log("warn", "test.warn", { node: "s1" })
  }))
const tree = Command.make("farm").pipe(Command.withSubcommands([Command.make("group").pipe(Command.withSubcommands([leaf]))]), withLogLevel)
const run = (args: Array<string>) =>
  Effect.runPromise(Command.runWith(tree, { version: "0" })(args).pipe(Effect.provide(cliConfigLayer), Effect.provide(NodeServices.layer), Effect.result))

describe("--log-level", () => {
  const saved = { level: getLogLevel(), env: process.env.VIPFARM_LOG }
  afterEach(() => {
    setLogLevel(saved.level)
    if (saved.env === undefined) delete process.env.VIPFARM_LOG
    else process.env.VIPFARM_LOG = saved.env
    vi.restoreAllMocks()
    lines.length = 0
  })
  const capture = () =>
    vi.spyOn(process.stderr, "write").mockImplementation(((chunk: string | Uint8Array) => {
      lines.push(String(chunk))
      return true
    }) as typeof process.stderr.write)

  it("sets the level of vipfarm's log() in a nested subcommand, before or after it, and for the processes it starts", async () => {
    setLogLevel("info")
    capture()
    await run(["group", "leaf", "--log-level", "debug"])
    expect(lines.map((l) => /op=(\S+)/.exec(l)?.[1])).toEqual(["test.debug", "test.info", "test.warn"])
    expect(process.env.VIPFARM_LOG).toBe("debug")
    lines.length = 0
    await run(["--log-level=warn", "group", "leaf"])
    expect(lines.map((l) => /op=(\S+)/.exec(l)?.[1])).toEqual(["test.warn"])
    expect(getLogLevel()).toBe("warn")
  })

  it("without the flag, the level stays what VIPFARM_LOG set", async () => {
    setLogLevel("warn")
    capture()
    await run(["group", "leaf"])
    expect(lines.map((l) => /op=(\S+)/.exec(l)?.[1])).toEqual(["test.warn"])
  })

  it("refuses a level that is not one of vipfarm's", async () => {
    setLogLevel("info")
    capture()
    const r = await run(["group", "leaf", "--log-level", "verbose"])
    expect(r._tag).toBe("Failure")
    expect(lines.join("")).not.toMatch(/op=test\./)
    expect(getLogLevel()).toBe("info")
  })

  it("names an invalid VIPFARM_LOG", () => {
    expect(envLogLevelError({ VIPFARM_LOG: "verbose" })).toBe("VIPFARM_LOG=verbose is not a log level (debug, info, warn, error)")
    expect(envLogLevelError({ VIPFARM_LOG: "debug" })).toBeNull()
    expect(envLogLevelError({})).toBeNull()
  })
})

describe("the farm command and its log level", () => {
  it("refuses an invalid VIPFARM_LOG with exit status 2, naming the value", async () => {
    const r = await farm(["config", "check", "/nonexistent.yaml"], { VIPFARM_LOG: "verbose" })
    expect(r.code).toBe(2)
    expect(r.stderr).toBe("farm: VIPFARM_LOG=verbose is not a log level (debug, info, warn, error)\n")
  }, 120_000)

  it("offers --log-level with vipfarm's levels on a subcommand, and refuses others", async () => {
    // each start compiles the CLI through tsx: slow on a loaded machine, so both at once
    const [help, bad] = await Promise.all([farm(["config", "check", "--help"], {}), farm(["status", "--log-level", "trace"], {})])
    expect(help.stdout).toMatch(/--log-level <debug\|info\|warn\|error>/)
    expect(help.stdout).not.toMatch(/trace|fatal/)
    expect(bad.code).not.toBe(0)
    expect(bad.stderr + bad.stdout).toMatch(/log-level/)
  }, 120_000)
})
