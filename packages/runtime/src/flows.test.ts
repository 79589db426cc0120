import { describe, expect, it } from "vitest"
import { addressWords, BUCKETS, bucketOf, farmSeed, formatAddress } from "@vipfarm/domain"
import { countFlowsIn, flowsPerBucket, parseProcNetTcp } from "./flows.ts"

// captured from a lab server: a VIP connection, a NATS route and a listener
const PROC = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   4: 640012C6:1B58 0D0112C6:AB6B 01 00000000:00000000 00:00000000 00000000     0        0 71165 3 0 20 4 1 26 -1
   5: 0B0012C6:184E 0D0012C6:A36E 01 00000000:00000000 00:00000000 00000000     0        0 68792 1 0 21 4 28 91 -1
   6: 640012C6:0050 0E0112C6:C001 06 00000000:00000000 00:00000000 00000000     0        0 0 1 0 21 4 28 91 -1
`

describe("flows", () => {
  it("parses /proc/net/tcp addresses, ports and states", () => {
    const s = parseProcNetTcp(PROC)
    expect(s.map((x) => `${formatAddress(x.local)}:${x.localPort}<${formatAddress(x.remote)}:${x.remotePort}/${x.state}`)).toEqual([
      "0.0.0.0:80<0.0.0.0:0/10",
      "198.18.0.100:7000<198.18.1.13:43883/1",
      "198.18.0.11:6222<198.18.0.13:41838/1",
      "198.18.0.100:80<198.18.1.14:49153/6"
    ])
  })

  it("counts VIP connections per bucket by the rule's affinity", () => {
    const vips = [{ address: "198.18.0.100", rules: [{ proto: "tcp" as const, ports: [80, 7000], affinity: "client-ip" as const }] }]
    const seed = farmSeed("t")
    const established = parseProcNetTcp(PROC).filter((s) => s.state === 1)
    const per = flowsPerBucket(vips, seed, established, [])
    const b = bucketOf("client-ip", { src: addressWords("198.18.1.13"), dst: [0], sport: 0, dport: 0, packetId: 0, fragment: false }, seed)
    expect(per[b]).toBe(1)
    expect(per.reduce((a, x) => a + x, 0)).toBe(1) // the NATS route is no VIP flow
    const mask = new Uint8Array(16 * BUCKETS)
    mask[b] = 2
    expect(countFlowsIn(mask, 2, vips, seed, established, [])).toBe(1)
    mask[b] = 1
    expect(countFlowsIn(mask, 2, vips, seed, established, [])).toBe(0)
  })
})
