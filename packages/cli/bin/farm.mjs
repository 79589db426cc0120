#!/usr/bin/env node
// The `farm` command of a checkout: runs the bundle dist/farm.mjs (scripts/build.mjs), and
// builds it first when it is missing or any of its sources is newer (the lab and the e2e tests
// spawn this file while the TypeScript is being edited: a stale bundle is never run).
// The installed package runs /usr/lib/vipfarm/farm.mjs directly, without this check.
import { existsSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { ROOT, SOURCES, buildFarm } from "../../../scripts/build.mjs"

const DIST = join(ROOT, "dist")
const BUNDLE = join(DIST, "farm.mjs")

/** Newest modification time (ms) under `path`, test files excluded. */
const newest = (path) => {
  let st
  try { st = statSync(path) } catch { return 0 }
  if (!st.isDirectory()) return st.mtimeMs
  let m = st.mtimeMs
  for (const e of readdirSync(path, { withFileTypes: true })) {
    if (e.isFile() && /\.test\.ts$/.test(e.name)) continue
    const t = newest(join(path, e.name))
    if (t > m) m = t
  }
  return m
}

const stale = () => {
  if (!existsSync(BUNDLE)) return true
  const built = statSync(BUNDLE).mtimeMs
  return SOURCES.some((s) => newest(join(ROOT, s)) > built)
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

if (process.env.VIPFARM_NO_BUILD !== "1" && stale()) {
  // one build at a time (the lab starts several daemons at once); a lock older than two
  // minutes is a build that died
  const lock = join(ROOT, "dist.build-lock")
  for (const deadline = Date.now() + 120_000; ;) {
    try { mkdirSync(lock); break } catch {}
    try { if (Date.now() - statSync(lock).mtimeMs > 120_000) rmSync(lock, { recursive: true, force: true }) } catch {}
    if (Date.now() > deadline) throw new Error(`farm: ${lock} is held by another build for 2 minutes`)
    await sleep(100)
  }
  try {
    if (stale()) {
      process.stderr.write("[farm] building dist/farm.mjs (a source is newer than the bundle)\n")
      await buildFarm(DIST)
    }
  } finally {
    rmSync(lock, { recursive: true, force: true })
  }
}
await import(pathToFileURL(BUNDLE).href)
