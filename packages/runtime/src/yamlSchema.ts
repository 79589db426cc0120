/**
 * YAML decoded with Effect Schema, every error naming the file, the line and the key
 * (`file:line: key: problem`). The same approach as `config.ts`, factored for other files
 * (application modules); `config.ts` may move onto it.
 */
import { Result, Schema, SchemaIssue } from "effect"
import { Alias, type Document, isPair, isScalar, isSeq, LineCounter, type Node, type Pair, parseDocument, visit } from "yaml"

/** A problem in a YAML file: file, line and key, and what is wrong. */
export class YamlError extends Schema.TaggedError<YamlError>()("YamlError", {
  file: Schema.String,
  line: Schema.Number,
  key: Schema.String,
  problem: Schema.String
}) {
  override get message(): string {
    return `${this.file}:${this.line}: ${this.key === "" ? "" : `${this.key}: `}${this.problem}`
  }
}

/** A key as written in a path: plain, or quoted and shortened (an empty, multi-line or odd key). */
const keyPart = (k: string): string =>
  /^[A-Za-z0-9_.@%$/-]+$/.test(k) ? k : JSON.stringify(k.length > 40 ? `${k.slice(0, 40)}...` : k)

/** `a.b[2].c` from a path. */
export const keyText = (path: ReadonlyArray<PropertyKey>): string =>
  path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${keyPart(String(p))}`)).join("")

/** A parsed YAML document with line lookup by key path. */
export interface YamlDoc {
  readonly file: string
  readonly value: unknown
  /** The line of the deepest node that exists along `path` (1 when none). */
  readonly lineOf: (path: ReadonlyArray<PropertyKey>) => number
  /** An error at `path`. */
  readonly error: (path: ReadonlyArray<PropertyKey>, problem: string) => YamlError
}

/** YAML versions a file may declare with `%YAML` (the ones the `yaml` library parses). */
const YAML_VERSIONS = ["1.1", "1.2"]

/** At most this many nodes an alias may expand to (yaml's default, a "billion laughs" guard). */
const MAX_ALIAS_COUNT = 100

/** The key path of `node` given its ancestors (as yaml's `visit` passes them). */
const pathOf = (ancestors: ReadonlyArray<unknown>, node: unknown): Array<PropertyKey> => {
  const chain = [...ancestors, node]
  const out: Array<PropertyKey> = []
  chain.forEach((n, i) => {
    if (isPair(n)) out.push(isScalar(n.key) ? String(n.key.value) : String(n.key))
    else if (isSeq(n) && i + 1 < chain.length) {
      const at = n.items.indexOf(chain[i + 1] as never)
      if (at >= 0) out.push(at)
    }
  })
  return out
}

const rangeOf = (n: unknown): [number, number, number] | undefined => (n as { range?: [number, number, number] } | null | undefined)?.range ?? undefined

/**
 * The deepest key path whose pair holds text offset `offset`, else the last key written before
 * it (a syntax error between keys), else empty. `atKey`: a pair whose key starts at `offset`
 * holds it (a duplicate key); otherwise an error there belongs to what came before.
 */
const pathAt = (doc: Document, offset: number, atKey = false): Array<PropertyKey> => {
  let best: Array<PropertyKey> = []
  let before: { start: number; path: Array<PropertyKey> } | null = null
  visit(doc, {
    Pair: (_k, pair, ancestors) => {
      const start = rangeOf(pair.key)?.[0]
      const end = rangeOf(pair.value)?.[2] ?? rangeOf(pair.key)?.[2]
      if (start === undefined || end === undefined) return
      if ((atKey ? start <= offset : start < offset) && offset <= end) {
        const p = pathOf(ancestors, pair)
        if (p.length >= best.length) best = p
      }
      if (start < offset && (before === null || start >= before.start)) before = { start, path: pathOf(ancestors, pair) }
    }
  })
  return best.length > 0 ? best : (before as { path: Array<PropertyKey> } | null)?.path ?? []
}

/**
 * For an error outside the structure yaml could compose (a broken stream): the first key written
 * on its line, else the last one written on a line before it, else the line's first word.
 */
const writtenKey = (text: string, line: number): Array<PropertyKey> => {
  const all = text.split("\n")
  for (let l = line - 1; l >= 0; l--) {
    const keys = [...(all[l] ?? "").replace(/#.*$/, "").matchAll(/([A-Za-z_][\w.-]*)[ \t]*:(?:\s|$)/g)].map((m) => m[1])
    if (keys.length > 0) return [l === line - 1 ? keys[0] : keys[keys.length - 1]]
  }
  // no key written up to there (the first key itself is broken): what the line starts with
  const first = /([^\s:]+)/.exec(all[line - 1] ?? "")
  return first === null ? [] : [first[1].slice(0, 40)]
}

/** Where a duplicate key at `offset` was first written: the line of the earlier pair with the same key. */
const firstLineOfKey = (doc: Document, offset: number, lines: LineCounter): number | null => {
  let found: number | null = null
  visit(doc, {
    Map: (_k, map) => {
      const dup = map.items.find((p) => rangeOf(p.key)?.[0] === offset)
      if (dup === undefined) return
      const key = isScalar(dup.key) ? dup.key.value : dup.key
      const first = map.items.find((p: Pair) => (isScalar(p.key) ? p.key.value : p.key) === key)
      const at = rangeOf(first?.key)?.[0]
      if (first !== dup && at !== undefined) found = lines.linePos(at).line
      return visit.BREAK
    }
  })
  return found
}

/**
 * `doc.toJS()`, an alias it cannot resolve (undefined, or expanding past the alias limit)
 * reported at the alias' line and key rather than thrown.
 */
const toValue = (doc: Document, file: string, lines: LineCounter): Result.Result<unknown, YamlError> => {
  let current: { node: Alias; path: Array<PropertyKey> } | null = null
  visit(doc, {
    Alias: (_k, node, ancestors) => {
      const path = pathOf(ancestors, node)
      // an own toJSON on each alias: the last one entered is the one a ReferenceError comes from
      node.toJSON = function (this: Alias, arg?: unknown, ctx?: unknown) {
        current = { node: this, path }
        return Alias.prototype.toJSON.call(this, arg, ctx as never)
      }
    }
  })
  try {
    return Result.succeed(doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {})
  } catch (e) {
    const at = current as { node: Alias; path: Array<PropertyKey> } | null
    const start = rangeOf(at?.node)?.[0]
    const message = (e as Error).message.split("\n")[0]
    const problem = /^Excessive alias count/.test(message)
      ? `alias *${at?.node.source ?? "?"} expands past ${MAX_ALIAS_COUNT} nodes (${message})`
      : at !== null ? `${message.replace(/: [^:]*$/, "")}: *${at.node.source}` : message
    return Result.fail(new YamlError({ file, line: start === undefined ? 1 : lines.linePos(start).line, key: keyText(at?.path ?? []), problem }))
  }
}

/** Every YAML syntax error of a text (duplicate keys included), or the parsed document. */
export const parseYamlAll = (text: string, file: string): Result.Result<YamlDoc, Array<YamlError>> => {
  const lines = new LineCounter()
  const doc: Document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  const errors = doc.errors.map((e) => {
    const offset = e.pos[0]
    const found = pathAt(doc, offset, e.code === "DUPLICATE_KEY")
    const path = found.length > 0 ? found : writtenKey(text, lines.linePos(offset).line)
    const first = e.code === "DUPLICATE_KEY" ? firstLineOfKey(doc, offset, lines) : null
    const problem = e.code === "DUPLICATE_KEY"
      ? `duplicate key${first === null ? "" : ` (first set at line ${first})`}`
      : e.message.split("\n")[0]
    return new YamlError({ file, line: lines.linePos(offset).line, key: keyText(path), problem })
  })
  // yaml falls back to 1.2 on an unknown `%YAML` version (a warning): refuse it instead
  for (const w of doc.warnings) {
    if (w.code !== "BAD_DIRECTIVE") continue
    const problem = w.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "")
    errors.push(new YamlError({ file, line: lines.linePos(w.pos[0]).line, key: "%YAML", problem: /YAML version/.test(problem) ? `${problem} (${YAML_VERSIONS.join(" or ")})` : problem }))
  }
  // a mapping or sequence used as a key: toJS would stringify it (and print a warning)
  visit(doc, {
    Pair: (_k, pair, ancestors) => {
      if (pair.key === null || isScalar(pair.key)) return
      const start = rangeOf(pair.key)?.[0] ?? 0
      const written = text.slice(start, rangeOf(pair.key)?.[1] ?? start).replace(/\s+/g, " ").slice(0, 40)
      errors.push(new YamlError({ file, line: lines.linePos(start).line, key: keyText([...pathOf(ancestors, pair).slice(0, -1), written]), problem: "a key must be a plain value, not a mapping, sequence or alias" }))
      return visit.SKIP
    }
  })
  if (errors.length > 0) return Result.fail(errors.sort((a, b) => a.line - b.line))
  const value = toValue(doc, file, lines)
  if (Result.isFailure(value)) return Result.fail([value.failure])
  const lineOf = (path: ReadonlyArray<PropertyKey>): number => {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as Array<unknown>, true)
      const range = rangeOf(node as Node | null | undefined)
      if (range) return lines.linePos(range[0]).line
    }
    return 1
  }
  return Result.succeed({
    file,
    value: value.success,
    lineOf,
    error: (path, problem) => new YamlError({ file, line: lineOf(path), key: keyText(path), problem })
  })
}

/**
 * Text of a YAML file's bytes, decoded strictly as UTF-8: a byte sequence that is not UTF-8 is
 * an error naming its line, column and the key it is in (a lenient decode would turn it into
 * U+FFFD and accept it).
 */
export const decodeUtf8 = (bytes: Uint8Array, file: string): Result.Result<string, YamlError> => {
  try {
    return Result.succeed(new TextDecoder("utf-8", { fatal: true }).decode(bytes))
  } catch {
    const at = firstInvalidUtf8(bytes)
    const lineStart = bytes.lastIndexOf(0x0a, at - 1) + 1
    const line = bytes.subarray(0, lineStart).reduce((n, b) => n + (b === 0x0a ? 1 : 0), 1)
    const column = [...new TextDecoder().decode(bytes.subarray(lineStart, at))].length + 1
    const before = new TextDecoder().decode(bytes.subarray(0, at))
    const lenient = new TextDecoder().decode(bytes)
    const doc = parseDocument(lenient, { prettyErrors: false })
    const found = pathAt(doc, before.length, true)
    return Result.fail(new YamlError({
      file, line, key: keyText(found.length > 0 ? found : writtenKey(lenient, line)),
      problem: `column ${column}: byte 0x${bytes[at].toString(16).padStart(2, "0")} is not UTF-8 (save the file as UTF-8)`
    }))
  }
}

/** The offset of the first byte that does not belong to a valid UTF-8 sequence (RFC 3629). */
export const firstInvalidUtf8 = (b: Uint8Array): number => {
  let i = 0
  while (i < b.length) {
    const c = b[i]
    const [n, lo, hi] = c < 0x80 ? [0, 0, 0]
      : c >= 0xc2 && c <= 0xdf ? [1, 0x80, 0xbf]
      : c === 0xe0 ? [2, 0xa0, 0xbf] : c === 0xed ? [2, 0x80, 0x9f] : c >= 0xe1 && c <= 0xef ? [2, 0x80, 0xbf]
      : c === 0xf0 ? [3, 0x90, 0xbf] : c === 0xf4 ? [3, 0x80, 0x8f] : c >= 0xf1 && c <= 0xf3 ? [3, 0x80, 0xbf]
      : [-1, 0, 0]
    if (n < 0 || i + n >= b.length) return i
    if (n > 0 && (b[i + 1] < lo || b[i + 1] > hi)) return i
    for (let k = 2; k <= n; k++) if (b[i + k] < 0x80 || b[i + k] > 0xbf) return i
    i += n + 1
  }
  return b.length
}

/** Parse YAML text (duplicate keys are errors); `file` is used in messages only. */
export const parseYaml = (text: string, file: string): Result.Result<YamlDoc, YamlError> => {
  const r = parseYamlAll(text, file)
  return Result.isFailure(r) ? Result.fail(r.failure[0]) : Result.succeed(r.success)
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/** Every schema issue of a parsed value, as YamlErrors in file order (empty when it decodes). */
export const yamlIssues = <S extends Schema.Top>(schema: S, doc: YamlDoc, value: unknown = doc.value): Array<YamlError> => {
  const decoded = Schema.decodeUnknownResult(schema as any, { onExcessProperty: "error", errors: "all" })(value) as Result.Result<unknown, { issue: SchemaIssue.Issue }>
  if (Result.isSuccess(decoded)) return []
  return formatter(decoded.failure.issue).issues
    .map((issue) => doc.error((issue.path ?? []).map((p) => (typeof p === "object" && p !== null && "key" in p ? (p as { key: PropertyKey }).key : p)) as Array<PropertyKey>, issue.message))
    .sort((a, b) => a.line - b.line)
}

/** Decode a parsed value with a schema (excess keys are errors); the first issue becomes a YamlError. */
export const decodeYaml = <S extends Schema.Top>(
  schema: S,
  doc: YamlDoc,
  value: unknown = doc.value
): Result.Result<S["Type"], YamlError> => {
  const decoded = Schema.decodeUnknownResult(schema as any, { onExcessProperty: "error", errors: "all" })(value) as Result.Result<S["Type"], { issue: SchemaIssue.Issue }>
  if (Result.isSuccess(decoded)) return Result.succeed(decoded.success)
  const first = formatter(decoded.failure.issue).issues[0]
  const path = (first?.path ?? []).map((p) => (typeof p === "object" && p !== null && "key" in p ? (p as { key: PropertyKey }).key : p)) as Array<PropertyKey>
  return Result.fail(doc.error(path, first?.message ?? "invalid"))
}

/** Parse and decode YAML text in one step. */
export const parseYamlWith = <S extends Schema.Top>(schema: S, text: string, file: string): Result.Result<S["Type"], YamlError> => {
  const doc = parseYaml(text, file)
  return Result.isFailure(doc) ? doc : decodeYaml(schema, doc.success)
}
