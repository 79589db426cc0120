import { describe, expect, it } from "vitest"
import fc from "fast-check"
import { LocalBucket, MAX_TABLES, BUCKETS, addressWords, farmSeed } from "@vipfarm/domain"
import { decide, emptyFlows, emptyParsed, flowKey, modelTables, newDecision } from "../../filter-xdp/src/model.ts"
import { ACK, FIN, isPureSyn, PSH, RST, SYN, tcpPasses, udpPasses } from "./filterAdapter.ts"

const VIP = addressWords("198.18.0.100")

/** The packets of a simulated TCP flow (SYN, handshake ACK, data, FIN, final ACK, RST) and any other flags byte. */
const TCP_FLAGS = fc.oneof(fc.constantFrom(SYN, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK, SYN | ACK, SYN | FIN), fc.integer({ min: 0, max: 255 }))

describe("filter adapter", () => {
  it("agrees with the XDP filter model on TCP and UDP verdicts", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1, 2, 3, 4),
        fc.boolean(), TCP_FLAGS, fc.boolean(), fc.boolean(), fc.boolean(),
        fc.integer({ min: 1, max: 0xfffffffe }), fc.integer({ min: 1024, max: 65535 }),
        (code, tcp, flags, socketHere, established, foreign, src, sport) => {
          const p = emptyParsed()
          p.kind = "ip"
          p.src = [src >>> 0]
          p.dst = VIP
          p.proto = tcp ? 6 : 17
          p.sport = sport
          p.dport = tcp ? 80 : 5000
          p.tcpFlags = flags
          const buckets = new Uint8Array(MAX_TABLES * BUCKETS).fill(code)
          const t = modelTables(
            { seed: farmSeed("web"), vmac: new Uint8Array(6), ifmac: new Uint8Array(6), deadlineNs: 10n ** 15n, answerNeighbours: true, udpIdleMs: 30000 },
            [{ words: VIP, rules: [{ proto: 6, affinity: "client-ip", table: 0, portLo: 80, portHi: 80 }, { proto: 17, affinity: "client-ip-port", table: 0, portLo: 5000, portHi: 5100 }] }],
            buckets
          )
          const flows = emptyFlows()
          const now = 1e9
          if (established) flows.established.set(flowKey(p), now - 1e6)
          if (foreign) flows.foreign.add(flowKey(p))
          const d = decide(p, t, flows, { nowNs: now, tcpSocket: () => (socketHere ? "established" : "listen") }, newDecision())
          const expected = tcp ? tcpPasses(code, flags, socketHere) : udpPasses(code, established, foreign)
          // MOVING_IN_WAIT drops UDP; established UDP in a moving-in bucket is ours too
          expect(d.action === "pass").toBe(expected)
        }
      ),
      { numRuns: 2000, seed: 42 }
    )
    expect(LocalBucket.MOVING_IN_WAIT).toBe(3)
  })

  it("follows the socket for every TCP packet but a pure SYN (FIN, final ACK and RST of a flow moving out)", () => {
    for (const flags of [ACK, ACK | PSH, FIN | ACK, RST, RST | ACK]) {
      expect(isPureSyn(flags)).toBe(false)
      expect(tcpPasses(LocalBucket.MOVING_OUT, flags, true)).toBe(true)
      expect(tcpPasses(LocalBucket.MOVING_OUT, flags, false)).toBe(false)
      expect(tcpPasses(LocalBucket.MOVING_IN, flags, false)).toBe(false)
    }
    expect(tcpPasses(LocalBucket.MOVING_OUT, SYN, true)).toBe(false)
    expect(tcpPasses(LocalBucket.MOVING_IN_WAIT, SYN | FIN, false)).toBe(true)
  })
})
