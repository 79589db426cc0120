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
    }, 15_000)
    userDir = mkdtempSync(`${tmpdir()}/vipfarm-audit-chromium-`)
    context = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1400, height: 1000 }
    })
    page = context.pages()[0] ?? (await context.newPage())
  }, 60_000)

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
  }, 30_000)
})
