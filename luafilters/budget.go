package luafilters

import (
	"context"
	"errors"
	"fmt"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// gopher-lua has no instruction hook, but once a context is set its VM loop calls ctx.Done()
// before every instruction and raises ctx.Err() when the returned channel is closed. budget is a
// context.Context built on that: Done() counts instructions, and it doubles as the way to stop a
// script from Go (after respond(), or after an API violation) so that a pcall() in the snippet
// cannot swallow the stop: every following instruction raises again.
//
// budget is used by exactly one goroutine, the one running the LState, so it needs no locking.
// It bends the context.Context contract (Done() does not always return the same channel), which
// is fine because only gopher-lua's VM loop ever sees it.
type budget struct {
	parent context.Context // carries the wall-clock deadline
	L      *lua.LState
	left   int64
	max    int64
	// halted is why the script must stop; nil while it may run.
	halted error
	// haltLine is the snippet line executing when the budget ran out.
	haltLine int
}

// Reasons a budget halts the script.
var (
	errInstructions = errors.New("instruction budget exceeded")
	errTimeout      = errors.New("time limit exceeded")
	// errStopped ends a script on purpose (respond() was called, or an API violation was
	// recorded); it is not reported as a failure by itself.
	errStopped = errors.New("script stopped by dynup's Envoy mock")
)

// closedChan is returned by Done() once the script must stop.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func newBudget(parent context.Context, L *lua.LState, maxInstructions int64) *budget {
	return &budget{parent: parent, L: L, left: maxInstructions, max: maxInstructions}
}

func (b *budget) Deadline() (time.Time, bool) { return b.parent.Deadline() }
func (b *budget) Value(key any) any           { return b.parent.Value(key) }

// Done is called by the VM before each instruction.
func (b *budget) Done() <-chan struct{} {
	if b.halted != nil {
		return closedChan
	}
	b.left--
	if b.left < 0 {
		b.halt(errInstructions)
		return closedChan
	}
	return b.parent.Done()
}

// Err is called by the VM after Done() fired, to get the message it raises.
func (b *budget) Err() error {
	if b.halted == nil && b.parent.Err() != nil {
		b.halt(errTimeout)
	}
	return b.halted
}

// halt makes every following instruction raise. The first reason wins.
func (b *budget) halt(reason error) {
	if b.halted != nil {
		return
	}
	b.halted = reason
	b.haltLine = currentLine(b.L)
}

// spend charges n units of work done outside the VM loop (pattern-matching steps) and raises
// in Lua once the budget or the time is exhausted.
func (b *budget) spend(n int64) {
	if b.halted == nil {
		b.left -= n
		if b.left < 0 {
			b.halt(errInstructions)
		} else if b.parent.Err() != nil {
			b.halt(errTimeout)
		}
	}
	if b.halted != nil {
		b.L.RaiseError("%s", b.halted.Error())
	}
}

// resume lets the next entry point run after a deliberate stop (respond() in envoy_on_request
// must not keep Validate from running envoy_on_response). Limits are never resumed.
func (b *budget) resume() {
	if b.halted == errStopped {
		b.halted = nil
	}
}

// limitError turns a spent budget into the error Validate reports, or nil if it is not spent.
func (b *budget) limitError(lim Limits) *ValidationError {
	switch b.halted {
	case errInstructions:
		return &ValidationError{Line: b.haltLine, Phase: PhaseLimit, Msg: fmt.Sprintf(
			"script exceeded its budget of %d Lua instructions and pattern-matching steps (an endless loop or a pathological pattern?)", b.max)}
	case errTimeout:
		return &ValidationError{Line: b.haltLine, Phase: PhaseLimit, Msg: fmt.Sprintf(
			"script exceeded its time limit of %s (an endless loop?)", lim.Timeout)}
	}
	return nil
}
