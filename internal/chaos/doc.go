// Package chaos holds Slipway's chaos suite, in its tests only: a real
// server process and real agent processes (the test binary re-executed as
// `slipway server` and `slipway agent`) run a few hundred jobs while the
// test SIGKILLs agents at random points, kills and restarts the server on
// the same database, and restarts PostgreSQL. It then checks the promises
// of DESIGN.md: every acknowledged job reaches a final state, no attempt
// runs twice, no update from a stale lease is applied, and every job's
// events form a path of the lifecycle.
//
// What the suite expects of a local-process job whose agent died while the
// process ran: a local process cannot be re-attached to (it dies with its
// agent), so the next agent, or the server for a process whose id was never
// recorded, ends the job failed with a "lost track" reason. That is a final
// state, reported as "abandoned" in the figures, never a second run: the
// job's attempt ran at most once, and it is not counted as lost. SageMaker
// jobs survive their agent: the next agent re-attaches, and each attempt
// has exactly one training job.
package chaos
