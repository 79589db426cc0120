#!/usr/bin/env node
/**
 * vipfarm's build: bundles the `farm` command (packages/cli/src/main.ts) with esbuild into
 * dist/farm.mjs and copies, next to it, every asset the code finds through `import.meta.url`
 * (BPF objects, application modules, simulation scenarios, the audit page, the lab's helper
 * scripts) in the same repository-relative layout.
 *
 * Why the layout: the sources find their assets relative to their own file
 * (`new URL("../bpf/x.o", import.meta.url)`). In one bundle every file shares the bundle's
 * URL, so each source file's `import.meta.url` is rewritten to the URL that file would have at
 * `dist/<its repository path>`; with the assets copied to `dist/<their repository path>`, every
 * such lookup resolves in the checkout's dist/ and in the Debian package's /usr/lib/vipfarm/
 * alike, and no source file changes.
 *
 *   node scripts/build.mjs            build into dist/
 *   node scripts/build.mjs --out DIR  build into DIR
 */
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"

/** The repository's root. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..")

/** Asset files and directories (repository-relative) the bundle reads at run time. */
export const ASSETS = [
  "packages/filter-xdp/bpf/vipfarm.bpf.o",
  "packages/filter-xdp/bpf/floor.bpf.o",
  "packages/filter-xdp/bpf/pass.bpf.o",
  "packages/runtime/modules",
  "packages/sim/scenarios",
  "packages/runtime/src/audit/page.html",
  "packages/runtime/src/audit/page.css",
  "packages/runtime/src/audit/page.js",
  "packages/runtime/src/lab/app.mjs",
  "packages/runtime/src/lab/probe.mjs"
]

/**
 * What the bundle is made of (repository-relative): a file here newer than the bundle makes it
 * stale. Test files (`*.test.ts`) are not part of it.
 */
export const SOURCES = [
  "packages/domain/src", "packages/filter-xdp/src", "packages/sim/src", "packages/runtime/src", "packages/cli/src",
  "package-lock.json", "scripts/build.mjs", ...ASSETS
]

/**
 * Rewrites `import.meta.url` in each of the repository's own source files to the URL of that
 * file under the bundle's directory (see the file comment).
 */
const importMetaUrlPlugin = {
  name: "vipfarm-import-meta-url",
  setup(b) {
    b.onLoad({ filter: /\.(ts|mts|mjs|js)$/ }, (args) => {
      const rel = relative(ROOT, args.path)
      if (rel.startsWith("..") || rel.split("/").includes("node_modules")) return undefined
      const text = readFileSync(args.path, "utf8")
      const url = `new URL(${JSON.stringify(`./${rel.split("\\").join("/")}`)}, import.meta.url).href`
      return { contents: text.replaceAll("import.meta.url", url), loader: args.path.endsWith(".ts") || args.path.endsWith(".mts") ? "ts" : "js" }
    })
  }
}

/**
 * Build the bundle and its assets into `out` (default dist/). The bundle is written beside and
 * renamed into place, so a `farm` started meanwhile runs the old bundle or the new one, never
 * half of one; assets are copied over the old ones.
 */
export const buildFarm = async (out = join(ROOT, "dist")) => {
  mkdirSync(out, { recursive: true })
  const tmp = join(out, `.farm.mjs.tmp-${process.pid}`)
  // loaded here: bin/farm.mjs imports this file for its staleness check and must stay fast
  const { build } = await import("esbuild")
  // the bundle is dated when the build starts: a source edited during the build is newer
  const started = new Date()
  try {
    await build({
      entryPoints: [join(ROOT, "packages/cli/src/main.ts")],
      outfile: tmp,
      bundle: true,
      platform: "node",
      target: "node20",
      format: "esm",
      // koffi loads its native addon from its own package directory: it stays a package
      external: ["koffi"],
      // the CommonJS dependencies bundled into an ES module call require() for node built-ins
      banner: { js: "import { createRequire as __vipfarmCreateRequire } from \"node:module\"\nconst require = __vipfarmCreateRequire(import.meta.url)" },
      plugins: [importMetaUrlPlugin],
      logLevel: "warning",
      legalComments: "none",
      // whitespace and syntax only: names stay readable in stack traces; parsing less text
      // is most of what a smaller bundle saves at start-up
      minifyWhitespace: true,
      minifySyntax: true
    })
    for (const a of ASSETS) {
      const from = join(ROOT, a)
      if (!existsSync(from)) throw new Error(`build: asset ${a} is missing (packages/filter-xdp: npm run build:bpf)`)
      cpSync(from, join(out, a), { recursive: true, force: true })
    }
    // what the lab spawns as "packages/cli/bin/farm.mjs" relative to its own file: the bundle
    const bin = join(out, "packages/cli/bin/farm.mjs")
    mkdirSync(dirname(bin), { recursive: true })
    writeFileSync(bin, "#!/usr/bin/env node\n// The `farm` command of this build: the bundle three directories up.\nawait import(\"../../../farm.mjs\")\n")
    chmodSync(bin, 0o755)
    utimesSync(tmp, started, started)
    renameSync(tmp, join(out, "farm.mjs"))
  } finally {
    rmSync(tmp, { force: true })
  }
  return out
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf("--out")
  const out = i > 0 ? resolve(process.argv[i + 1]) : undefined
  const t0 = performance.now()
  const dir = await buildFarm(out)
  process.stderr.write(`[build] ${relative(process.cwd(), join(dir, "farm.mjs")) || dir} in ${Math.round(performance.now() - t0)} ms\n`)
}
