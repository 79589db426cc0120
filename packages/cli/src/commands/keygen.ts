/** `farm keygen NODE`: an Ed25519 key pair for signed records (docs/security.md). */
import { existsSync, writeFileSync } from "node:fs"
import { Console, Effect } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { runtime } from "./lazy.ts"

/** `farm keygen NODE [--out FILE]`: writes the private key (mode 0600) and prints the public key's config line. */
export const keygen = Command.make(
  "keygen",
  {
    node: Argument.String("node").pipe(Argument.withDescription("the server's name (its key's name in signing.keys)")),
    out: Flag.String("out").pipe(Flag.withDescription("where to write the private key (default NODE.key); never overwritten"), Flag.optional)
  },
  ({ node, out }) =>
    Effect.gen(function* () {
      const file = out._tag === "Some" ? out.value : `${node}.key`
      if (existsSync(file)) return yield* Effect.fail(new Error(`${file} exists: not overwritten`))
      const { generateKeys } = yield* runtime
      const k = generateKeys()
      writeFileSync(file, k.privatePem, { mode: 0o600, flag: "wx" })
      yield* Console.log(`private key: ${file} (signing.key of ${node}; keep it mode 0600)`)
      yield* Console.log(`every server's config, under signing.keys:\n    ${node}: ${k.publicBase64}`)
    })
).pipe(Command.withDescription("generate an Ed25519 key pair for signed log records"))
