#!/usr/bin/env node
/**
 * vipfarm's build: bundles the `farm` command (packages/cli/src/main.ts) with esbuild into
 * dist/ (entry point dist/farm.mjs) and copies, next to it, every asset the code finds through `import.meta.url`
 * (BPF objects, application modules, simulation scenarios, the audit page, the lab's helper
 * scripts) in the same repository-relative layout.
 *
 * The bundle is CommonJS (`bundle-HASH.cjs`) run by the entry point `farm.mjs` through V8's code
 * cache (see loader below).
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
import { chmodSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from "node:fs"
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
      const url = `new URL(${JSON.stringify(`./${rel.split("\\").join("/")}`)}, __vipfarmBase).href`
      return { contents: text.replaceAll("import.meta.url", url), loader: args.path.endsWith(".ts") || args.path.endsWith(".mts") ? "ts" : "js" }
    })
  }
}

/**
 * The entry point, `farm.mjs`: runs the bundle through V8's code cache. Node 20 has no compile
 * cache for ES modules, and parsing and compiling the 2 MB bundle is a third of a command's
 * start-up; a CommonJS bundle compiled by `vm.Script` with the cache the build wrote skips
 * most of it (a cache V8 rejects, e.g. from another Node version, costs nothing but the time
 * saved). The bundle's name carries its content hash, so a cache never meets another bundle.
 */
const loader = (bundle) => `// The farm command: runs ${bundle} (scripts/build.mjs) through its V8 code cache.
import { readFileSync, renameSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname } from "node:path"
import { fileURLToPath } from "node:url"
import { Script } from "node:vm"

const file = fileURLToPath(new URL("./${bundle}", import.meta.url))
const cacheFile = file + ".cache"
const require = createRequire(file)
let cachedData
try { cachedData = readFileSync(cacheFile) } catch {}
const script = new Script(require("node:module").wrap(readFileSync(file, "utf8")), { filename: file, cachedData })
cachedData = undefined // compiled: the 2 MB buffer need not live as long as the daemon
if (process.env.VIPFARM_WRITE_CODE_CACHE === "1") {
  delete process.env.VIPFARM_WRITE_CODE_CACHE
  process.once("exit", () => { writeFileSync(cacheFile + ".tmp", script.createCachedData()); renameSync(cacheFile + ".tmp", cacheFile) })
}
const module = { exports: {}, filename: file, id: file, loaded: false }
script.runInThisContext().call(module.exports, module.exports, require, module, file, dirname(file))
`

/**
 * Build the bundle and its assets into `out` (default dist/): `bundle-HASH.cjs`, its code
 * cache, and `farm.mjs` (the entry point) written last and renamed into place, so a `farm`
 * started meanwhile runs the old build or the new one, never half of one. Assets are copied
 * over the old ones.
 */
export const buildFarm = async (out = join(ROOT, "dist")) => {
  mkdirSync(out, { recursive: true })
  const tmp = join(out, `.bundle.cjs.tmp-${process.pid}`)
  const tmpEntry = join(out, `.farm-tmp-${process.pid}.mjs`)
  // loaded here: bin/farm.mjs imports this file for its staleness check and must stay fast
  const { build } = await import("esbuild")
  const { createHash } = await import("node:crypto")
  const { execFileSync } = await import("node:child_process")
  // the build is dated when it starts: a source edited during the build is newer
  const started = new Date()
  try {
    await build({
      entryPoints: [join(ROOT, "packages/cli/src/main.ts")],
      outfile: tmp,
      bundle: true,
      platform: "node",
      target: "node20",
      // CommonJS: the entry point compiles it with V8's code cache (see loader)
      format: "cjs",
      // koffi loads its native addon from its own package directory: it stays a package
      external: ["koffi"],
      // what each source file's import.meta.url is made relative to (see importMetaUrlPlugin)
      banner: { js: "const __vipfarmBase = require(\"node:url\").pathToFileURL(__filename).href;" },
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
    writeFileSync(bin, "#!/usr/bin/env node\n// The `farm` command of this build: the entry point three directories up.\nawait import(\"../../../farm.mjs\")\n")
    chmodSync(bin, 0o755)
    const bundle = `bundle-${createHash("sha256").update(readFileSync(tmp)).digest("hex").slice(0, 16)}.cjs`
    renameSync(tmp, join(out, bundle))
    writeFileSync(tmpEntry, loader(bundle))
    // the code cache: what `farm --help` compiles (the code every command runs at start-up)
    execFileSync(process.execPath, [tmpEntry, "--help"], { env: { ...process.env, VIPFARM_WRITE_CODE_CACHE: "1" }, stdio: "ignore" })
    utimesSync(tmpEntry, started, started)
    renameSync(tmpEntry, join(out, "farm.mjs"))
    for (const f of readdirSync(out)) if (/^bundle-[0-9a-f]{16}\.cjs(\.cache)?$/.test(f) && !f.startsWith(bundle)) rmSync(join(out, f), { force: true })
  } finally {
    rmSync(tmp, { force: true })
    rmSync(tmpEntry, { force: true })
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
