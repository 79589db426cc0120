/**
 * The daemon's host state file: what it set on the host (VIPs on `lo`, ARP sysctls, virtual
 * MAC reception) and the values from before, written BEFORE each change. A daemon killed
 * with SIGKILL leaves it behind; the next daemon of the same farm, node and interface adopts
 * it, so that its SIGTERM restores the values from before the first daemon, not the killed
 * one's. Without the file (lost, or a daemon from before it existed), the farm's own marks
 * are recognised: a VIP on `lo` with the farm's label, the farm's virtual MAC in the fdb.
 *
 * The parsing and the decisions are pure (unit-tested); hostNet.ts does the host commands.
 */
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs"
import { dirname } from "node:path"
import { Result, Schema } from "effect"
import { farmSeed } from "@vipfarm/domain"

/** How the virtual MAC's frames are received: the NIC's unicast filter (fdb entry) or promiscuous mode. */
export const MacMethod = Schema.Literals(["unicast-filter", "promiscuous"])

/**
 * What the daemon (and the daemons before it, since the first start) set on the host. The
 * same record travels in the restart state of a keep-serving restart (restart.ts).
 */
export const HostRecord = Schema.Struct({
  /** sysctl key -> its value before the first daemon set it. */
  sysctls: Schema.Record(Schema.String, Schema.String),
  /** VIPs a daemon added to lo (others were there before and stay). */
  vipsAdded: Schema.Array(Schema.String),
  /** Absent until the daemon gets to the virtual MAC. */
  mac: Schema.optionalKey(MacMethod),
  /** With `mac: promiscuous`: whether promiscuous mode was on before (then it stays on). */
  promiscBefore: Schema.optionalKey(Schema.Boolean)
})

/** See {@link HostRecord}. */
export type HostRecord = typeof HostRecord.Type

/** The file: the record and whom it is for. */
export const HostStateFile = Schema.Struct({
  v: Schema.Literal(1),
  farm: Schema.String,
  node: Schema.String,
  interface: Schema.String,
  vmac: Schema.String,
  /** The process that wrote it (for a person reading the file). */
  pid: Schema.Int,
  host: HostRecord
})

/** See {@link HostStateFile}. */
export type HostStateFile = typeof HostStateFile.Type

/** Whose host state a daemon may adopt. */
export interface HostOwner {
  readonly farm: string
  readonly node: string
  readonly interface: string
  readonly vmac: string
}

/** An empty record: nothing set yet. */
export const emptyHostRecord = (): HostRecord => ({ sysctls: {}, vipsAdded: [] })

/** Where a daemon with this control socket keeps its host state (next to the socket, as its restart state). */
export const hostStatePath = (control: string): string => `${control}.host.json`

const decodeFile = Schema.decodeUnknownResult(HostStateFile)
const decodeRecord = Schema.decodeUnknownResult(HostRecord)

/**
 * The record in a host state file's text, if it is valid and for this owner; `why` says what
 * was wrong otherwise (for the log).
 */
export const parseHostState = (text: string, who: HostOwner): { record: HostRecord | null; why: string } => {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (e) {
    return { record: null, why: `unreadable: ${(e as Error).message}` }
  }
  const r = decodeFile(json)
  if (Result.isFailure(r)) return { record: null, why: `invalid: ${r.failure.message}` }
  const f = r.success
  if (f.farm !== who.farm || f.node !== who.node || f.interface !== who.interface || f.vmac !== who.vmac) {
    return { record: null, why: `for farm ${f.farm} node ${f.node} interface ${f.interface}` }
  }
  return { record: f.host, why: "ok" }
}

/** A host record from elsewhere (a restart state, not schema-checked when written), or null if malformed. */
export const validHostRecord = (x: unknown): HostRecord | null => {
  const r = decodeRecord(x)
  return Result.isSuccess(r) ? r.success : null
}

/**
 * The record to adopt: the state file's (written before each change, so it holds everything
 * set) over the restart state's (the last record of a keep-serving restart); `source` for the log.
 */
