/**
 * End-to-end: `farm audit` against a real 3-server lab farm, driven in a real headless
 * Chromium (Debian's /usr/bin/chromium through playwright-core).
 *
 * The lab's NATS listens only inside the lab's namespaces, so the audit server runs inside
 * s1's namespace (`ip netns exec`, on 127.0.0.1 there, no token needed). Chromium runs in
 * the root namespace: a two-hop bridge joins them, a Unix socket (paths cross namespaces)
 * served by a tiny forwarder inside s1's namespace, and a TCP listener here on the same port
 * number, so the Host header the browser sends is the one the audit server expects.
 * Screenshots go to artifacts/audit/.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { connect, createServer, type Server } from "node:net"
import { tmpdir } from "node:os"
import { fileURLToPath } from "node:url"
import { type BrowserContext, chromium, type Page } from "playwright-core"
import { type LabState, spawnInNs } from "@vipfarm/runtime"
import { killDaemon, rootOrSkip, startLab, stopLab, until } from "./harness.ts"

const NAME = "audit"
const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const FARM_BIN = `${ROOT}packages/cli/bin/farm.mjs`
const ARTIFACTS = `${ROOT}artifacts/audit`
const CHROMIUM = "/usr/bin/chromium"

const root = rootOrSkip("audit.e2e.test.ts")
const haveChromium = existsSync(CHROMIUM)
if (root && !haveChromium) console.log(`audit.e2e.test.ts: skipped: ${CHROMIUM} is missing (apt-get install chromium; scripts/test.sh installs it)`)

/** A TCP port free on 127.0.0.1 here (the lab's fresh namespace has it free too). */
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer()
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as { port: number }).port
      s.close(() => resolve(p))
    })
  })

