/**
 * Write docs/config.md and docs/vipfarm.schema.json from ConfigFile:
 * `npx tsx packages/runtime/scripts/gen-config-docs.ts` (from the repository root or anywhere).
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import { fileURLToPath } from "node:url"
import { CONFIG_DOC, CONFIG_SCHEMA, configJsonSchemaText, configMarkdown } from "./configDocs.ts"

const root = fileURLToPath(new URL("../../../", import.meta.url))
for (const [file, text] of [[CONFIG_DOC, configMarkdown()], [CONFIG_SCHEMA, configJsonSchemaText()]] as const) {
  mkdirSync(dirname(`${root}${file}`), { recursive: true })
  writeFileSync(`${root}${file}`, text)
  process.stdout.write(`wrote ${file}\n`)
}
