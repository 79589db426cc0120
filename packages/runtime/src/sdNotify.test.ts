/**
 * sd_notify over a real AF_UNIX datagram socket: a python3 receiver binds the socket (a path,
 * or an abstract name as systemd may pass), and what it receives is what systemd would read.
 */
import { spawn, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, describe, expect, it } from "vitest"
import { notifyAddress, sdNotify } from "./sdNotify.ts"

const havePython = spawnSync("python3", ["--version"]).status === 0
if (!havePython) console.log("sdNotify tests: skipped: python3 is missing (apt-get install python3)")

const RECEIVER = `
import socket, sys
name = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + name[1:] if name.startswith("@") else name)
s.settimeout(10)
print("bound", flush=True)
data = s.recv(4096)
print("got " + data.decode(), flush=True)
`

/** Bind `name`, then run `send` and return the datagram the receiver got. */
const receive = (name: string, send: () => void): Promise<string> =>
  new Promise((resolve, reject) => {
    const p = spawn("python3", ["-c", RECEIVER, name], { stdio: ["ignore", "pipe", "pipe"] })
    let out = ""
    let err = ""
    p.stdout.on("data", (d: Buffer) => {
      out += d.toString()
      if (out === "bound\n") {
        try { send() } catch (e) { p.kill(); reject(e) }
      }
    })
    p.stderr.on("data", (d: Buffer) => { err += d.toString() })
    p.on("exit", (code) => {
      const m = /got ([\s\S]*)\n$/.exec(out)
      if (code === 0 && m) resolve(m[1])
      else reject(new Error(`receiver exited ${code}: ${out}${err}`))
    })
  })

const dir = mkdtempSync(join(tmpdir(), "vipfarm-notify-"))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe("notifyAddress", () => {
  it("a path ends with its NUL; an abstract name starts with one and counts no terminator", () => {
    const p = notifyAddress("/run/systemd/notify")
    expect(p.len).toBe(2 + "/run/systemd/notify".length + 1)
    expect(Buffer.from(p.addr.subarray(2, p.len - 1)).toString()).toBe("/run/systemd/notify")
    expect(p.addr[0]).toBe(1)
    const a = notifyAddress("@vipfarm/notify")
    expect(a.len).toBe(2 + 1 + "vipfarm/notify".length)
    expect(a.addr[2]).toBe(0)
    expect(Buffer.from(a.addr.subarray(3, a.len)).toString()).toBe("vipfarm/notify")
  })

  it("refuses what is not a unix socket name", () => {
    expect(() => notifyAddress("relative/path")).toThrow(/neither an absolute path nor an abstract name/)
    expect(() => notifyAddress("@")).toThrow(/1 to 107 bytes/)
    expect(() => notifyAddress(`/${"x".repeat(200)}`)).toThrow(/1 to 107 bytes/)
  })
})

describe.skipIf(!havePython)("sdNotify", () => {
  it("sends READY=1 to a socket at a path", async () => {
    const path = join(dir, "notify")
    await expect(receive(path, () => expect(sdNotify("READY=1", path)).toBe(true))).resolves.toBe("READY=1")
  })

  it("sends STOPPING=1 to an abstract socket (@name)", async () => {
    const name = `@vipfarm-test-${process.pid}-${Date.now()}`
    await expect(receive(name, () => expect(sdNotify("STOPPING=1\nSTATUS=draining", name)).toBe(true))).resolves.toBe("STOPPING=1\nSTATUS=draining")
  })

  it("without NOTIFY_SOCKET nothing is sent; a socket nobody bound fails naming it", () => {
    expect(sdNotify("READY=1", undefined)).toBe(false)
    expect(sdNotify("READY=1", "")).toBe(false)
    expect(() => sdNotify("READY=1", join(dir, "nobody"))).toThrow(/sendto .*nobody: (No such file or directory|Connection refused)/)
  })
})
