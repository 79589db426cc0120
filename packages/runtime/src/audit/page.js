// vipfarm audit viewer: plain browser JavaScript, no dependencies. Every value from the log
// is untrusted: it is only ever put in the page as text (textContent), never as HTML.
"use strict"

const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
  "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
const NOBODY = "#2a2f36"
const $ = (id) => document.getElementById(id)

const ui = {
  info: null,
  follow: true, // show the head and move with it
  seq: 0,
  state: null,
  table: 0,
  colors: new Map(), // member name -> colour, stable for the session
  filters: {}
}

const colorOf = (name) => {
  if (name === null || name === undefined) return NOBODY
  if (!ui.colors.has(name)) ui.colors.set(name, PALETTE[ui.colors.size % PALETTE.length])
  return ui.colors.get(name)
}

const el = (tag, props = {}, ...children) => {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v
    else if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = String(dv)
    else if (k === "color") e.style.backgroundColor = v // CSSOM: allowed by the page's CSP (inline style attributes are not)
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v)
    else e.setAttribute(k, v)
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(typeof c === "string" || typeof c === "number" ? String(c) : c)
  return e
}

const fmtTime = (t) => {
  if (t === null || t === undefined) return "—"
  const d = new Date(t)
  const pad = (n, w = 2) => String(n).padStart(w, "0")
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`
}
const fmtDate = (t) => (t === null || t === undefined ? "—" : `${new Date(t).toLocaleDateString()} ${fmtTime(t)}`)
const fmtCause = (c) => (c ? `cause: ${c.kind} ${c.by}${c.detail ? ` — ${c.detail}` : ""}` : "cause: —")

const api = async (path) => {
  const r = await fetch(path, { credentials: "same-origin", cache: "no-store" })
  const body = await r.json()
  if (!r.ok) throw new Error(body.error || `${r.status}`)
  return body
}

// ---- header ---------------------------------------------------------------------------

const renderInfo = () => {
  const i = ui.info
  $("farm").textContent = i.farm
  $("source").textContent = i.source
  $("head").textContent = `${i.headSeq} records · last ${fmtDate(i.headTime)}`
  renderChain(i.chain)
  const slider = $("seq")
  slider.max = String(i.headSeq)
  $("seq-input").max = String(i.headSeq)
}

const renderChain = (c) => {
  const b = $("chain-badge")
  b.className = `badge ${c.ok ? "ok" : "bad"}`
  b.dataset.ok = String(c.ok)
  b.textContent = c.ok ? `chain verified · ${c.count} records` : `chain BROKEN at seq ${c.firstBad}`
  b.title = `${c.reason}${c.head ? `\nhead ${c.head}` : ""}`
  // the head an operator records to pin the log (a truncated or rewritten log no longer holds it)
  const h = $("chain-head")
  h.dataset.seq = String(c.lastSeq)
  h.dataset.head = c.head
  h.textContent = c.head ? `${c.ok ? "head" : "last good"} seq ${c.lastSeq} · ${c.head}` : ""
}

// ---- state and time travel ---------------------------------------------------------------

const loadState = async () => {
  const seq = ui.follow ? ui.info.headSeq : ui.seq
  const st = await api(`/api/state?seq=${seq}`)
  ui.state = st
  ui.seq = st.seq
  $("seq").value = String(st.seq)
  $("seq-input").value = String(st.seq)
  $("follow").classList.toggle("on", ui.follow)
  $("state-label").textContent = `after record ${st.seq} · ${fmtDate(st.time)}${ui.follow ? " · live" : " · time travel"}`
  $("state-label").dataset.seq = String(st.seq)
  $("travel-note").textContent = st.rejected > 0 ? `${st.rejected} record(s) refused by the reducer; last: seq ${st.lastRejection.seq}: ${st.lastRejection.reason}` : ""
  renderMembers(st)
  renderTables(st)
  renderMap()
  markTimeline()
}

const renderMembers = (st) => {
  const body = $("members").tBodies[0]
  body.replaceChildren(...st.members.map((m) => {
    const note = m.status === "unhealthy" && m.unhealthy ? `${m.unhealthy.checker}: ${m.unhealthy.reason}`
      : m.suspectedBy ? `suspected by ${m.suspectedBy}` : m.drained ? "drained" : ""
    return el("tr", { data: { member: m.name, status: m.status, buckets: m.buckets } },
      el("td", {}, el("span", { class: "swatch", color: colorOf(m.name) })),
      el("td", {}, m.name),
      el("td", { class: `st-${m.status}` }, m.status),
      el("td", { class: "count" }, m.buckets),
      el("td", {}, m.weight),
      el("td", {}, m.address),
      el("td", { class: "muted" }, note))
  }))
}

const renderTables = (st) => {
  const sel = $("table")
  if (sel.options.length !== st.tables.length) {
    sel.replaceChildren(...st.tables.map((_, i) => el("option", { value: String(i) }, i === 0 ? "0 (weighted share)" : `${i} (single-host rule)`)))
    if (ui.table >= st.tables.length) ui.table = 0
  }
  sel.value = String(ui.table)
}

const CELL = 16
const renderMap = () => {
  const st = ui.state
  const cv = $("bucketmap")
  const g = cv.getContext("2d")
  g.fillStyle = "#000"
  g.fillRect(0, 0, cv.width, cv.height)
  const t = st.tables[ui.table] || st.tables[0]
  const names = st.members.map((m) => m.name)
  for (let b = 0; b < t.owner.length; b++) {
    const x = (b % 32) * CELL + 1
    const y = Math.floor(b / 32) * CELL + 1
    const o = t.owner[b]
    g.fillStyle = o < 0 ? NOBODY : colorOf(names[o])
    g.fillRect(x, y, CELL - 1, CELL - 1)
  }
  for (const [b, to] of t.moving) {
    const x = (b % 32) * CELL + 1
    const y = Math.floor(b / 32) * CELL + 1
    g.fillStyle = to < 0 ? NOBODY : colorOf(names[to])
    g.beginPath()
    g.moveTo(x + CELL - 1, y)
    g.lineTo(x + CELL - 1, y + CELL - 1)
    g.lineTo(x, y + CELL - 1)
    g.closePath()
    g.fill()
    g.strokeStyle = "#fff"
    g.strokeRect(x + 0.5, y + 0.5, CELL - 2, CELL - 2)
  }
  for (const b of t.takenOver) {
    const x = (b % 32) * CELL + 1
    const y = Math.floor(b / 32) * CELL + 1
    g.fillStyle = "#000"
    g.beginPath()
    g.arc(x + CELL / 2 - 0.5, y + CELL / 2 - 0.5, 2.5, 0, Math.PI * 2)
    g.fill()
  }
  cv.dataset.seq = String(st.seq)
  cv.dataset.table = String(ui.table)
}

const bucketAt = (ev) => {
  const r = $("bucketmap").getBoundingClientRect()
  const x = Math.floor((ev.clientX - r.left) / CELL)
  const y = Math.floor((ev.clientY - r.top) / CELL)
  if (x < 0 || x > 31 || y < 0 || y > 31) return null
  return y * 32 + x
}

const travel = (seq) => {
  ui.follow = false
  ui.seq = Math.max(0, Math.min(ui.info.headSeq, seq))
  loadState().catch(showError)
}

// ---- timeline -------------------------------------------------------------------------------

const timelineQuery = () => {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(ui.filters)) if (v !== "" && v !== undefined) q.set(k, v)
  q.set("table", String(ui.table))
  return q.toString()
}

const loadTimeline = async () => {
  const r = await api(`/api/timeline?${timelineQuery()}`)
  const list = $("timeline")
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 20
  list.replaceChildren(...r.events.map((e) =>
    el("div", {
      class: `ev t-${e.tag}${e.rejected ? " rejected" : ""}`,
      data: { seq: e.seq, tag: e.tag, nodes: e.nodes.join(" ") },
      title: e.rejected ? `refused by the reducer: ${e.rejected}` : "click: show the farm after this record",
      onclick: () => travel(e.seq)
    },
    el("span", { class: "time", title: fmtDate(e.time) }, fmtTime(e.time)),
    el("span", { class: "muted" }, `#${e.seq}`),
    el("span", {}, el("span", { class: "tag" }, e.tag), e.summary, e.bucketsChanged > 0 ? el("span", { class: "muted" }, ` (${e.bucketsChanged} buckets changed)`) : null),
    el("span", { class: "cause" }, fmtCause(e.cause), e.rejected ? ` — REFUSED: ${e.rejected}` : ""))
  ))
  $("timeline-count").textContent = `${r.total} events${r.total > r.events.length ? ` (last ${r.events.length} shown)` : ""}`
  markTimeline()
  if (atBottom || ui.follow) list.scrollTop = list.scrollHeight
}

