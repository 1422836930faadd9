package luafilters

import (
	"fmt"

	lua "github.com/yuin/gopher-lua"
)

// Envoy exposes its API as userdata whose metatable lists the methods. The mock does the same,
// with two differences that exist to produce better errors: looking up a name Envoy does not
// have fails at once, naming the object, the name and the line (Envoy would only fail later with
// "attempt to call method 'x' (a nil value)"), and calling a method with '.' instead of ':' is
// diagnosed as such.

// method implements one Envoy API method. The receiver is Lua argument 1; the caller's own
// arguments start at 2.
type method func(s *sandbox, o *object) int

// class describes one kind of Envoy object (stream handle, header map, buffer...).
type class struct {
	// name is how messages refer to an instance ("headers", "streamInfo").
	name    string
	methods map[string]method
	// returns gives the class of the object a method returns, so the static check can follow
	// chains like request_handle:streamInfo():dynamicMetadata():set().
	returns map[string]*class
	// pairs implements pairs(obj) for the objects Envoy gives a __pairs metamethod.
	pairs method
	// hints is advice for names users often reach for on this object.
	hints map[string]string
}

// logMethods are available on every object Envoy exposes to Lua (Envoy registers them for
// every wrapper type).
var logLevels = map[string]string{
	"logTrace": "trace", "logDebug": "debug", "logInfo": "info",
	"logWarn": "warn", "logErr": "error", "logCritical": "critical",
}

// newClass builds a class and adds Envoy's log*() methods to it.
func newClass(name string, methods map[string]method, returns map[string]*class) *class {
	for fn, level := range logLevels {
		methods[fn] = logMethod(fn, level)
	}
	return &class{name: name, methods: methods, returns: returns}
}

func logMethod(fn, level string) method {
	return func(s *sandbox, o *object) int {
		s.log(level, s.argString(fn, 1))
		return 0
	}
}

// has reports whether Envoy's API offers name on this class.
func (c *class) has(name string) bool {
	_, ok := c.methods[name]
	return ok
}

// object is the Go side of one userdata handed to the snippet.
type object struct {
	cls *class
	// label names this instance in messages; stream handles use the names from Envoy's docs
	// ("request_handle", "response_handle").
	label string
	scope *scope
	val   any
}

// scope is the lifetime of the objects handed out during one entry point. Envoy kills them when
// the entry point returns; keeping one in a global and using it later fails the script.
type scope struct {
	alive bool
	entry string
}

// newObject wraps val as a userdata of class c that lives as long as the running entry point.
func (s *sandbox) newObject(c *class, label string, val any) *lua.LUserData {
	if label == "" {
		label = c.name
	}
	ud := s.L.NewUserData()
	ud.Value = &object{cls: c, label: label, scope: s.scope, val: val}
	ud.Metatable = s.metatable(c)
	return ud
}

// metatable returns (building once per sandbox) the metatable shared by all objects of class c.
func (s *sandbox) metatable(c *class) *lua.LTable {
	if mt, ok := s.metas[c]; ok {
		return mt
	}
	L := s.L
	fns := make(map[string]*lua.LFunction, len(c.methods))
	for name, m := range c.methods {
		name, m := name, m
		fns[name] = L.NewFunction(func(L *lua.LState) int {
			return m(s, s.receiver(c, name))
		})
	}
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(func(L *lua.LState) int {
		o := s.anyReceiver()
		if k, ok := L.Get(2).(lua.LString); ok {
			if f := fns[string(k)]; f != nil {
				L.Push(f)
				return 1
			}
		}
		s.apiErrorf("%s", unknownMember(o, L.Get(2)))
		return 0
	}))
	mt.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		o := s.anyReceiver()
		s.apiErrorf("cannot assign %s.%s: Envoy objects have no fields, only methods", o.label, L.Get(2).String())
		return 0
	}))
	mt.RawSetString("__tostring", L.NewFunction(func(L *lua.LState) int {
		L.Push(lua.LString(s.anyReceiver().label))
		return 1
	}))
	// Keeps getmetatable() from handing the snippet the mock's internals.
	mt.RawSetString("__metatable", lua.LString("Envoy object"))
	if c.pairs != nil {
		mt.RawSetString("__pairs", L.NewFunction(func(L *lua.LState) int {
			return c.pairs(s, s.receiver(c, "__pairs"))
		}))
	}
	s.metas[c] = mt
	return mt
}

// anyReceiver returns the object at argument 1 (metamethods always get their object there).
func (s *sandbox) anyReceiver() *object {
	if ud, ok := s.L.Get(1).(*lua.LUserData); ok {
		if o, ok := ud.Value.(*object); ok {
			return o
		}
	}
	s.apiErrorf("internal: metamethod called without an Envoy object")
	return nil
}

// receiver checks that a method of class c was called as obj:name(...) on a live object.
func (s *sandbox) receiver(c *class, name string) *object {
	var o *object
	if ud, ok := s.L.Get(1).(*lua.LUserData); ok {
		o, _ = ud.Value.(*object)
	}
	if o == nil || o.cls != c {
		s.apiErrorf("%s.%s(...) was called without its object: write %s:%s(...) with a colon", c.name, name, c.name, name)
	}
	if !o.scope.alive {
		s.apiErrorf("%s used outside of proper scope: Envoy destroys it when %s returns (do not keep handles or their objects in globals)", o.label, o.scope.entry)
	}
	return o
}

// unknownMember explains a lookup of a name Envoy's object does not have.
func unknownMember(o *object, key lua.LValue) string {
	k, ok := key.(lua.LString)
	if !ok {
		return fmt.Sprintf("%s[%s]: Envoy objects can only be used through their methods", o.label, key.String())
	}
	name := string(k)
	msg := fmt.Sprintf("%s:%s is not part of Envoy's Lua API", o.label, name)
	if hint, ok := o.cls.hints[name]; ok {
		return msg + "; " + hint
	}
	if alt := closestName(name, o.cls.methods); alt != "" {
		return fmt.Sprintf("%s; did you mean %s:%s?", msg, o.label, alt)
	}
	return msg
}