export const chooseInherited = (
  fromFile: HostRecord | null,
  fromRestart: HostRecord | null
): { record: HostRecord | null; source: "file" | "restart" | "none" } =>
  fromFile !== null ? { record: fromFile, source: "file" } : fromRestart !== null ? { record: fromRestart, source: "restart" } : { record: null, source: "none" }

/** Write the state atomically and durably: a temporary file, fsync, rename, fsync of the directory. */
export const writeHostState = (path: string, s: HostStateFile): void => {
  const tmp = `${path}.tmp`
  const fd = openSync(tmp, "w", 0o600)
  try {
    writeSync(fd, JSON.stringify(s))
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
  renameSync(tmp, path)
  const dir = openSync(dirname(path), "r")
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}

/** Read the state file for this owner: null when absent (`why: none`), invalid or someone else's. */
export const readHostState = (path: string, who: HostOwner): { record: HostRecord | null; why: string } => {
  if (!existsSync(path)) return { record: null, why: "none" }
  try {
    return parseHostState(readFileSync(path, "utf8"), who)
  } catch (e) {
    return { record: null, why: `unreadable: ${(e as Error).message}` }
  }
}

/** Remove the state file (everything it names was undone). */
export const removeHostState = (path: string): void => {
  rmSync(path, { force: true })
  rmSync(`${path}.tmp`, { force: true })
}

/**
 * The label the daemon gives the IPv4 VIPs it adds to lo: `lo:vf` and the farm's seed in hex
 * (13 characters; a label must start with the device's name and fit IFNAMSIZ). A VIP with
 * this label was put there by a daemon of this farm.
 */
export const vipLabel = (farm: string): string => `lo:vf${(farmSeed(farm) >>> 0).toString(16).padStart(8, "0")}`

const isV6 = (address: string) => address.includes(":")

/** The prefix a VIP gets on lo (/32 or /128). */
export const vipPrefix = (address: string): string => `${address}/${isV6(address) ? 128 : 32}`

/**
 * A VIP in the output of `ip -o addr show dev lo`: whether it is there, and whether it carries
 * this farm's mark (IPv4: the farm's label; IPv6, which has no labels: a /128 with `nodad`,
 * as the daemon adds it).
 */
export const vipOnLo = (ipOutput: string, address: string, label: string): { present: boolean; marked: boolean } => {
  const prefix = vipPrefix(address)
  let present = false
  let marked = false
  for (const line of ipOutput.split("\n")) {
    const fields = line.replace(/\\/g, " ").trim().split(/\s+/)
    const at = fields.findIndex((f) => f === "inet" || f === "inet6")
    if (at < 0) continue
    const addr = fields[at + 1] ?? ""
    if (addr.slice(0, addr.indexOf("/")) !== address) continue
    present = true
    if (addr !== prefix) continue
    if (isV6(address) ? fields.includes("nodad") : fields.includes(label)) marked = true
  }
  return { present, marked }
}

/** Whether `bridge fdb show dev IF` lists this MAC as the device's own (`self`) entry. */
export const fdbHasSelf = (bridgeOutput: string, mac: string): boolean =>
  bridgeOutput.split("\n").some((line) => {
    const f = line.trim().split(/\s+/)
    return f[0]?.toLowerCase() === mac.toLowerCase() && f.includes("self")
  })

/** An `ip`/`bridge` failure that says the thing to add is there already. */
export const isAlreadyThere = (message: string): boolean => /File exists|EEXIST/i.test(message)

/** An `ip`/`bridge` failure that says the thing to remove is gone already. */
export const isAlreadyGone = (message: string): boolean =>
  /No such file or directory|Cannot assign requested address|Address not found|ENOENT|No such device|Cannot find device/i.test(message)

/** IFF_PROMISC in the value of /sys/class/net/IF/flags. */
export const promiscuousIn = (flags: string): boolean => (Number(flags.trim()) & 0x100) !== 0
