/**
 * The farm announces itself when a server starts serving: a gratuitous ARP for each IPv4
 * VIP and an unsolicited neighbour advertisement for each IPv6 VIP, both naming the
 * virtual MAC, sent from the interface's real MAC (the virtual MAC is never a frame
 * source, so switches keep flooding frames for it to every server). Frames go out through
 * an AF_PACKET socket opened through koffi (libc), no helper binary needed.
 */
import koffi from "koffi"
import { Effect, Schema } from "effect"
import { addressWords } from "@vipfarm/domain"
import { macBytes, Packet } from "@vipfarm/filter-xdp"

/** Sending a raw frame failed. */
export class AnnounceError extends Schema.TaggedError<AnnounceError>()("AnnounceError", { op: Schema.String, message: Schema.String }) {}

const AF_PACKET = 17
const SOCK_RAW = 3
const ETH_P_ALL_BE = 0x0300 // htons(0x0003)

let libc: { socket: (a: number, b: number, c: number) => number; sendto: (...a: Array<unknown>) => number; close: (fd: number) => number; strerror: (e: number) => string } | null = null
const lib = () => {
  if (libc === null) {
    const l = koffi.load("libc.so.6")
    libc = {
      socket: l.func("int socket(int domain, int type, int protocol)"),
      sendto: l.func("long sendto(int fd, const uint8_t *buf, size_t len, int flags, const uint8_t *addr, uint32_t addrlen)"),
      close: l.func("int close(int fd)"),
      strerror: l.func("const char *strerror(int errnum)")
    }
  }
  return libc
}

/** Send raw Ethernet frames out of interface `ifindex`. */
export const sendFrames = (ifindex: number, frames: ReadonlyArray<Uint8Array>): Effect.Effect<void, AnnounceError> =>
  Effect.try({
    try: () => {
      const c = lib()
      const fd = c.socket(AF_PACKET, SOCK_RAW, ETH_P_ALL_BE)
      if (fd < 0) throw new Error(`socket(AF_PACKET): ${c.strerror(koffi.errno())}`)
      try {
        for (const frame of frames) {
          // struct sockaddr_ll: family u16, protocol be16, ifindex i32, hatype u16, pkttype u8, halen u8, addr[8]
          const sll = new Uint8Array(20)
          const dv = new DataView(sll.buffer)
          dv.setUint16(0, AF_PACKET, true)
          dv.setUint16(2, 0, true)
          dv.setInt32(4, ifindex, true)
          sll[11] = 6
          sll.set(frame.subarray(0, 6), 12)
          const n = c.sendto(fd, frame, frame.length, 0, sll, sll.length)
          if (n < 0) throw new Error(`sendto: ${c.strerror(koffi.errno())}`)
        }
      } finally {
        c.close(fd)
      }
    },
    catch: (e) => new AnnounceError({ op: "send", message: (e as Error).message })
  })

const BROADCAST = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
const ALL_NODES_MAC = Uint8Array.of(0x33, 0x33, 0x00, 0x00, 0x00, 0x01)
const ALL_NODES = [0xff020000, 0, 0, 1]

/** The announcement frames for `vips`: gratuitous ARP (IPv4) and unsolicited NA with the override flag (IPv6). */
export const announcementFrames = (vips: ReadonlyArray<string>, vmac: string, ifmac: string): Array<Uint8Array> => {
  const v = macBytes(vmac)
  const own = macBytes(ifmac)
  return vips.map((vip) => {
    const words = addressWords(vip)
    if (words.length === 1) {
      return Packet.ethernet(
        { dst: BROADCAST, src: own, etherType: Packet.EtherType.ARP },
        Packet.arp({ op: 1, sha: v, spa: words[0], tha: new Uint8Array(6), tpa: words[0] })
      )
    }
    // NA: type 136, flags O (override) = 0x20, target, option 2 (target link-layer address) = vmac
    const body = new Uint8Array(32)
    body[0] = 136
    body[4] = 0x20
    const dv = new DataView(body.buffer)
    words.forEach((w, i) => dv.setUint32(8 + 4 * i, w >>> 0))
    body[24] = 2
    body[25] = 1
    body.set(v, 26)
    dv.setUint16(2, Packet.icmp6Checksum(words, ALL_NODES, body))
    return Packet.ethernet(
      { dst: ALL_NODES_MAC, src: own, etherType: Packet.EtherType.IPV6 },
      Packet.ipv6({ src: words, dst: ALL_NODES, proto: 58, hopLimit: 255 }, body)
    )
  })
}
