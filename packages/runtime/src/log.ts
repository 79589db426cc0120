/**
 * One logging style for every vipfarm process: logfmt lines on stderr with the same keys
 * everywhere (ts, level, op, then node, vip, bucket, seq and any others), so a farm's logs
 * can be grepped and joined across servers.
 */

/** Log levels. */
export type Level = "debug" | "info" | "warn" | "error"

/** Fields of a log line; `op` names the operation. */
export type Fields = Readonly<Record<string, string | number | boolean | null | undefined>>

const ORDER = ["node", "vip", "bucket", "seq"]

const quote = (v: string): string => (/^[A-Za-z0-9_.:/@+-]+$/.test(v) ? v : JSON.stringify(v))

/** Format one log line (without the newline). */
export const formatLine = (level: Level, op: string, fields: Fields, now = new Date()): string => {
  const keys = Object.keys(fields).filter((k) => fields[k] !== undefined)
  keys.sort((a, b) => {
    const ia = ORDER.indexOf(a)
    const ib = ORDER.indexOf(b)
    return (ia < 0 ? 99 : ia) - (ib < 0 ? 99 : ib) || (a < b ? -1 : a > b ? 1 : 0)
  })
  const parts = [`ts=${now.toISOString()}`, `level=${level}`, `op=${quote(op)}`]
  for (const k of keys) parts.push(`${k}=${quote(String(fields[k]))}`)
  return parts.join(" ")
}

/** The log levels, least severe first. */
export const LEVELS: ReadonlyArray<Level> = ["debug", "info", "warn", "error"]

/** Whether a text names a log level. */
export const isLevel = (s: string): s is Level => (LEVELS as ReadonlyArray<string>).includes(s)

/**
 * The level `VIPFARM_LOG` asks for: its value, "info" when unset or empty, or an error text
 * naming a value that is not a level (the `farm` command refuses to start on it).
 */
export const levelFromEnv = (value: string | undefined): { readonly level: Level } | { readonly error: string } =>
  value === undefined || value === "" ? { level: "info" }
    : isLevel(value) ? { level: value }
    : { error: `VIPFARM_LOG=${value} is not a log level (${LEVELS.join(", ")})` }

const fromEnv = levelFromEnv(process.env.VIPFARM_LOG)
// an invalid value prints at the default level until the command line refuses it
let minLevel: Level = "level" in fromEnv ? fromEnv.level : "info"
const rank: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 }

/** Set the minimum level printed. */
export const setLogLevel = (level: Level): void => {
  minLevel = level
}

/** The minimum level printed. */
export const getLogLevel = (): Level => minLevel

/** Write one structured line to stderr. */
export const log = (level: Level, op: string, fields: Fields = {}): void => {
  if (rank[level] < rank[minLevel]) return
  process.stderr.write(formatLine(level, op, fields) + "\n")
}
