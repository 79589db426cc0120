/**
 * The HTML report: one self-contained page (inline CSS and SVG, no external assets) with
 * the summary, bucket shares over time, new-flow shares, the failover timeline, the
 * event timeline and the violations with their replay command.
 */
import { writeFileSync } from "node:fs"
import { formatReport, type Report } from "./report.ts"

const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]
const color = (i: number): string => PALETTE[i % PALETTE.length]

/** Timeline rows the page shows (it says so when there are more). */
export const TIMELINE_ROWS = 600

const W = 900
const H = 260
const M = { l: 50, r: 10, t: 10, b: 30 }

const axis = (maxX: number, maxY: number, yLabel: string): string => {
  const out: Array<string> = []
  const pw = W - M.l - M.r
  const ph = H - M.t - M.b
  out.push(`<line x1="${M.l}" y1="${M.t + ph}" x2="${M.l + pw}" y2="${M.t + ph}" stroke="#888"/>`)
  out.push(`<line x1="${M.l}" y1="${M.t}" x2="${M.l}" y2="${M.t + ph}" stroke="#888"/>`)
  for (let i = 0; i <= 5; i++) {
    const x = M.l + (pw * i) / 5
    out.push(`<text x="${x}" y="${H - 8}" font-size="11" text-anchor="middle">${((maxX * i) / 5 / 1000).toFixed(1)} s</text>`)
    const y = M.t + ph - (ph * i) / 5
    out.push(`<text x="${M.l - 4}" y="${y + 4}" font-size="11" text-anchor="end">${Math.round((maxY * i) / 5)}</text>`)
  }
  out.push(`<text x="12" y="${M.t + ph / 2}" font-size="11" transform="rotate(-90 12 ${M.t + ph / 2})" text-anchor="middle">${esc(yLabel)}</text>`)
  return out.join("")
}

const linePlot = (times: ReadonlyArray<number>, series: ReadonlyArray<ReadonlyArray<number>>, names: ReadonlyArray<string>, yLabel: string): string => {
  const maxX = Math.max(1, times[times.length - 1] ?? 1)
  let maxY = 1
  for (const s of series) for (const v of s) if (v > maxY) maxY = v
  const pw = W - M.l - M.r
  const ph = H - M.t - M.b
  const paths = series.map((s, i) => {
    if (s.every((v) => v === 0)) return ""
    const pts = s.map((v, k) => `${(M.l + (pw * times[k]) / maxX).toFixed(1)},${(M.t + ph - (ph * v) / maxY).toFixed(1)}`).join(" ")
    return `<polyline fill="none" stroke="${color(i)}" stroke-width="1.5" points="${pts}"><title>${esc(names[i])}</title></polyline>`
  })
  const legend = names.map((n, i) => (series[i].every((v) => v === 0) ? "" : `<span style="color:${color(i)}">■ ${esc(n)}</span>`)).join(" ")
  return `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img">${axis(maxX, maxY, yLabel)}${paths.join("")}</svg><div class="legend">${legend}</div>`
}

const failoverPlot = (r: Report): string => {
  if (r.failovers.length === 0) return "<p>No failover in this run.</p>"
  const maxX = Math.max(1, r.simulatedMs)
  const rowH = 22
  const h = M.t + r.failovers.length * rowH + M.b
  const pw = W - M.l - 150
  const rows = r.failovers.map((f, i) => {
    const y = M.t + i * rowH
    const x0 = M.l + (pw * f.atMs) / maxX
    const d = f.durationMs ?? r.simulatedMs - f.atMs
    const x1 = M.l + (pw * (f.atMs + d)) / maxX
    const over = f.durationMs === null || (f.budgetApplies && f.durationMs > 1000)
    const fill = over ? "#e15759" : f.durationMs !== null && f.durationMs < 500 ? "#59a14f" : "#edc948"
    return `<rect x="${x0.toFixed(1)}" y="${y + 4}" width="${Math.max(2, x1 - x0).toFixed(1)}" height="${rowH - 8}" fill="${fill}"><title>${esc(`${f.node} ${f.fault} at ${f.atMs} ms: ${f.durationMs === null ? "never" : `${f.durationMs} ms`}`)}</title></rect>` +
      `<text x="${(x1 + 6).toFixed(1)}" y="${y + rowH / 2 + 4}" font-size="11">${esc(`${f.node} ${f.fault}: ${f.durationMs === null ? "never" : `${Math.round(f.durationMs)} ms`}`)}</text>`
  })
  const ticks: Array<string> = []
  for (let i = 0; i <= 5; i++) {
    const x = M.l + (pw * i) / 5
    ticks.push(`<text x="${x}" y="${h - 8}" font-size="11" text-anchor="middle">${((maxX * i) / 5 / 1000).toFixed(1)} s</text>`)
  }
  return `<svg viewBox="0 0 ${W} ${h}" width="100%" role="img"><line x1="${M.l}" y1="${h - M.b}" x2="${M.l + pw}" y2="${h - M.b}" stroke="#888"/>${ticks.join("")}${rows.join("")}</svg>`
}

