/** Table geometry re-exported from the domain (kept in one place for the filter). */
export { BUCKETS } from "@vipfarm/domain"
export { MAX_TABLES } from "@vipfarm/domain"
