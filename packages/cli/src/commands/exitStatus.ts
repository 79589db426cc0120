/**
 * The exit statuses of the long-running commands (`farm daemon`, `farm witness`), as the
 * systemd unit lists them:
 *
 *   0   stopped by SIGTERM/SIGINT after a clean stop (drain, leave, host set-up removed)
 *   75  keep-serving restart (`farm restart`, SIGUSR2; restart.ts): the unit starts it again
 *   78  the configuration is invalid (EX_CONFIG): restarting cannot help
 *   1   any other fatal error (what was set is removed before the exit)
 */
import { Cause, Effect, Exit, Runtime } from "effect"

/** Exit status of a clean stop on SIGTERM/SIGINT. */
export const EXIT_STOPPED = 0
/** Exit status of a bad configuration (sysexits EX_CONFIG). */
export const EXIT_CONFIG = 78

/** Mark a failure so that the runtime exits with `status` (Effect's `Runtime.errorExitCode`). */
export const withExitStatus = (status: number) => <E extends object>(e: E): E => Object.assign(e, { [Runtime.errorExitCode]: status })

/**
 * Run a command until a signal stops it: the runtime interrupts the main fiber on SIGTERM or
 * SIGINT (and would exit with 130, which systemd records as a failure). Once every finalizer
 * has run (the clean stop), an interruption-only end exits with {@link EXIT_STOPPED}; a
 * failure keeps its status, a success ends as before.
 */
export const stopsCleanlyOnSignal = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  effect.pipe(
    Effect.onExit((exit) =>
      Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? Effect.sync(() => process.exit(EXIT_STOPPED)) : Effect.void
    )
  )
