/**
 * YAML decoded with Effect Schema, every error naming the file, the line and the key
 * (`file:line: key: problem`). The same approach as `config.ts`, factored for other files
 * (application modules); `config.ts` may move onto it.
 */
import { Result, Schema, SchemaIssue } from "effect"
import { type Document, LineCounter, parseDocument } from "yaml"

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

/** `a.b[2].c` from a path. */
export const keyText = (path: ReadonlyArray<PropertyKey>): string =>
  path.map((p, i) => (typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`)).join("")

/** A parsed YAML document with line lookup by key path. */
export interface YamlDoc {
  readonly file: string
  readonly value: unknown
  /** The line of the deepest node that exists along `path` (1 when none). */
  readonly lineOf: (path: ReadonlyArray<PropertyKey>) => number
  /** An error at `path`. */
  readonly error: (path: ReadonlyArray<PropertyKey>, problem: string) => YamlError
}

/** Every YAML syntax error of a text (duplicate keys included), or the parsed document. */
export const parseYamlAll = (text: string, file: string): Result.Result<YamlDoc, Array<YamlError>> => {
  const lines = new LineCounter()
  const doc: Document = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true })
  if (doc.errors.length > 0) {
    return Result.fail(doc.errors.map((e) => new YamlError({ file, line: e.linePos?.[0].line ?? 1, key: "", problem: e.message.split("\n")[0] })))
  }
  const lineOf = (path: ReadonlyArray<PropertyKey>): number => {
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n) as Array<unknown>, true)
      const range = (node as { range?: [number, number, number] } | null | undefined)?.range
      if (range) return lines.linePos(range[0]).line
    }
    return 1
  }
  return Result.succeed({
    file,
    value: doc.toJS() ?? {},
    lineOf,
    error: (path, problem) => new YamlError({ file, line: lineOf(path), key: keyText(path), problem })
  })
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
