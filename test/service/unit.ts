/**
 * vipfarm's systemd unit as systemd reads it: `systemd-analyze verify` of
 * packaging/vipfarm.service with drop-ins from packaging/vipfarm.service.d (no running systemd
 * needed), and the sandbox settings parsed from systemd's own dump of the unit, so that a test
 * can run the daemon's application commands under exactly those settings ({@link sandboxArgs}).
 */
import { spawnSync } from "node:child_process"
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

/** packaging/ in this repository. */
export const PACKAGING = new URL("../../packaging/", import.meta.url).pathname

/** The unit's sandbox as systemd parsed it. */
export interface UnitView {
  /** Exit status and output of a plain `systemd-analyze verify` (warnings included). */
  readonly status: number | null
  readonly output: string
  /** CapabilityBoundingSet, lower case without `cap_` (e.g. `net_admin`), sorted. */
  readonly caps: ReadonlyArray<string>
  readonly ambient: ReadonlyArray<string>
  readonly readWritePaths: ReadonlyArray<string>
  readonly protectSystem: string
  readonly protectHome: string
  readonly privateTmp: string
  readonly umask: string
  readonly runtimeDirectory: string
  /** From the unit files (the dump does not show it). */
  readonly noNewPrivileges: boolean
  /** Type=, NotifyAccess=, Group= as systemd parsed them. */
  readonly type: string
  readonly notifyAccess: string
  readonly group: string
  /** The command lines of ExecStartPre=, ExecStart=, ExecReload= (from the unit files: the dump splits them). */
  readonly execStartPre: ReadonlyArray<string>
  readonly execStart: ReadonlyArray<string>
  readonly execReload: ReadonlyArray<string>
}

const capList = (v: string | undefined): Array<string> =>
  (v ?? "").split(/\s+/).filter((c) => c !== "").map((c) => c.toLowerCase().replace(/^cap_/, "")).sort()

/** The command lines of an Exec*= key over the unit and its drop-ins (an empty assignment resets). */
const execLines = (texts: ReadonlyArray<string>, key: string): Array<string> => {
  let out: Array<string> = []
  for (const t of texts) for (const m of t.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))) out = m[1] === "" ? [] : [...out, m[1]]
  return out
}

/**
 * Verify vipfarm.service with the given drop-ins (file names under packaging/vipfarm.service.d,
 * or `{name, text}` written as they are) and read back its sandbox.
 */
