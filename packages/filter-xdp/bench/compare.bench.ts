/**
 * Side-by-side ns/packet of several builds of the filter (and the XDP_DROP floor) under
 * BPF_PROG_TEST_RUN, interleaved round by round so all see the same machine state.
 * Run as root:
 *   node --import tsx packages/filter-xdp/bench/compare.bench.ts [repeat] [rounds] a.bpf.o b.bpf.o ...
 * (no object: the committed one). Reports the median and the minimum of the rounds; on a
 * busy machine the minimum is the steadier figure. Every object must keep the loader's
 * map and state layout.
 */
import { LocalBucket } from "@vipfarm/domain"
import { baseConfig, catchAll, CLIENT4, CLIENT6, IFMAC, isRoot, VIP4, VIP6 } from "../src/internal/fixtures.ts"
import { FILTER_OBJECT, FLOOR_OBJECT, loadFilter } from "../src/loader.ts"
import { ethernet, EtherType, ipv4, ipv6, tcp, TcpFlag, udp } from "../src/packet.ts"

if (!isRoot()) {
  console.log("compare.bench.ts: needs root (BPF_PROG_TEST_RUN)")
  process.exit(0)
}
const repeat = Number(process.argv[2] ?? 200_000)
const rounds = Number(process.argv[3] ?? 15)
const objects = process.argv.slice(4)
if (objects.length === 0) objects.push(FILTER_OBJECT)

const payload = new Uint8Array(18)
const v4 = (dst: ReadonlyArray<number>, proto: number) =>
  ethernet({ dst: IFMAC, etherType: EtherType.IPV4 }, ipv4({ src: CLIENT4, dst, proto },
    proto === 6 ? tcp({ sport: 40000, dport: 80, flags: TcpFlag.ACK }, payload) : udp({ sport: 40000, dport: 53 }, payload)))
const v6 = (dst: ReadonlyArray<number>, proto: number) =>
  ethernet({ dst: IFMAC, etherType: EtherType.IPV6 }, ipv6({ src: CLIENT6, dst, proto },
    proto === 6 ? tcp({ sport: 40000, dport: 80, flags: TcpFlag.ACK }) : udp({ sport: 40000, dport: 53 })))
const NON_VIP4 = [0x0a000001]
const NON_VIP6 = [0x20010db8, 0, 0, 0x99]
const cases: Array<[string, Uint8Array, number]> = [
  ["TCP owned v4", v4(VIP4, 6), LocalBucket.OWNED],
  ["TCP foreign v4", v4(VIP4, 6), LocalBucket.FOREIGN],
  ["TCP non-VIP v4", v4(NON_VIP4, 6), LocalBucket.OWNED],
  ["UDP owned v4", v4(VIP4, 17), LocalBucket.OWNED],
  ["UDP foreign v4", v4(VIP4, 17), LocalBucket.FOREIGN],
  ["TCP owned v6", v6(VIP6, 6), LocalBucket.OWNED],
  ["TCP foreign v6", v6(VIP6, 6), LocalBucket.FOREIGN],
  ["UDP owned v6", v6(VIP6, 17), LocalBucket.OWNED],
  ["UDP foreign v6", v6(VIP6, 17), LocalBucket.FOREIGN],
  ["TCP non-VIP v6", v6(NON_VIP6, 6), LocalBucket.OWNED]
]

const filters = objects.map((o) => loadFilter({ objectPath: o }))
const floor = loadFilter({ objectPath: FLOOR_OBJECT, program: "floor_xdp" })
for (const f of filters) {
  f.setConfig(baseConfig())
  f.setVips([catchAll(VIP4), catchAll(VIP6)])
}
const median = (xs: Array<number>): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const cell = (xs: Array<number>) => `${median(xs)} / ${Math.min(...xs)}`

console.log(`BPF_PROG_TEST_RUN, repeat ${repeat}, ${rounds} rounds interleaved, ns/packet median / min`)
console.log(`| case | floor | ${objects.map((o, i) => `#${i} ${o.split("/").pop()}`).join(" | ")} | retval |`)
console.log(`|---|---|${objects.map(() => "---|").join("")}---|`)
for (const [name, frame, code] of cases) {
  for (const f of filters) f.setBuckets(new Uint8Array(16 * 1024).fill(code))
  const t = filters.map(() => [] as Array<number>)
  const g: Array<number> = []
  const rv = new Set<number>()
  for (let r = 0; r < rounds; r++) {
    g.push(floor.testRun(frame, repeat).durationNs)
    filters.forEach((f, i) => {
      const a = f.testRun(frame, repeat)
      rv.add(a.retval)
      t[i].push(a.durationNs)
    })
  }
  console.log(`| ${name} | ${cell(g)} | ${t.map(cell).join(" | ")} | ${[...rv].join(",")} |`)
}
for (const f of filters) f.close()
floor.close()
