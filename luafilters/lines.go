package luafilters

import (
	"regexp"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// chunkName is the name the snippet is compiled under. gopher-lua prefixes runtime errors with
// "<chunk>:<line>:", which is how lines are recovered from error values.
const chunkName = "snippet"

// currentLine returns the snippet line being executed, walking out of Go frames (an API method
// implemented in Go reports the line of the Lua code that called it). 0 if unknown.
func currentLine(L *lua.LState) int {
	if L == nil {
		return 0
	}
	for level := 0; level < 64; level++ {
		dbg, ok := L.GetStack(level)
		if !ok {
			return 0
		}
		if _, err := L.GetInfo("Sl", dbg, nil); err != nil {
			continue
		}
		if dbg.Source == chunkName && dbg.CurrentLine > 0 {
			return dbg.CurrentLine
		}
	}
	return 0
}

var linePrefix = regexp.MustCompile(`^` + chunkName + `:(\d+): ?`)
var traceLine = regexp.MustCompile(`\b` + chunkName + `:(\d+):`)

// splitErrorLine separates "snippet:12: message" into 12 and "message". When the message has no
// position (error(obj), error(msg, 0)) the innermost snippet frame of the traceback is used.
func splitErrorLine(msg, trace string) (int, string) {
	if m := linePrefix.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, strings.TrimSpace(msg[len(m[0]):])
	}
	if m := traceLine.FindStringSubmatch(trace); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, strings.TrimSpace(msg)
	}
	return 0, strings.TrimSpace(msg)
}

// lastLine is where an "unexpected end of input" syntax error points: the last line holding
// anything, since gopher-lua reports EOF positions as -1.
func lastLine(src string) int {
	trimmed := strings.TrimRight(src, " \t\r\n")
	return strings.Count(trimmed, "\n") + 1
}
