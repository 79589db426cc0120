/**
 * The configuration reference and the JSON Schema for editors, both generated from
 * `ConfigFile` (packages/runtime/src/config.ts): its Schema annotations (description, default,
 * examples) and its checks. `gen-config-docs.ts` writes them; a test fails when they are stale.
 */
import { JsonSchema, Schema } from "effect"
import { ConfigFile } from "../src/config.ts"

/** The files generated, relative to the repository root. */
export const CONFIG_DOC = "docs/config.md"
/** The JSON Schema file, relative to the repository root. */
export const CONFIG_SCHEMA = "docs/vipfarm.schema.json"
/** The command that regenerates both. */
export const GENERATE_COMMAND = "npx tsx packages/runtime/scripts/gen-config-docs.ts"

type Node = {
  readonly type?: string | ReadonlyArray<string>
  readonly description?: string
  readonly default?: unknown
  readonly examples?: ReadonlyArray<unknown>
  readonly enum?: ReadonlyArray<unknown>
  readonly pattern?: string
  readonly minimum?: number
  readonly maximum?: number
  readonly minLength?: number
  readonly minItems?: number
  readonly properties?: Readonly<Record<string, Node>>
  readonly required?: ReadonlyArray<string>
  readonly items?: Node
  readonly additionalProperties?: Node | boolean
  readonly anyOf?: ReadonlyArray<Node>
  readonly oneOf?: ReadonlyArray<Node>
  readonly title?: string
}

/** The JSON Schema (draft 2020-12) of the configuration file, unknown keys refused as the daemon does. */
export const configJsonSchema = (): Record<string, unknown> => {
  const doc = Schema.toJsonSchemaDocument(ConfigFile, { onExcessProperty: "error" })
  return {
    $schema: JsonSchema.META_SCHEMA_URI_DRAFT_2020_12,
    ...doc.schema,
    ...(Object.keys(doc.definitions).length > 0 ? { $defs: doc.definitions } : {})
  }
}

/** The JSON Schema file's text. */
export const configJsonSchemaText = (): string => JSON.stringify(configJsonSchema(), null, 2) + "\n"

const inline = (v: unknown): string => `\`${JSON.stringify(v)}\``

/** A schema's type in words. */
const typeText = (n: Node): string => {
  const alts = n.anyOf ?? n.oneOf
  if (alts !== undefined) return alts.map(typeText).join(", or ")
  if (n.enum !== undefined) return n.enum.length === 1 ? inline(n.enum[0]) : `one of ${n.enum.map(inline).join(", ")}`
  const range = n.minimum !== undefined && n.maximum !== undefined ? ` ${n.minimum} to ${n.maximum}` : ""
  switch (n.type) {
    case "integer":
      return `integer${range}`
    case "number":
      return `number${range}`
    case "string":
      return `string${n.pattern !== undefined ? ` matching \`${n.pattern}\`` : ""}${n.minLength !== undefined && n.pattern === undefined ? `, not empty` : ""}`
    case "array":
      return `list of ${n.items === undefined ? "values" : typeText(n.items)}${n.minItems !== undefined ? `, at least ${n.minItems}` : ""}`
    case "object":
      if (n.properties !== undefined) return "mapping (keys below)"
      if (typeof n.additionalProperties === "object") return `mapping of names to ${typeText(n.additionalProperties)}`
      return "mapping"
    default:
      return String(n.type ?? "any")
  }
}

interface Row {
  readonly path: string
  readonly node: Node
  readonly required: boolean
}

/** Every key of the schema, depth first in file order; list items as `key[]`. */
const rows = (n: Node, prefix: string, out: Array<Row>): Array<Row> => {
  for (const [k, child] of Object.entries(n.properties ?? {})) {
    const path = prefix === "" ? k : `${prefix}.${k}`
    out.push({ path, node: child, required: n.required?.includes(k) ?? false })
    if (child.properties !== undefined) rows(child, path, out)
    else if (child.type === "array" && child.items?.properties !== undefined) rows(child.items, `${path}[]`, out)
  }
  return out
}

/** The configuration reference (Markdown). */
export const configMarkdown = (): string => {
  const schema = configJsonSchema() as Node
  const all = rows(schema, "", [])
  const out = [
    "# vipfarm configuration reference",
    "",
    `<!-- generated from ConfigFile (packages/runtime/src/config.ts) by \`${GENERATE_COMMAND}\`; do not edit -->`,
    "",
    `${schema.description ?? ""} \`farm config check FILE\` validates a file as the daemon`,
    "does (every error with file:line and key); editors that read JSON Schema (YAML language",
    `servers) check it while you type with [vipfarm.schema.json](vipfarm.schema.json): a first line`,
    "`# yaml-language-server: $schema=PATH-OR-URL/vipfarm.schema.json`, or your editor's schema settings.",
    "Keys not listed here are errors; `list[]` stands for each item of a list.",
    "",
    "| key | type | default |",
    "|---|---|---|",
    ...all.map((r) => `| [\`${r.path}\`](#${anchor(r.path)}) | ${typeText(r.node).replace(/\|/g, "\\|")} | ${defaultText(r).replace(/\|/g, "\\|")} |`),
    ""
  ]
  for (const r of all) {
    out.push(`## \`${r.path}\``, "")
    if (r.node.description !== undefined) out.push(r.node.description, "")
    out.push(`- type: ${typeText(r.node)}`)
    out.push(`- default: ${defaultText(r)}`)
    for (const e of r.node.examples ?? []) out.push(`- example: \`${r.path.split(".").pop()?.replace(/\[\]$/, "")}: ${flow(e)}\``)
    out.push("")
  }
  return out.join("\n")
}

const defaultText = (r: Row): string =>
  r.required ? (r.path.includes(".") ? `required in \`${r.path.slice(0, r.path.lastIndexOf("."))}\`` : "required") : r.node.default !== undefined ? (typeof r.node.default === "string" && /\s/.test(r.node.default) ? r.node.default : inline(r.node.default)) : "none (optional)"

/** GitHub's heading anchor of a key's section. */
const anchor = (path: string): string => path.toLowerCase().replace(/[^a-z0-9 _-]/g, "")

/** A value in YAML flow style, as a config file writes it. */
const flow = (v: unknown): string => {
  if (Array.isArray(v)) return `[${v.map(flow).join(", ")}]`
  if (typeof v === "object" && v !== null) return `{${Object.entries(v).map(([k, x]) => `${k}: ${flow(x)}`).join(", ")}}`
  if (typeof v === "string") return /^[A-Za-z0-9_./@-][A-Za-z0-9_./@:-]*$/.test(v) && !/^\d+(-\d+)?$/.test(v) && v !== "*" ? v : JSON.stringify(v)
  return String(v)
}