describe.skipIf(!root || !haveChromium)("farm audit in a browser, against a lab farm", () => {
  let lab: LabState
  let bridge: Server
  let context: BrowserContext
  let page: Page
  let port = 0
  let userDir = ""

  beforeAll(async () => {
    rmSync(ARTIFACTS, { recursive: true, force: true })
    mkdirSync(ARTIFACTS, { recursive: true })
    lab = await startLab({ name: NAME })
    const s1 = lab.servers[0]
    port = await freePort()
    const sock = `${lab.dir}/audit.sock`
    spawnInNs(s1.ns, [process.execPath, FARM_BIN, "audit", "--nats", `nats://${s1.address}:4222`, "--farm", NAME, "--listen", `127.0.0.1:${port}`], `${lab.dir}/audit.log`)
    const forward = `const net=require("net");net.createServer((c)=>{const u=net.connect(${port},"127.0.0.1");c.pipe(u).pipe(c);c.on("error",()=>u.destroy());u.on("error",()=>c.destroy())}).listen(${JSON.stringify(sock)})`
    spawnInNs(s1.ns, [process.execPath, "-e", forward], `${lab.dir}/audit-bridge.log`)
    bridge = createServer((c) => {
      const u = connect(sock)
      c.pipe(u).pipe(c)
      c.on("error", () => u.destroy())
      u.on("error", () => c.destroy())
    })
    await new Promise<void>((resolve) => bridge.listen(port, "127.0.0.1", resolve))
    await until("the audit server answers", async () => {
      const r = await fetch(`http://127.0.0.1:${port}/api/info`)
      return r.ok && ((await r.json()) as { headSeq: number }).headSeq > 0
    }, 45_000) // the CLI's start (tsx compiling it) takes well over 15 s on a loaded 2-core machine
    userDir = mkdtempSync(`${tmpdir()}/vipfarm-audit-chromium-`)
    context = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1400, height: 1000 }
    })
    page = context.pages()[0] ?? (await context.newPage())
  }, 150_000)

  afterAll(async () => {
    await context?.close().catch(() => undefined)
    bridge?.close()
    if (userDir) rmSync(userDir, { recursive: true, force: true })
    if (root && lab) {
      const logs = `${lab.dir}/audit.log`
      if (existsSync(logs)) console.log(`audit server log:\n${readFileSync(logs, "utf8").slice(-2000)}`)
      expect(stopLab(NAME)).toEqual([])
    }
  })

  /** Bucket cells of the map painted in a member's colour (centre pixel of each of the 1024 cells). */
  const cellsOf = (member: string) =>
    page.evaluate((name) => {
      // runs in the page (this project's type-check has no DOM types)
      const w = globalThis as any
      const row = w.document.querySelector(`#members tr[data-member="${name}"] .swatch`)
      if (row === null) return 0
      const probe = w.document.createElement("canvas").getContext("2d")
      probe.fillStyle = w.getComputedStyle(row).backgroundColor
      probe.fillRect(0, 0, 1, 1)
      const want = probe.getImageData(0, 0, 1, 1).data
      const g = w.document.getElementById("bucketmap").getContext("2d")
      let n = 0
      for (let b = 0; b < 1024; b++) {
        const px = g.getImageData((b % 32) * 16 + 4, Math.floor(b / 32) * 16 + 4, 1, 1).data
        if (px[0] === want[0] && px[1] === want[1] && px[2] === want[2]) n++
      }
      return n
    }, member)

  it("shows three servers up, the map, a verified chain; a crash appears within seconds; time travel shows the old map", async () => {
    await page.goto(`http://127.0.0.1:${port}/`)
    await page.waitForSelector('#members tr[data-status="up"]:nth-child(3)', { timeout: 10_000 })
    expect(await page.locator('#members tr[data-status="up"]').count()).toBe(3)
    await page.waitForSelector('#chain-badge[data-ok="true"]', { timeout: 5_000 })
    expect(await page.textContent("#chain-badge")).toMatch(/chain verified/)
    expect(await page.locator('#timeline .ev[data-tag="MemberJoined"]').count()).toBe(3)
    const s2Before = Number(await page.getAttribute('#members tr[data-member="s2"]', "data-buckets"))
    expect(s2Before).toBeGreaterThan(250)
    expect(await cellsOf("s2")).toBe(s2Before)
    const seqBefore = Number(await page.getAttribute("#state-label", "data-seq"))
    await page.screenshot({ path: `${ARTIFACTS}/1-three-servers-up.png`, fullPage: true })

    // the crash: live, without reloading the page
    const killedAt = killDaemon(lab, "s2")
    await page.waitForSelector('#members tr[data-member="s2"][data-status="down"]', { timeout: 10_000 })
    const shownAfter = Date.now() - killedAt
    console.log(`audit page showed s2 down ${shownAfter} ms after SIGKILL`)
    expect(shownAfter).toBeLessThan(5_000)
    await page.waitForSelector('#timeline .ev[data-tag="MemberFailed"][data-nodes~="s2"]', { timeout: 5_000 })
    expect(await page.textContent('#timeline .ev[data-tag="MemberFailed"]')).toMatch(/s2 failed .*detected by s[13]/)
    await until("s2's buckets taken over on the page", async () => (await cellsOf("s2")) === 0, 5_000)
    expect(await page.getAttribute('#chain-badge', "data-ok")).toBe("true")
    await page.screenshot({ path: `${ARTIFACTS}/2-after-s2-crash.png`, fullPage: true })

    // time travel to before the crash: the old map
    await page.fill("#seq-input", String(seqBefore))
    await page.dispatchEvent("#seq-input", "change")
    await page.waitForSelector(`#state-label[data-seq="${seqBefore}"]`, { timeout: 5_000 })
    expect(await page.getAttribute('#members tr[data-member="s2"]', "data-status")).toBe("up")
    expect(Number(await page.getAttribute('#members tr[data-member="s2"]', "data-buckets"))).toBe(s2Before)
    expect(await cellsOf("s2")).toBe(s2Before)
    expect(await page.locator("#timeline .ev.after").count()).toBeGreaterThan(0)
    await page.screenshot({ path: `${ARTIFACTS}/3-time-travel-before-crash.png`, fullPage: true })
  }, 40_000)

  it("explains why a client of s2 moved; the exported log verifies", async () => {
    const client = await page.evaluate(async (addresses) => {
      for (const a of addresses) {
        const r = (await (await fetch(`/api/client?address=${a}`)).json()) as { rules: Array<{ history: Array<{ events: Array<{ tag: string }> }> }> }
        if (r.rules.some((x) => x.history.some((h) => h.events.some((e) => e.tag === "MemberFailed")))) return a
      }
      return null
    }, lab.clients[0].addresses as Array<string>)
    expect(client).not.toBeNull()
    await page.fill("#client-address", client!)
    await page.click('#client-form button[type="submit"]')
    await page.waitForSelector("#client-result .rule", { timeout: 5_000 })
    expect(await page.textContent("#client-result")).toMatch(/MemberFailed: s2 failed/)
    await page.screenshot({ path: `${ARTIFACTS}/4-why-did-this-client-move.png`, fullPage: true })

    // --export inside the namespace, --verify here: the daemons' records carry a valid chain
    const file = `${lab.dir}/export.jsonl`
    const s1 = lab.servers[0]
    const ex = spawnSync("ip", ["netns", "exec", s1.ns, process.execPath, FARM_BIN, "audit", "--nats", `nats://${s1.address}:4222`, "--farm", NAME, "--export", file], { encoding: "utf8" })
    expect(ex.status, ex.stderr).toBe(0)
    const lines = readFileSync(file, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l))
    expect(lines.length).toBeGreaterThan(5)
    expect(lines.every((l) => typeof l.record.prev === "string")).toBe(true)
    const ok = spawnSync(process.execPath, [FARM_BIN, "audit", "--verify", file], { encoding: "utf8" })
    expect(ok.status, ok.stderr).toBe(0)
    expect(ok.stdout).toMatch(/chain verifies/)
    // the head the page shows is the export's: an operator records it and checks later exports against it
    const shownSeq = Number(await page.getAttribute("#chain-head", "data-seq"))
    const shownHead = (await page.getAttribute("#chain-head", "data-head"))!
    expect(await page.textContent("#chain-head")).toBe(`head seq ${shownSeq} · ${shownHead}`)
    const pinned = spawnSync(process.execPath, [FARM_BIN, "audit", "--verify", file, "--expect-seq", String(shownSeq), "--expect-head", shownHead, "--json"], { encoding: "utf8" })
    expect(pinned.status, pinned.stderr).toBe(0)
    expect(JSON.parse(pinned.stdout)).toMatchObject({ ok: true, anchor: { ok: true, seq: shownSeq } })
  }, 120_000) // three CLI runs, each compiled by tsx: 10-15 s apiece on a loaded 2-core machine

  /** Rows of the timeline as the page shows them. */
  const rows = () =>
    page.evaluate(() => {
      const w = globalThis as any
      return [...w.document.querySelectorAll("#timeline .ev")].map((r: any) => ({ seq: Number(r.dataset.seq), tag: r.dataset.tag as string, nodes: (r.dataset.nodes as string).split(" ").filter((n: string) => n !== ""), text: r.textContent as string }))
    })
  /** The same query against the API (the page's answer must be the model's). */
  const apiTimeline = (query: string) =>
    page.evaluate(async (q) => (await (await fetch(`/api/timeline?${q}&table=0`)).json()) as { events: Array<{ seq: number; tag: string; time: number; nodes: Array<string> }>; total: number }, query)
  const key = (r: { seq: number; tag: string }) => `${r.seq}:${r.tag}`
  /** Submit the filter form and wait until the timeline shows `want` rows. */
  const filter = async (o: { node?: string; bucket?: string; from?: string; to?: string }, want: number) => {
    await page.click("#f-clear")
    await page.fill("#f-node", o.node ?? "")
    await page.fill("#f-bucket", o.bucket ?? "")
    await page.fill("#f-from", o.from ?? "")
    await page.fill("#f-to", o.to ?? "")
    await page.click('#filters button[type="submit"]')
    await until(`the timeline shows ${want} rows`, async () => (await rows()).length === want, 5_000)
    return rows()
  }

  it("filters the timeline by server, bucket and time; the bucket history panel explains a bucket s2 lost", async () => {
    const all = await apiTimeline("")
    const failed = all.events.find((e) => e.tag === "MemberFailed" && e.nodes.includes("s2"))!
    expect(failed).toBeDefined()

    // by server: only s2's events, the same as the model's, its join and its failure among them
    const s2 = await apiTimeline("node=s2")
    expect(s2.events.length).toBeLessThan(all.events.length)
    const byServer = await filter({ node: "s2" }, s2.events.length)
    expect(byServer.map(key)).toEqual(s2.events.map(key))
    expect(byServer.every((r) => r.nodes.includes("s2"))).toBe(true)
    expect(byServer.map((r) => r.tag)).toEqual(expect.arrayContaining(["MemberJoined", "MemberFailed"]))
    expect(await page.textContent("#timeline-count")).toBe(`${s2.total} events`)
    await page.screenshot({ path: `${ARTIFACTS}/5-filter-server-s2.png`, fullPage: true })

    // a bucket s2 owned before it failed
    const before = await page.evaluate(async (seq) => (await (await fetch(`/api/state?seq=${seq}`)).json()) as { members: Array<{ name: string }>; tables: Array<{ owner: Array<number> }> }, failed.seq - 1)
    const bucket = before.tables[0].owner.findIndex((o) => o >= 0 && before.members[o].name === "s2")
    expect(bucket).toBeGreaterThanOrEqual(0)
    const b = await apiTimeline(`bucket=${bucket}`)
    const byBucket = await filter({ bucket: String(bucket) }, b.events.length)
    expect(byBucket.map(key)).toEqual(b.events.map(key))
    expect(byBucket.length).toBeLessThan(all.events.length)
    expect(byBucket.some((r) => r.seq === failed.seq)).toBe(true)

    // by time: from the second of the failure on (the browser's local time, as a person types it)
    const fromText = await page.evaluate((ms) => {
      const d = new Date(Math.floor(ms / 1000) * 1000)
      const p = (n: number) => String(n).padStart(2, "0")
      return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`
    }, failed.time)
    const fromMs = Math.floor(failed.time / 1000) * 1000
    const t = await apiTimeline(`from=${fromMs}`)
    expect(t.events.length).toBeLessThan(all.events.length)
    const byTime = await filter({ from: fromText }, t.events.length)
    expect(byTime.map(key)).toEqual(t.events.map(key))
    expect(byTime.some((r) => r.seq === failed.seq)).toBe(true)
    expect(t.events.every((e) => e.time >= fromMs)).toBe(true)
    expect(byTime.some((r) => r.tag === "MemberJoined" && r.nodes.includes("s2"))).toBe(false)
    await page.screenshot({ path: `${ARTIFACTS}/6-filter-time-from-failure.png`, fullPage: true })
    // cleared: everything again
    await page.click("#f-clear")
    await until("the whole timeline again", async () => (await rows()).length === (await apiTimeline("")).events.length, 5_000)

    // the bucket's history: click its cell on the map
    await page.click("#bucketmap", { position: { x: (bucket % 32) * 16 + 8, y: Math.floor(bucket / 32) * 16 + 8 } })
    const history = await page.evaluate(async (bk) => (await (await fetch(`/api/bucket?table=0&bucket=${bk}`)).json()) as { history: Array<{ seq: number }> }, bucket)
    await page.waitForSelector(`#bucket-label:has-text("bucket ${bucket}:")`, { timeout: 5_000 })
    expect(await page.textContent("#bucket-label")).toBe(`table 0, bucket ${bucket}: ${history.history.length} change(s)`)
    expect(await page.inputValue("#bucket-input")).toBe(String(bucket))
    const blocks = await page.locator("#bucket-result .result-block").evaluateAll((els) => els.map((e: any) => ({ seq: Number(e.dataset.seq), text: e.textContent as string })))
    expect(blocks.map((x) => x.seq)).toEqual(history.history.map((h) => h.seq))
    const atFailure = blocks.find((x) => x.seq === failed.seq)
    expect(atFailure?.text).toMatch(/s2 ⇒ s[13] \(taken over from s2\)/)
    expect(atFailure?.text).toMatch(/MemberFailed: s2 failed/)
    await page.screenshot({ path: `${ARTIFACTS}/7-bucket-history.png`, fullPage: true })
  }, 60_000)
})
