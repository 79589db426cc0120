/**
 * The farm's services: virtual IPs and their port rules, as carried by configuration
 * events and the daemon's config file.
 */
import { Schema } from "effect"
import { addressWords, affinityNames } from "./hash.ts"

const isPortText = (s: string): boolean => {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(s)
  if (!m) return false
  const lo = Number(m[1])
  const hi = m[2] === undefined ? lo : Number(m[2])
  return lo <= hi && hi <= 65535
}

/** A port: a number, a "lo-hi" range, or "*" for every port. */
export const Port = Schema.Union([
  Schema.Int.check(Schema.isBetween({ minimum: 0, maximum: 65535 })),
  Schema.Literal("*"),
  Schema.String.check(Schema.makeFilter((s: string) => isPortText(s) || `expected a port or "lo-hi" range, got "${s}"`))
])

/** A port rule of a VIP. */
export const Rule = Schema.Struct({
  proto: Schema.Literals(["tcp", "udp"]),
  ports: Schema.Array(Port),
  affinity: Schema.Literals(affinityNames),
  /** multi-host: buckets shared by weight (default); single-host: all on the live server of best priority. */
  mode: Schema.optionalKey(Schema.Literals(["multi-host", "single-host"]))
})
/** A port rule of a VIP. */
export type Rule = typeof Rule.Type

const isAddress = (s: string): boolean => {
  try {
    addressWords(s)
    return true
  } catch {
    return false
  }
}

/** An IPv4 or IPv6 address text. */
export const Address = Schema.String.check(
  Schema.makeFilter((s: string) => isAddress(s) || `expected an IPv4 or IPv6 address, got "${s}"`)
)

/** A virtual IP and its rules. */
export const Vip = Schema.Struct({
  address: Address,
  rules: Schema.Array(Rule)
})
/** A virtual IP and its rules. */
export type Vip = typeof Vip.Type

/** An inclusive port range. */
export interface PortRange {
  readonly lo: number
  readonly hi: number
}

/** The port ranges of a rule; an empty list or "*" means every port. */
export const portRanges = (rule: Rule): Array<PortRange> => {
  if (rule.ports.length === 0) return [{ lo: 0, hi: 65535 }]
  return rule.ports.map((p) => {
    if (typeof p === "number") return { lo: p, hi: p }
    if (p === "*") return { lo: 0, hi: 65535 }
    const [lo, hi] = p.split("-").map(Number)
    return { lo, hi: hi ?? lo }
  })
}

/**
 * The table each rule uses: table 0 is the farm's weighted share for every multi-host rule;
 * each single-host rule gets its own table (1, 2, ...), in configuration order.
 */
export const ruleTables = (vips: ReadonlyArray<Vip>): Array<Array<number>> => {
  let next = 1
  return vips.map((vip) => vip.rules.map((rule) => (rule.mode === "single-host" ? next++ : 0)))
}

/** Number of tables a configuration needs (1 + its single-host rules). */
export const tableCount = (vips: ReadonlyArray<Vip>): number =>
  1 + vips.reduce((n, vip) => n + vip.rules.filter((r) => r.mode === "single-host").length, 0)
