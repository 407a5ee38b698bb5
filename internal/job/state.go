// Package job is Slipway's domain: queues, jobs, their states and the rules
// for moving between them, and the sentinel errors every layer shares.
//
// It imports only the standard library so that every other package, the
// store, the server, the client and the agent, can speak it.
package job

import "fmt"

// State is where a job is in its lifecycle:
//
//	queued → claimed → building → submitting → starting → running → finished | failed | stopped | preempted | canceled
type State string

// The states of a job, in lifecycle order.
const (
	Queued     State = "queued"
	Claimed    State = "claimed"
	Building   State = "building"
	Submitting State = "submitting"
	Starting   State = "starting"
	Running    State = "running"
	Finished   State = "finished"
	Failed     State = "failed"
	Stopped    State = "stopped"
	Preempted  State = "preempted"
	Canceled   State = "canceled"
)

// States lists every state in lifecycle order.
var States = []State{Queued, Claimed, Building, Submitting, Starting, Running, Finished, Failed, Stopped, Preempted, Canceled}

// activeOrder ranks the states a held job moves through; a held job only
// moves forward through them.
var activeOrder = map[State]int{Claimed: 1, Building: 2, Submitting: 3, Starting: 4, Running: 5}

// ParseState returns the State named s.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("%w: state %q: want one of %v", ErrInvalid, s, States)
}

// Terminal reports whether no agent will act on a job in state s again.
func (s State) Terminal() bool {
	switch s {
	case Finished, Failed, Stopped, Preempted, Canceled:
		return true
	}
	return false
}

// Held reports whether a job in state s is held by an agent's lease.
func (s State) Held() bool { return activeOrder[s] > 0 }

// CanTransition reports whether a job may move from one state to another.
//
// A queued job may be claimed or canceled. A held job moves forward through
// the active states, may end in any terminal state, and goes back to queued
// when its lease is lost. A failed or preempted job may be queued again by a
// retry policy, as a new attempt.
func CanTransition(from, to State) bool {
	switch {
	case from == Queued:
		return to == Claimed || to == Canceled
	case from.Held():
		return to == Queued || to.Terminal() || activeOrder[to] > activeOrder[from]
	case from == Failed || from == Preempted:
		return to == Queued
	}
	return false
}
