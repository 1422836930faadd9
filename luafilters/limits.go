package luafilters

import "time"

// Limits bound one Validate or DryRun call. A snippet comes from an admin over the network and is
// executed inside the control plane, so every run needs a hard ceiling on size, work and time.
type Limits struct {
	// MaxSourceBytes rejects larger snippets before they are parsed (Phase "size").
	MaxSourceBytes int `json:"max_source_bytes"`
	// MaxInstructions is the number of Lua VM instructions the whole run (top-level chunk plus
	// every entry point) may execute. It is the deterministic guard against loops: unlike the
	// timeout it does not depend on machine load.
	MaxInstructions int64 `json:"max_instructions"`
	// Timeout is the wall-clock ceiling of the whole run, the backstop for work the instruction
	// count does not see (time spent inside Go library functions such as string.find).
	Timeout time.Duration `json:"timeout"`
	// MaxAllocBytes caps the memory a snippet can make dynup allocate in single operations that
	// the instruction count cannot see: string building ("..", string.rep, string.format,
	// string.gsub, table.concat, string.upper...) and copies made by the Envoy mock. Without it,
	// `s = s .. s` in a 40-iteration loop would ask for a terabyte in a few hundred instructions.
	// Allocations the VM makes per instruction (tables, closures) are bounded by MaxInstructions.
	MaxAllocBytes int64 `json:"max_alloc_bytes"`
}

// Defaults chosen so that any sane header-manipulation snippet fits with a wide margin (such a
// snippet runs a few hundred instructions), while a runaway loop is stopped in well under a
// second on a loaded machine.
const (
	defaultMaxSourceBytes  = 64 << 10
	defaultMaxInstructions = 2_000_000
	defaultTimeout         = time.Second
	defaultMaxAllocBytes   = 64 << 20
)

// DefaultLimits returns the limits the admin API uses: 64 KiB of source, two million VM
// instructions, one second of wall-clock time and 64 MiB of string building.
func DefaultLimits() Limits {
	return Limits{
		MaxSourceBytes:  defaultMaxSourceBytes,
		MaxInstructions: defaultMaxInstructions,
		Timeout:         defaultTimeout,
		MaxAllocBytes:   defaultMaxAllocBytes,
	}
}

// withDefaults replaces zero or negative fields by their defaults. A zero Limits{} therefore
// means "default limits", never "unlimited": there is deliberately no way to switch a guard off.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxSourceBytes <= 0 {
		l.MaxSourceBytes = d.MaxSourceBytes
	}
	if l.MaxInstructions <= 0 {
		l.MaxInstructions = d.MaxInstructions
	}
	if l.Timeout <= 0 {
		l.Timeout = d.Timeout
	}
	if l.MaxAllocBytes <= 0 {
		l.MaxAllocBytes = d.MaxAllocBytes
	}
	return l
}
