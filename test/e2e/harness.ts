/** Helpers for end-to-end tests on a lab farm (the lab and its driving code are the product's own). */
import { Effect } from "effect"
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync } from "node:fs"
import { LAB_ROOT, labDown, labPrefix, labUp, type LabOptions, type LabState, listNamespaces, waitFarmUp } from "@vipfarm/runtime"

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

/** Remove a lab (its logs are kept under artifacts/e2e/NAME); returns its namespaces still present (none, if cleanup works). */
export const stopLab = (name: string): Array<string> => {
  const logs = `${LAB_ROOT}/${name}`
  if (existsSync(logs)) {
    const keep = `${process.cwd()}/artifacts/e2e/${name}`
    rmSync(keep, { recursive: true, force: true })
    mkdirSync(keep, { recursive: true })
    for (const f of readdirSync(logs)) if (f.endsWith(".log") || f.endsWith(".yaml") || f === "state.json") cpSync(`${logs}/${f}`, `${keep}/${f}`)
  }
  labDown(name)
  return listNamespaces(labPrefix(name))
}
