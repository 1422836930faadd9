package luafilters

import "fmt"

// Bounds on what a DryRunResult may accumulate, so that a snippet looping over an API call
// cannot turn the admin API's answer into megabytes of JSON. Effects beyond them still happen;
// they are just not all listed.
const (
	maxRecordedChanges = 1000
	maxRecordedCalls   = 100
	maxNotes           = 100
)

// valueCost is what the mock charges per Lua value it copies (metadata tables, header
// snapshots): roughly the size of an LValue plus its table slot.
const valueCost = 32

// charge accounts n bytes the snippet makes dynup allocate outside the VM's per-instruction
// work, and stops the script with PhaseLimit before the allocation when the run's
// Limits.MaxAllocBytes would be exceeded.
func (s *sandbox) charge(n int64) {
	if n < 0 || n > s.allocLeft {
		s.limitErrorf("the snippet built more than %d bytes of strings and copies (dynup's allocation limit)", s.allocMax)
	}
	s.allocLeft -= n
}

// limitErrorf stops the script for exceeding one of the sandbox's resource caps.
func (s *sandbox) limitErrorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if s.violation == nil {
		s.violation = &ValidationError{Line: currentLine(s.L), Phase: PhaseLimit, Msg: msg}
	}
	s.budget.halt(errStopped)
	s.L.RaiseError("%s", msg)
}