export const analyzeUnit = (dropIns: ReadonlyArray<string | { readonly name: string; readonly text: string }> = [], unitText?: string): UnitView => {
  const dir = mkdtempSync(join(tmpdir(), "vipfarm-unit-"))
  try {
    const unit = unitText ?? readFileSync(join(PACKAGING, "vipfarm.service"), "utf8")
    // the unit runs the packaged /usr/bin/farm, which verify requires to exist: a stand-in here
    // (test/package/deb.test.ts verifies the installed unit against the installed command)
    writeFileSync(join(dir, "farm"), "#!/bin/sh\nexit 0\n", { mode: 0o755 })
    writeFileSync(join(dir, "vipfarm.service"), unit.replaceAll("/usr/bin/farm ", `${join(dir, "farm")} `))
    const texts = [unit]
    if (dropIns.length > 0) mkdirSync(join(dir, "vipfarm.service.d"))
    for (const d of dropIns) {
      if (typeof d === "string") {
        cpSync(join(PACKAGING, "vipfarm.service.d", d), join(dir, "vipfarm.service.d", d))
        texts.push(readFileSync(join(PACKAGING, "vipfarm.service.d", d), "utf8"))
      } else {
        writeFileSync(join(dir, "vipfarm.service.d", d.name), d.text)
        texts.push(d.text)
      }
    }
    // the trailing ":" appends systemd's own unit paths (targets the unit refers to)
    const env = { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:`, SYSTEMD_LOG_COLOR: "0" }
    const plain = spawnSync("systemd-analyze", ["verify", "vipfarm.service"], { cwd: dir, env, encoding: "utf8", timeout: 30_000 })
    const debug = spawnSync("systemd-analyze", ["verify", "vipfarm.service"], { cwd: dir, env: { ...env, SYSTEMD_LOG_LEVEL: "debug" }, encoding: "utf8", timeout: 30_000 })
    const dump = (debug.stdout + debug.stderr).split("\n")
    const start = dump.findIndex((l) => /-> Unit vipfarm\.service:/.test(l))
    if (start < 0) throw new Error(`systemd-analyze printed no dump of vipfarm.service:\n${plain.stdout}${plain.stderr}`)
    const props = new Map<string, string>()
    for (const l of dump.slice(start + 1)) {
      if (/-> Unit /.test(l)) break
      const m = /^\t\t([A-Za-z]+): (.*)$/.exec(l)
      if (m && !props.has(m[1])) props.set(m[1], m[2])
    }
    const nnp = texts.flatMap((t) => [...t.matchAll(/^NoNewPrivileges=(\S+)/gm)].map((m) => m[1])).at(-1)
    return {
      status: plain.status,
      output: (plain.stdout + plain.stderr).trim(),
      caps: capList(props.get("CapabilityBoundingSet")),
      ambient: capList(props.get("AmbientCapabilities")),
      readWritePaths: (props.get("ReadWritePaths") ?? "").split(/\s+/).filter((p) => p !== ""),
      protectSystem: props.get("ProtectSystem") ?? "",
      protectHome: props.get("ProtectHome") ?? "",
      privateTmp: props.get("PrivateTmp") ?? "",
      umask: props.get("UMask") ?? "",
      runtimeDirectory: props.get("RuntimeDirectory") ?? "",
      noNewPrivileges: nnp === "yes" || nnp === "true" || nnp === "1",
      type: props.get("Type") ?? "",
      notifyAccess: props.get("NotifyAccess") ?? "",
      group: props.get("Group") ?? texts.flatMap((t) => [...t.matchAll(/^Group=(\S+)/gm)].map((m) => m[1])).at(-1) ?? "",
      execStartPre: execLines(texts, "ExecStartPre"),
      execStart: execLines(texts, "ExecStart"),
      execReload: execLines(texts, "ExecReload")
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The sandbox script (run inside `unshare --mount`). */
export const SANDBOX = new URL("./sandbox.sh", import.meta.url).pathname

/**
 * argv that runs `command` as the unit would: in a private mount namespace with the unit's file
 * system (ProtectSystem=strict, ReadWritePaths, PrivateTmp, ProtectHome, RuntimeDirectory, UMask),
 * then through setpriv with exactly its capability bounding set, no inheritable or ambient
 * capabilities, and no_new_privs. Only the settings below are supported: anything else fails.
 */
export const sandboxArgs = (u: UnitView, command: ReadonlyArray<string>): Array<string> => {
  if (u.protectSystem !== "strict") throw new Error(`sandbox: ProtectSystem=${u.protectSystem} is not emulated (strict is)`)
  if (u.privateTmp !== "yes") throw new Error(`sandbox: PrivateTmp=${u.privateTmp} is not emulated (yes is)`)
  if (u.protectHome !== "yes") throw new Error(`sandbox: ProtectHome=${u.protectHome} is not emulated (yes is)`)
  if (u.ambient.length > 0) throw new Error(`sandbox: AmbientCapabilities=${u.ambient.join(" ")} is not emulated (root needs none)`)
  if (!u.noNewPrivileges) throw new Error("sandbox: the unit must set NoNewPrivileges=yes")
  const caps = ["-all", ...u.caps.map((c) => `+${c}`)].join(",")
  const runtime = u.runtimeDirectory.split(/\s+/).filter((d) => d !== "").map((d) => `/run/${d}`).join(" ")
  return ["unshare", "--mount", "--propagation", "private", "sh", SANDBOX, caps, u.readWritePaths.join(" "), runtime, u.umask || "0022", "--", ...command]
}