/** The report as a self-contained HTML page. */
export const htmlReport = (r: Report): string => {
  const names = r.servers
  const violations = r.violations.length === 0
    ? "<p class=ok>No invariant was broken.</p>"
    : `<table><tr><th>time</th><th>invariant</th><th>detail</th><th>event</th></tr>${r.violations.map((v) => `<tr><td>${(v.atMs / 1000).toFixed(3)} s</td><td>${esc(v.invariant)}</td><td>${esc(v.detail)}</td><td>${esc(v.event)}</td></tr>`).join("")}</table><p>Replay: <code>${esc(r.violations[0].replay)}</code></p>`
  const lines = r.timeline.filter((l) => !l.kind.startsWith("log:") || /Failed|Joined|Left|Unhealthy|Drain|Weight/.test(l.kind))
  const timeline = lines
    .slice(0, TIMELINE_ROWS)
    .map((l) => `<tr><td>${(l.atMs / 1000).toFixed(3)} s</td><td>${esc(l.kind)}</td><td>${esc(l.node)}</td><td>${esc(l.detail)}</td></tr>`)
    .join("")
  const cut = [
    lines.length > TIMELINE_ROWS ? `the first ${TIMELINE_ROWS} of ${lines.length} lines shown` : "",
    r.timelineDropped > 0 ? `${r.timelineDropped} later lines were not recorded (a run keeps ${r.timeline.length})` : ""
  ].filter((x) => x !== "")
  const timelineNote = cut.length === 0 ? "" : `<p class=bad>Timeline cut: ${esc(cut.join("; "))}.</p>`
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vipfarm sim: ${esc(r.scenario)} seed ${r.seed}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1000px;color:#222}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}
table{border-collapse:collapse;font-size:12px;width:100%}td,th{border-bottom:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
.legend{font-size:12px;margin-bottom:1em}.ok{color:#2a7}.bad{color:#c22}
h1 .bad,h1 .ok{font-size:0.7em}
</style></head><body>
<h1>${esc(r.scenario)} <span class="${r.ok ? "ok" : "bad"}">${r.ok ? "OK" : "FAILED"}</span></h1>
<p>Seed ${r.seed}; ${(r.simulatedMs / 1000).toFixed(1)} s simulated; replay with <code>farm sim ${esc(r.source)} --seed ${r.seed}</code>.</p>
<pre>${esc(formatReport(r))}</pre>
<h2>Buckets owned over time</h2>
${linePlot(r.shares.timesMs, r.shares.buckets, names, "buckets (table 0)")}
<h2>New flows accepted per sample</h2>
${linePlot(r.shares.timesMs, r.shares.flows, names, "new flows")}
<h2>Failover timeline</h2>
${failoverPlot(r)}
<h2>Violations</h2>
${violations}
<h2>Timeline</h2>
${timelineNote}
<table><tr><th>time</th><th>event</th><th>node</th><th>detail</th></tr>${timeline}</table>
</body></html>
`
}

/** Write the HTML report of a run to `path`. */
export const writeHtmlReport = (r: Report, path: string): void => writeFileSync(path, htmlReport(r))
