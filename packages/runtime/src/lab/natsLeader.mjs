/**
 * Which NATS node leads a JetStream stream, asked from inside a lab namespace:
 *   node natsLeader.mjs STREAM URL,URL,... [USER PASSWORD_FILE]
 * Writes JSON {leader, replicas: [{name, current}]} on stdout; exits 1 when it cannot tell
 * within 5 s.
 */
import { readFileSync } from "node:fs"
import { connect } from "@nats-io/transport-node"
import { jetstreamManager } from "@nats-io/jetstream"

const [stream, urls, user, passwordFile] = process.argv.slice(2)
if (stream === undefined || urls === undefined) {
  process.stderr.write("usage: natsLeader.mjs STREAM URL,URL,... [USER PASSWORD_FILE]\n")
  process.exit(2)
}
const auth = user !== undefined && passwordFile !== undefined ? { user, pass: readFileSync(passwordFile, "utf8").trim() } : {}
const timer = setTimeout(() => {
  process.stderr.write("natsLeader: no answer within 5 s\n")
  process.exit(1)
}, 5000)
try {
  const nc = await connect({ servers: urls.split(","), timeout: 2000, ...auth })
  const jsm = await jetstreamManager(nc, { timeout: 2000 })
  const info = await jsm.streams.info(stream)
  const cluster = info.cluster ?? {}
  process.stdout.write(JSON.stringify({ leader: cluster.leader ?? null, replicas: (cluster.replicas ?? []).map((r) => ({ name: r.name, current: r.current })) }) + "\n")
  await nc.close()
  clearTimeout(timer)
} catch (e) {
  process.stderr.write(`natsLeader: ${e.message}\n`)
  process.exit(1)
}
