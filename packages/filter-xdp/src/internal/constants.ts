/** Table geometry re-exported from the domain (kept in one place for the filter). */
export { BUCKETS } from "../../../domain/src/hash.ts"
export { MAX_TABLES } from "../../../domain/src/localView.ts"
