/**
 * The Debian package as an operator gets it: scripts/build-deb.sh builds it, `dpkg -i` installs
 * it on this machine, the installed unit verifies, `/usr/bin/farm` answers, a lab farm whose
 * servers run the installed `/usr/bin/farm daemon` (not the checkout) serves every client, a
 * member of the vipfarm group uses a daemon's control socket and others cannot, a daemon
 * notifies READY=1 / STOPPING=1 and applies a reload (SIGHUP) through the log, and
 * `dpkg --purge` leaves nothing (files, group, unit, /usr/lib/vipfarm, /etc/vipfarm).
 * Needs root (dpkg, network namespaces); CI runs it as root.
 */
import { type ChildProcess, spawn, spawnSync, type SpawnSyncReturns } from "node:child_process"
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type LabState, listLabs } from "@vipfarm/runtime"
import { expectEveryClientServed, rootOrSkip, startLab, status, stopLab, termDaemon, until } from "../e2e/harness.ts"

const ROOT = new URL("../../", import.meta.url).pathname
const NAME = "pkg1"
const root = rootOrSkip("deb.test.ts")
const haveDpkg = spawnSync("dpkg-deb", ["--version"]).status === 0
if (root && !haveDpkg) console.log("deb.test.ts: skipped: dpkg-deb is missing (a Debian machine is needed)")

const sh = (cmd: string, args: ReadonlyArray<string>, opts: { env?: NodeJS.ProcessEnv; timeout?: number } = {}): SpawnSyncReturns<string> =>
  spawnSync(cmd, args, { encoding: "utf8", timeout: opts.timeout ?? 120_000, env: opts.env ?? process.env })

/** dpkg, waiting for the lock while another apt/dpkg on this machine holds it. */
const dpkg = (args: ReadonlyArray<string>): SpawnSyncReturns<string> => {
  const deadline = Date.now() + 180_000
  for (;;) {
    const r = sh("dpkg", args, { timeout: 180_000 })
    if (r.status === 0 || !/lock/i.test(r.stderr) || Date.now() > deadline) return r
    spawnSync("sleep", ["2"])
  }
}

const installed = () => sh("dpkg-query", ["-W", "-f", "${Status}", "vipfarm"]).stdout.trim() === "install ok installed"
const known = () => sh("dpkg-query", ["-W", "vipfarm"]).status === 0
const group = () => sh("getent", ["group", "vipfarm"])

const FILES = [
  "/usr/bin/farm",
  "/usr/lib/vipfarm/farm.mjs",
  "/usr/lib/vipfarm/packages/filter-xdp/bpf/vipfarm.bpf.o",
  "/usr/lib/vipfarm/packages/filter-xdp/bpf/floor.bpf.o",
  "/usr/lib/vipfarm/packages/filter-xdp/bpf/pass.bpf.o",
  "/usr/lib/vipfarm/packages/runtime/modules/nginx/module.yaml",
  "/usr/lib/vipfarm/packages/runtime/modules/apache/module.yaml",
  "/usr/lib/vipfarm/packages/runtime/modules/generic/module.yaml",
  "/usr/lib/vipfarm/packages/runtime/src/audit/page.html",
  "/usr/lib/vipfarm/packages/sim/scenarios/default.yaml",
  "/usr/lib/vipfarm/node_modules/koffi/package.json",
  "/lib/systemd/system/vipfarm.service",
  "/etc/vipfarm/farm.yaml.example",
  "/usr/share/doc/vipfarm/examples/vipfarm.service.d/app-nginx.conf",
  "/usr/share/doc/vipfarm/examples/vipfarm.service.d/app-apache.conf"
]
const GONE = ["/usr/bin/farm", "/usr/lib/vipfarm", "/lib/systemd/system/vipfarm.service", "/etc/vipfarm", "/usr/share/doc/vipfarm", "/run/vipfarm"]

/** Datagrams a python3 receiver bound at `path` got, one per line (what systemd would read). */
const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(600)
with open(sys.argv[2], "a") as out:
    print("bound", flush=True)
    while True:
        m = s.recv(4096).decode().replace("\\n", " ")
        out.write(m + "\\n"); out.flush()
        if m.startswith("STOPPING=1"): break
