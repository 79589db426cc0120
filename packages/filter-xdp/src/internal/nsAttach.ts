/**
 * Test helper, run inside a network namespace (`ip netns exec NS node --import tsx nsAttach.ts ...`):
 *   filter IFNAME IFMAC [MS] [MODE]  load the filter (test config: VIP 198.18.0.1 answered with
 *                         VMAC, every bucket owned, ifmac = IFMAC, deadline MS ms from now or
 *                         never, `-` for never), attach it in MODE (drv, skb; default drv);
 *                         prints the mode and the deadline (ns)
 *   auto IFNAME IFMAC [SETTING]  the same filter (never fenced), attached in the mode the
 *                         `xdp.mode` rule (attachMode.ts) gives for SETTING (default auto);
 *                         prints the mode and the reason, or `refused REASON`
 *   pass IFNAME           attach the XDP_PASS program (PASS_OBJECT) in native mode
 * Prints the mode and exits without detaching: the program stays attached until the
 * interface (or its namespace) is deleted.
 */
import { LocalBucket } from "@vipfarm/domain"
import { chooseMode, linkFacts, XdpModeRefused, type XdpModeSetting } from "../attachMode.ts"
import { attachPass, loadFilter } from "../loader.ts"
import { macBytes } from "../types.ts"
import { baseConfig, catchAll, FAR_FUTURE, monoNow, VIP4 } from "./fixtures.ts"

const [what, ifname, ifmac, ms, mode] = process.argv.slice(2)
if (what === "pass") {
  attachPass(ifname)
  console.log("drv")
} else if (what === "auto") {
  const choice = chooseMode((ms ?? "auto") as XdpModeSetting, linkFacts(ifname))
  if (choice instanceof XdpModeRefused) {
    console.log(`refused ${choice.message}`)
  } else {
    const h = loadFilter()
    h.setConfig(baseConfig({ ifmac: macBytes(ifmac) }))
    h.setVips([catchAll(VIP4)])
    h.setBuckets(new Uint8Array(16 * 1024).fill(LocalBucket.OWNED))
    const { mode } = h.attachWith(ifname, choice.fallback ? [choice.mode, "skb"] : [choice.mode])
    console.log(`${mode} ${mode === choice.mode ? choice.reason : "native attach failed, generic"}`)
  }
} else if (what === "filter") {
  const h = loadFilter()
  const deadlineNs = ms === undefined || ms === "-" ? FAR_FUTURE : monoNow() + BigInt(ms) * 1_000_000n
  h.setConfig(baseConfig({ ifmac: macBytes(ifmac), deadlineNs }))
  h.setVips([catchAll(VIP4)])
  h.setBuckets(new Uint8Array(16 * 1024).fill(LocalBucket.OWNED))
  console.log(`${h.attach(ifname, mode === "skb" ? "skb" : "drv")} ${deadlineNs}`)
} else {
  console.error("usage: nsAttach.ts filter IFNAME IFMAC [MS] [MODE] | auto IFNAME IFMAC [SETTING] | pass IFNAME")
  process.exit(2)
}
