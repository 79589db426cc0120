/** Helpers for end-to-end tests on a lab farm (the lab and its driving code are the product's own). */
import { Effect } from "effect"
import { labDown, labPrefix, labUp, type LabOptions, type LabState, listNamespaces, waitFarmUp } from "@vipfarm/runtime"

export {
  addressesOf, daemonRunning, expectedServer, type HoldResult, type HttpResult, killDaemon, labOwners as owners, labStatus as status,
  type PollResult, recoveryTimes, runProbe as probe, termDaemon, until
} from "@vipfarm/runtime"

/** True when this process can build labs; otherwise print why the suite is skipped. */
export const rootOrSkip = (suite: string): boolean => {
  const root = process.getuid?.() === 0
  if (!root) console.log(`${suite}: skipped: needs root (network namespaces, XDP); CI runs it as root`)
  return root
}

/** Build a lab with daemons and wait until every server is up and owns a share. */
export const startLab = async (o: Partial<LabOptions> & { name: string }): Promise<LabState> => {
  const lab = await Effect.runPromise(labUp({ servers: 3, clients: 1, addressesPerClient: 40, app: "builtin", daemons: true, ...o }))
  try {
    await waitFarmUp(lab)
  } catch (e) {
    labDown(o.name)
    throw e
  }
  return lab
}

/** Remove a lab; returns its namespaces still present (none, if cleanup works). */
export const stopLab = (name: string): Array<string> => {
  labDown(name)
  return listNamespaces(labPrefix(name))
}