`

/**
 * Remove the lab; what it left. XDP programs are compared with the host's before the lab was
 * built: while another lab is up (another test run on this machine) its programs would count,
 * so they are not checked then (as test/globalSetup.ts does); in CI nothing else runs.
 */
const leftAfterLab = (): Array<string> => {
  const left = stopLab(NAME)
  const others = listLabs().filter((l) => l !== NAME)
  if (others.length === 0) return left
  console.log(`deb.test.ts: XDP programs not checked: other labs are up (${others.join(", ")})`)
  return left.filter((l) => !l.startsWith("XDP programs:"))
}

describe.skipIf(!root || !haveDpkg)("the Debian package", () => {
  let deb = ""
  let lab: LabState | undefined
  let receiver: ChildProcess | undefined
  const work = mkdtempSync(join(tmpdir(), "vipfarm-deb-"))
  const notifySocket = join(work, "notify")
  const notified = join(work, "notified.txt")

  beforeAll(() => {
    // a package left by an earlier run is removed first: this run installs its own build
    if (known()) expect(dpkg(["--purge", "vipfarm"]).status).toBe(0)
    const b = sh("sh", [join(ROOT, "scripts/build-deb.sh")], { timeout: 300_000 })
    expect(b.status, `build-deb.sh:\n${b.stdout}${b.stderr}`).toBe(0)
    deb = b.stdout.trim().split("\n").at(-1) ?? ""
    expect(deb).toMatch(/\/dist\/vipfarm_0\.1\.0_[a-z0-9]+\.deb$/)
    const i = dpkg(["-i", deb])
    expect(i.status, `dpkg -i:\n${i.stdout}${i.stderr}`).toBe(0)
  }, 420_000)

  afterAll(() => {
    receiver?.kill()
    if (lab !== undefined) stopLab(NAME)
    if (known()) dpkg(["--purge", "vipfarm"])
    rmSync(work, { recursive: true, force: true })
  }, 180_000)

  it("declares its dependencies and installs its files, the example as a conffile, and the vipfarm group", () => {
    const depends = sh("dpkg-deb", ["-f", deb, "Depends"]).stdout.trim()
    expect(depends).toBe("nodejs (>= 20), libbpf1, iproute2")
    expect(installed()).toBe(true)
    for (const f of FILES) expect(existsSync(f), f).toBe(true)
    expect(statSync("/usr/bin/farm").mode & 0o111).not.toBe(0)
    expect(readFileSync("/var/lib/dpkg/info/vipfarm.conffiles", "utf8").trim()).toBe("/etc/vipfarm/farm.yaml.example")
    // a drop-in under /lib/systemd/system/vipfarm.service.d would always be active: none is installed
    expect(existsSync("/lib/systemd/system/vipfarm.service.d")).toBe(false)
    expect(group().status).toBe(0)
    // no TypeScript is run: the package holds no .ts file and no tsx
    const list = sh("dpkg", ["-L", "vipfarm"]).stdout.split("\n")
    expect(list.filter((f) => f.endsWith(".ts"))).toEqual([])
    expect(list.filter((f) => f.includes("/tsx"))).toEqual([])
  })

  it("the installed unit verifies: Type=notify, its config check, reload, the group (systemd-analyze verify)", () => {
    const env = { ...process.env, SYSTEMD_LOG_COLOR: "0" }
    const v = spawnSync("systemd-analyze", ["verify", "/lib/systemd/system/vipfarm.service"], { cwd: work, env, encoding: "utf8", timeout: 60_000 })
    expect((v.stdout + v.stderr).trim()).toBe("")
    expect(v.status).toBe(0)
    const unit = readFileSync("/lib/systemd/system/vipfarm.service", "utf8")
    expect(unit).toMatch(/^Type=notify$/m)
    expect(unit).toMatch(/^NotifyAccess=main$/m)
    expect(unit).toMatch(/^ExecStartPre=\/usr\/bin\/farm config check \/etc\/vipfarm\/farm\.yaml$/m)
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/farm daemon --config \/etc\/vipfarm\/farm\.yaml$/m)
    expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m)
    expect(unit).toMatch(/^Group=vipfarm$/m)
    // verify checks the commands: the same unit pointing at a farm that is not there fails
    writeFileSync(join(work, "vipfarm.service"), unit.replaceAll("/usr/bin/farm", "/usr/bin/farm-missing"))
    const bad = spawnSync("systemd-analyze", ["verify", join(work, "vipfarm.service")], { cwd: work, env, encoding: "utf8", timeout: 60_000 })
    expect(bad.stdout + bad.stderr).toMatch(/farm-missing is not executable/)
  }, 120_000)

  it("/usr/bin/farm answers --help and checks the shipped example config", () => {
    const h = sh("/usr/bin/farm", ["--help"])
    expect(h.status, h.stderr).toBe(0)
    expect(h.stdout).toMatch(/SUBCOMMANDS[\s\S]*daemon/)
    const c = sh("/usr/bin/farm", ["config", "check", "/etc/vipfarm/farm.yaml.example"])
    expect(c.stdout + c.stderr).toMatch(/farm\.yaml\.example: ok/)
    expect(c.status).toBe(0)
  })

  it("a lab farm whose servers run the installed /usr/bin/farm daemon serves every client", async () => {
    // the unit runs the daemon with Group=vipfarm: so does this wrapper (uid 0, gid vipfarm); s1's
    // daemon gets a NOTIFY_SOCKET as systemd's Type=notify would give it (a path: an abstract
    // socket would belong to the host's network namespace, not s1's)
    receiver = spawn("python3", ["-c", RECEIVER, notifySocket, notified], { stdio: ["ignore", "pipe", "inherit"] })
    await new Promise<void>((res, rej) => {
      receiver!.stdout!.once("data", () => res())
      receiver!.once("exit", (c) => rej(new Error(`notify receiver exited ${c}`)))
    })
    const wrapper = join(work, "farm-as-unit")
    writeFileSync(wrapper, [
      "#!/bin/sh",
      `case "$*" in *"daemon --config "*/s1.yaml) export NOTIFY_SOCKET=${notifySocket} ;; esac`,
      "exec setpriv --regid vipfarm --clear-groups /usr/bin/farm \"$@\"",
      ""
    ].join("\n"))
    chmodSync(wrapper, 0o755)
    const before = process.env.VIPFARM_FARM_BIN
    process.env.VIPFARM_FARM_BIN = wrapper
    try {
      lab = await startLab({ name: NAME, servers: 3, clients: 1, addressesPerClient: 24 })
    } finally {
      if (before === undefined) delete process.env.VIPFARM_FARM_BIN
      else process.env.VIPFARM_FARM_BIN = before
    }
    // every daemon is the installed bundle
    for (const s of lab.servers) {
      const p = sh("pgrep", ["-af", ` daemon --config ${s.config}$`]).stdout.trim()
      expect(p, s.node).toMatch(/^\d+ \/usr\/bin\/node \/usr\/lib\/vipfarm\/farm\.mjs daemon --config /)
    }
    const r = await expectEveryClientServed(lab, "s1")
    expect(new Set(r.map((x) => x.server))).toEqual(new Set(["s1", "s2", "s3"]))
    // s1 told "systemd" it serves, once
    expect(readFileSync(notified, "utf8").split("\n").filter(Boolean)).toEqual(["READY=1"])
  }, 240_000)

  it("a member of the vipfarm group uses the daemon's control socket (farm status); another user cannot", () => {
    expect(lab).toBeDefined()
    const s = lab!.servers[0]
    const gid = group().stdout.split(":")[2]
    expect(statSync(s.control).gid).toBe(Number(gid))
    const as = (groups: string) =>
      sh("setpriv", ["--reuid", "65534", "--regid", "65534", ...(groups === "" ? ["--clear-groups"] : ["--groups", groups]), "/usr/bin/farm", "status", "--socket", s.control])
    const member = as(gid)
    expect(member.status, member.stderr).toBe(0)
    expect(member.stdout).toMatch(/s1/)
    const other = as("")
    expect(other.status).not.toBe(0)
    expect(other.stdout + other.stderr).toMatch(/EACCES|permission denied/i)
  })

  it("reload (SIGHUP, as ExecReload sends it): the installed daemon applies a new weight through the log, refuses what needs a restart", async () => {
    expect(lab).toBeDefined()
    const s = lab!.servers[0]
    writeFileSync(s.config, readFileSync(s.config, "utf8").replace(/^interface: eth0$/m, "interface: eth0\nweight: 50\npriority: 7"))
    const pid = Number(sh("pgrep", ["-f", ` daemon --config ${s.config}$`]).stdout.trim())
    expect(pid).toBeGreaterThan(0)
    process.kill(pid, "SIGHUP")
    // the other servers see it: it is the farm's log
    await until("s1's weight 50 as s2 sees it", async () => (await status(lab!, "s2")).members.find((m) => m.name === "s1")?.weight === 50, 30_000)
    const reloads = readFileSync(`${lab!.dir}/s1-daemon.log`, "utf8").split("\n").filter((l) => l.includes("op=config.reload"))
    expect(reloads.some((l) => l.includes("key=weight") && l.includes("result=applied"))).toBe(true)
    expect(reloads.some((l) => l.includes("key=priority") && l.includes("result=refused") && l.includes("restart"))).toBe(true)
    expect(sh("kill", ["-0", String(pid)]).status, "the daemon runs on").toBe(0)
  }, 60_000)

  it("SIGTERM: the installed daemon notifies STOPPING=1 when it starts draining", async () => {
    expect(lab).toBeDefined()
    termDaemon(lab!, "s1")
    await until("STOPPING=1 from s1", async () => existsSync(notified) && readFileSync(notified, "utf8").includes("STOPPING=1"), 30_000)
    expect(readFileSync(notified, "utf8").split("\n").filter(Boolean)).toEqual(["READY=1", "STOPPING=1"])
  }, 60_000)

  it("dpkg --purge leaves nothing: files, unit, /etc/vipfarm, the group", () => {
    if (lab !== undefined) expect(leftAfterLab()).toEqual([])
    lab = undefined
    const p = dpkg(["--purge", "vipfarm"])
    expect(p.status, `dpkg --purge:\n${p.stdout}${p.stderr}`).toBe(0)
    expect(known() && installed()).toBe(false)
    for (const f of GONE) expect(existsSync(f), f).toBe(false)
    expect(group().status).not.toBe(0)
    expect(sh("dpkg-query", ["-W", "-f", "${Status}", "vipfarm"]).stdout).not.toMatch(/installed|config-files/)
  }, 180_000)
})
