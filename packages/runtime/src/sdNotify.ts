/**
 * systemd's readiness protocol (sd_notify(3)) for `Type=notify`: one datagram (`READY=1`,
 * `STOPPING=1`, ...) to the AF_UNIX SOCK_DGRAM socket named by `NOTIFY_SOCKET` (a path, or an
 * abstract name written `@name`). Node has no unix datagram sockets, so libc's socket/sendto
 * are called through koffi (already loaded for libbpf). Without `NOTIFY_SOCKET` (not started by
 * systemd) nothing is sent.
 */
import koffi from "koffi"
import { log } from "./log.ts"

const AF_UNIX = 1
const SOCK_DGRAM = 2
const SOCK_CLOEXEC = 0o2000000
const MSG_NOSIGNAL = 0x4000
/** sizeof(struct sockaddr_un): sa_family_t (2 bytes) + sun_path[108]. */
const SOCKADDR_UN = 110

interface Libc {
  readonly socket: (domain: number, type: number, protocol: number) => number
  readonly sendto: (fd: number, buf: Uint8Array, len: number, flags: number, addr: Uint8Array, addrlen: number) => number
  readonly close: (fd: number) => number
  readonly strerror: (errno: number) => string
}

let cached: Libc | undefined
const libc = (): Libc => {
  if (cached) return cached
  const c = koffi.load("libc.so.6")
  cached = {
    socket: c.func("int socket(int domain, int type, int protocol)") as Libc["socket"],
    sendto: c.func("intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)") as Libc["sendto"],
    close: c.func("int close(int fd)") as Libc["close"],
    strerror: c.func("const char *strerror(int errnum)") as Libc["strerror"]
  }
  return cached
}

/**
 * `struct sockaddr_un` for a NOTIFY_SOCKET value and the length to pass: a path ends with its
 * NUL; an abstract name (`@name`) starts with a NUL byte and its length counts no terminator.
 */
export const notifyAddress = (socket: string): { readonly addr: Uint8Array; readonly len: number } => {
  const abstract = socket.startsWith("@")
  const name = Buffer.from(abstract ? socket.slice(1) : socket, "utf8")
  if (name.length === 0 || name.length + 1 > SOCKADDR_UN - 2) throw new Error(`NOTIFY_SOCKET ${JSON.stringify(socket)}: not a unix socket name (1 to 107 bytes)`)
  if (!abstract && !socket.startsWith("/")) throw new Error(`NOTIFY_SOCKET ${JSON.stringify(socket)}: neither an absolute path nor an abstract name (@...)`)
  const addr = new Uint8Array(SOCKADDR_UN)
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true)
  addr.set(name, abstract ? 3 : 2)
  return { addr, len: abstract ? 2 + 1 + name.length : 2 + name.length + 1 }
}

/**
 * Send `state` (newline-separated `KEY=value` assignments, e.g. `READY=1`) to `socket`
 * (default: `NOTIFY_SOCKET`). Returns false when there is no socket to notify; throws with the
 * errno's text when the datagram cannot be sent.
 */
export const sdNotify = (state: string, socket: string | undefined = process.env.NOTIFY_SOCKET): boolean => {
  if (socket === undefined || socket === "") return false
  const { addr, len } = notifyAddress(socket)
  const c = libc()
  const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)
  if (fd < 0) throw new Error(`sd_notify: socket(AF_UNIX, SOCK_DGRAM): ${c.strerror(koffi.errno())}`)
  try {
    const msg = Buffer.from(state, "utf8")
    const n = c.sendto(fd, msg, msg.length, MSG_NOSIGNAL, addr, len)
    if (n < 0) throw new Error(`sd_notify: sendto ${socket}: ${c.strerror(koffi.errno())}`)
    return true
  } finally {
    c.close(fd)
  }
}

/**
 * {@link sdNotify} for the daemon: a failure to notify is logged (`op=sd.notify`), never fatal
 * (systemd then times the start out, which says more than a crash would).
 */
export const notifySystemd = (state: string, node: string): void => {
  try {
    if (sdNotify(state)) log("debug", "sd.notify", { node, state: state.split("\n")[0] })
  } catch (e) {
    log("warn", "sd.notify", { node, state: state.split("\n")[0], error: (e as Error).message })
  }
}
