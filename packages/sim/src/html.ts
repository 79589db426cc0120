/** HTML report placeholder (replaced below). */
import { writeFileSync } from "node:fs"
import type { Report } from "./report.ts"
/** The report as a self-contained HTML page. */
export const htmlReport = (r: Report): string => `<!doctype html><pre>${JSON.stringify(r.failover)}</pre>`
/** Write the HTML report. */
export const writeHtmlReport = (r: Report, path: string): void => writeFileSync(path, htmlReport(r))
