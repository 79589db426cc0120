import { afterEach, describe, expect, it, vi } from "vitest"
import { formatLine, getLogLevel, isLevel, levelFromEnv, log, setLogLevel } from "./log.ts"

describe("log", () => {
  const saved = getLogLevel()
  afterEach(() => {
    setLogLevel(saved)
    vi.restoreAllMocks()
  })

  it("formats logfmt with the shared keys first", () => {
    expect(formatLine("info", "handoff.done", { seq: 7, zeta: "a b", node: "s1", vip: "198.18.0.100", skip: undefined }, new Date(0)))
      .toBe('ts=1970-01-01T00:00:00.000Z level=info op=handoff.done node=s1 vip=198.18.0.100 seq=7 zeta="a b"')
  })

  it("prints only lines at or above the level set", () => {
    const out: Array<string> = []
    vi.spyOn(process.stderr, "write").mockImplementation(((s: string) => out.push(s) > 0) as typeof process.stderr.write)
    setLogLevel("warn")
    for (const l of ["debug", "info", "warn", "error"] as const) log(l, `t.${l}`)
    expect(out.map((l) => /op=(\S+)/.exec(l)?.[1])).toEqual(["t.warn", "t.error"])
  })

  it("reads VIPFARM_LOG: a level, unset or empty (info), or an error naming the value", () => {
    expect(levelFromEnv("debug")).toEqual({ level: "debug" })
    expect(levelFromEnv(undefined)).toEqual({ level: "info" })
    expect(levelFromEnv("")).toEqual({ level: "info" })
    expect(levelFromEnv("verbose")).toEqual({ error: "VIPFARM_LOG=verbose is not a log level (debug, info, warn, error)" })
    expect(levelFromEnv("INFO")).toHaveProperty("error")
    expect(isLevel("warn") && !isLevel("trace")).toBe(true)
  })
})