const markTimeline = () => {
  for (const row of $("timeline").children) {
    const s = Number(row.dataset.seq)
    row.classList.toggle("current", !ui.follow && s === ui.seq)
    row.classList.toggle("after", !ui.follow && s > ui.seq)
  }
}

// ---- history of a bucket, of a client ------------------------------------------------------

const cellText = (c) => !c ? "—" : c.state === "moving" ? `${c.owner} → ${c.to} (moving, hand-off ${c.handoff})`
  : c.state === "taken-over" ? `${c.owner} (taken over from ${c.from})` : (c.owner ?? "nobody")

const historyBlock = (history) => history.length === 0 ? el("p", { class: "muted" }, "no change of owner in the log")
  : el("div", {}, ...history.map((h) => el("div", { class: "result-block", data: { seq: h.seq } },
    el("div", {}, el("b", {}, `${fmtDate(h.time)} · record #${h.seq}: `), `${cellText(h.before)} ⇒ ${cellText(h.after)}`),
    ...h.events.map((e) => el("div", { class: "muted" }, `${e.tag}: ${e.summary} — ${fmtCause(e.cause)}`)))))

const showBucket = async (bucket) => {
  $("bucket-input").value = String(bucket)
  const r = await api(`/api/bucket?table=${ui.table}&bucket=${bucket}`)
  $("bucket-label").textContent = `table ${r.table}, bucket ${r.bucket}: ${r.history.length} change(s)`
  $("bucket-result").replaceChildren(historyBlock(r.history))
}

