/**
 * Signed records: every record a server appends carries `sig: {by, ed25519}`, the Ed25519
 * signature (node:crypto) of the record's canonical JSON without `sig` (domain chain.ts, RFC
 * 8785), made with the server's private key. Every folder verifies each record against the
 * public keys of the farm's config before the fold and attaches the verdict (domain verify.ts):
 * when `signing.keys` is set, an unsigned record, a signer without a key or a signature that
 * does not verify is rejected; a valid one is then checked by the reducer for what its signer
 * may write. Verification runs here rather than in the domain because the keys are
 * configuration and node:crypto is a platform API; the verdict is a pure input of the fold.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, sign, verify } from "node:crypto"
import { readFileSync } from "node:fs"
import { Effect, Schema, Stream } from "effect"
import { attest, canonicalJson } from "@vipfarm/domain"
import type { EventLog } from "./eventLog.ts"

/** A signing key or a public key could not be read. */
export class SigningError extends Schema.TaggedError<SigningError>()("SigningError", {
  key: Schema.String,
  message: Schema.String
}) {}

/** The farm's signing settings (config `signing:`). */
export interface SigningConfig {
  /** Path of this server's Ed25519 private key (PEM, PKCS#8); null: this process appends nothing signed. */
  readonly key: string | null
  /** Every signer's public key by server name: PEM text or base64 of the DER SPKI. */
  readonly keys: Readonly<Record<string, string>>
}

/** What a process signs with and verifies against. */
export interface Signer {
  readonly node: string
  readonly privateKey: KeyObject | null
  readonly publicKeys: ReadonlyMap<string, KeyObject>
}

const utf8 = new TextEncoder()

/** A public key from PEM text or base64 DER SPKI. */
export const parsePublicKey = (text: string): KeyObject => {
  const t = text.trim()
  const k = t.startsWith("-----BEGIN") ? createPublicKey(t) : createPublicKey({ key: Buffer.from(t, "base64"), format: "der", type: "spki" })
  if (k.asymmetricKeyType !== "ed25519") throw new Error(`a ${k.asymmetricKeyType} key, not ed25519`)
  return k
}

/** Load the keys of a config; fails naming the key (`signing.key`, `signing.keys.NODE`). */
export const loadSigner = (node: string, c: SigningConfig, options: { readonly needKey: boolean }): Effect.Effect<Signer, SigningError> =>
  Effect.try({
    try: () => {
      const publicKeys = new Map<string, KeyObject>()
      for (const [name, text] of Object.entries(c.keys)) {
        try {
          publicKeys.set(name, parsePublicKey(text))
        } catch (e) {
          throw new SigningError({ key: `signing.keys.${name}`, message: `not an Ed25519 public key (PEM or base64 SPKI): ${(e as Error).message}` })
        }
      }
      if (c.key === null) {
        if (options.needKey && publicKeys.size > 0) throw new SigningError({ key: "signing.key", message: `signing.keys is set: this server needs its private key to append (farm keygen ${node})` })
        return { node, privateKey: null, publicKeys }
      }
      let privateKey: KeyObject
      try {
        privateKey = createPrivateKey(readFileSync(c.key, "utf8"))
      } catch (e) {
        throw new SigningError({ key: "signing.key", message: `cannot read the private key ${c.key}: ${(e as Error).message}` })
      }
      if (privateKey.asymmetricKeyType !== "ed25519") throw new SigningError({ key: "signing.key", message: `${c.key} holds a ${privateKey.asymmetricKeyType} key, not ed25519` })
      const mine = publicKeys.get(node)
      if (publicKeys.size > 0 && mine === undefined) throw new SigningError({ key: `signing.keys.${node}`, message: `no public key for this server (${node}): the others could not verify its records` })
      if (mine !== undefined && !mine.equals(createPublicKey(privateKey))) {
        throw new SigningError({ key: `signing.keys.${node}`, message: `does not match the private key in ${c.key}` })
      }
      return { node, privateKey, publicKeys }
    },
    catch: (e) => (e instanceof SigningError ? e : new SigningError({ key: "signing", message: String(e) }))
  })

const withoutSig = (record: Record<string, unknown>): Record<string, unknown> => {
  const { sig: _sig, ...rest } = record
  return rest
}

/** The record with this server's signature (records that are not objects are returned as they are). */
export const signRecord = (s: Signer, entry: unknown): unknown => {
  if (s.privateKey === null || typeof entry !== "object" || entry === null || Array.isArray(entry)) return entry
  const body = withoutSig(entry as Record<string, unknown>)
  const ed25519 = sign(null, utf8.encode(canonicalJson({ ...body, sig: { by: s.node } })), s.privateKey).toString("base64")
  return { ...body, sig: { by: s.node, ed25519 } }
}

/**
 * Attach the verdict on a record's signature (domain `attest`); with no public keys configured
 * records are left unattested (the farm does not sign). The signed text is the canonical JSON
 * of the record with `sig: {by}` only, so the signer's name is covered too.
 */
export const verifyRecord = (s: Signer, entry: unknown): unknown => {
  if (s.publicKeys.size === 0 || typeof entry !== "object" || entry === null || Array.isArray(entry)) return entry
  const r = entry as Record<string, unknown>
  if ("malformed" in r && !("events" in r)) return entry // a stand-in for an unreadable record: the fold rejects it as malformed
  const sig = r.sig as { by?: unknown; ed25519?: unknown } | undefined
  if (typeof sig !== "object" || sig === null) return attest(entry, { _tag: "Refused", reason: "signature: unsigned record (the farm's config lists signing keys)" })
  if (typeof sig.by !== "string" || typeof sig.ed25519 !== "string") return attest(entry, { _tag: "Refused", reason: "signature: sig must be {by, ed25519}" })
  const key = s.publicKeys.get(sig.by)
  if (key === undefined) return attest(entry, { _tag: "Refused", reason: `signature: signer ${sig.by.slice(0, 64)} has no key in signing.keys` })
  let good = false
  try {
    good = verify(null, utf8.encode(canonicalJson({ ...withoutSig(r), sig: { by: sig.by } })), key, Buffer.from(sig.ed25519, "base64"))
  } catch {
    good = false
  }
  return attest(entry, good ? { _tag: "Signed", by: sig.by } : { _tag: "Refused", reason: `signature: does not verify with ${sig.by}'s key` })
}

/** An EventLog that signs what it appends and attaches a verdict to every record it reads. */
export const signedEventLog = (inner: EventLog["Service"], s: Signer): EventLog["Service"] => {
  if (s.privateKey === null && s.publicKeys.size === 0) return inner
  const check = <R extends { readonly entry: unknown }>(r: R): R => ({ ...r, entry: verifyRecord(s, r.entry) })
  return {
    append: (entry, o) => inner.append(signRecord(s, entry), o),
    records: (from) => inner.records(from).pipe(Stream.map(check)),
    read: (seq) => inner.read(seq).pipe(Effect.map((r) => (r === undefined ? r : check(r)))),
    lastSeq: inner.lastSeq
  }
}

/** A new Ed25519 key pair: the private key as PEM (PKCS#8) and the public key as PEM and as base64 SPKI. */
export const generateKeys = (): { readonly privatePem: string; readonly publicPem: string; readonly publicBase64: string } => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519")
  return {
    privatePem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    publicPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
    publicBase64: publicKey.export({ format: "der", type: "spki" }).toString("base64")
  }
}
