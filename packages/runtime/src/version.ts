/**
 * vipfarm's version, as a constant rather than read from package.json at run time, so a
 * bundled or packaged build reports it too (a test keeps it equal to package.json's).
 */
export const VERSION = "0.1.0"
