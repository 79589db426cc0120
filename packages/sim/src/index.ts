/** @vipfarm/sim: the discrete-event simulator of a vipfarm farm (issue 4). */
export { runScenario, type Progress, type RunOptions } from "./run.ts"
export { formatReport, type Report, type Violation, type FailoverRecord, type BalanceRow, type TimelineLine } from "./report.ts"
export { writeHtmlReport, htmlReport } from "./html.ts"
export {
  loadScenario, parseScenario, parseScenarioText, resolveScenarioPath, shippedScenarios, scenariosDir, defaultScenarioName,
  Scenario, ScenarioError, TimelineEntry, durationMs
} from "./scenario.ts"
export { Prng } from "./prng.ts"