const explainClient = async () => {
  const address = $("client-address").value.trim()
  const port = $("client-port").value.trim()
  const out = $("client-result")
  try {
    const r = await api(`/api/client?address=${encodeURIComponent(address)}${port ? `&port=${encodeURIComponent(port)}` : ""}`)
    if (r.rules.length === 0) return out.replaceChildren(el("p", { class: "muted" }, "the farm has no rule for this address family"))
    out.replaceChildren(...r.rules.map((rule) => el("div", { class: "result-block rule", data: { bucket: rule.bucket ?? "", table: rule.table } },
      el("div", {}, el("b", {}, `${rule.vip} ${rule.proto}/${rule.ports} (${rule.affinity}): `),
        rule.bucket === null ? rule.note : `bucket ${rule.bucket} of table ${rule.table}, now ${cellText(rule.owner)}`),
      rule.bucket === null ? null : historyBlock(rule.history))))
  } catch (e) {
    out.replaceChildren(el("p", { class: "error" }, e.message))
  }
}

// ---- live --------------------------------------------------------------------------------

let refreshing = false
let again = false
const refresh = async () => {
  if (refreshing) { again = true; return }
  refreshing = true
  try {
    do {
      again = false
      ui.info = await api("/api/info")
      renderInfo()
      await loadTimeline()
      if (ui.follow || ui.state === null) await loadState()
    } while (again)
  } catch (e) {
    showError(e)
  } finally {
    refreshing = false
  }
}

const connectLive = () => {
  const badge = $("live-badge")
  const es = new EventSource("/api/live")
  es.addEventListener("head", (m) => {
    badge.className = "badge ok"
    badge.textContent = "live"
    const d = JSON.parse(m.data)
    renderChain(d.chain)
    if (!ui.info || d.seq !== ui.info.headSeq) refresh()
  })
  es.onerror = () => { badge.className = "badge bad"; badge.textContent = "disconnected: retrying" }
}

const showError = (e) => {
  const b = $("live-badge")
  b.className = "badge bad"
  b.textContent = `error: ${e.message}`
}

// ---- wiring ----------------------------------------------------------------------------------

const toMs = (v) => (v ? String(new Date(v).getTime()) : "")

window.addEventListener("DOMContentLoaded", () => {
  $("seq").addEventListener("input", (e) => travel(Number(e.target.value)))
  $("seq-input").addEventListener("change", (e) => travel(Number(e.target.value)))
  $("prev").addEventListener("click", () => travel(ui.seq - 1))
  $("next").addEventListener("click", () => travel(ui.seq + 1))
  $("follow").addEventListener("click", () => { ui.follow = true; loadState().then(loadTimeline).catch(showError) })
  $("table").addEventListener("change", (e) => { ui.table = Number(e.target.value); renderMap(); loadTimeline().catch(showError) })
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault()
    ui.filters = { node: $("f-node").value.trim(), bucket: $("f-bucket").value.trim(), from: toMs($("f-from").value), to: toMs($("f-to").value) }
    loadTimeline().catch(showError)
  })
  $("f-clear").addEventListener("click", () => {
    for (const id of ["f-node", "f-bucket", "f-from", "f-to"]) $(id).value = ""
    ui.filters = {}
    loadTimeline().catch(showError)
  })
  $("client-form").addEventListener("submit", (e) => { e.preventDefault(); explainClient() })
  $("bucket-form").addEventListener("submit", (e) => { e.preventDefault(); showBucket(Number($("bucket-input").value)).catch(showError) })
  const cv = $("bucketmap")
  cv.addEventListener("click", (e) => { const b = bucketAt(e); if (b !== null) showBucket(b).catch(showError) })
  cv.addEventListener("mousemove", (e) => {
    const b = bucketAt(e)
    if (b === null || !ui.state) return
    const t = ui.state.tables[ui.table]
    const names = ui.state.members.map((m) => m.name)
    const mv = t.moving.find((m) => m[0] === b)
    $("map-hover").textContent = `bucket ${b}: ${t.owner[b] < 0 ? "nobody" : names[t.owner[b]]}${mv ? ` → ${names[mv[1]]} (moving)` : ""}${t.takenOver.includes(b) ? " (taken over)" : ""}`
  })
  refresh().then(connectLive)
})
