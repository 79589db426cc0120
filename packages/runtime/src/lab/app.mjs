/**
 * The lab's built-in application: answers with the server's name.
 * - HTTP on :80: `GET /` → "<name>\n".
 * - TCP on :7000: a long-lived line protocol; every line gets "<name> <line>\n" back,
 *   so a client can tell whether its connection lived and which server holds it.
 * - UDP on :5300: every datagram gets "<name> <payload>" back.
 * Run: node packages/runtime/src/lab/app.mjs NAME [--no-http]
 */
import { createServer } from "node:http"
import { createServer as createTcpServer } from "node:net"
import { createSocket } from "node:dgram"

const name = process.argv[2] ?? "app"
const bind = "0.0.0.0"
// --no-http: another application (nginx) serves port 80
const http = !process.argv.includes("--no-http")

if (http) {
  createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/plain", "x-server": name })
    res.end(`${name}\n`)
  }).listen(80, bind)
}

createTcpServer((sock) => {
  let buf = ""
  sock.setEncoding("utf8")
  sock.on("data", (chunk) => {
    buf += chunk
    let i
    while ((i = buf.indexOf("\n")) >= 0) {
      sock.write(`${name} ${buf.slice(0, i)}\n`)
      buf = buf.slice(i + 1)
    }
  })
  sock.on("error", () => sock.destroy())
}).listen(7000, bind)

const udp = createSocket("udp4")
udp.on("message", (msg, rinfo) => udp.send(`${name} ${msg.toString()}`, rinfo.port, rinfo.address))
udp.bind(5300, bind)

process.on("SIGTERM", () => process.exit(0))
process.stderr.write(`ts=${new Date().toISOString()} level=info op=app.start node=${name} http=80 tcp=7000 udp=5300\n`)
