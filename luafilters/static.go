package luafilters

import (
	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
)

// The dry run only executes the branches the sample request takes, so a misspelled method in
// `if method == "DELETE" then request_handle:respnd(...) end` would go unnoticed with a GET
// sample. staticCheck closes that gap for the common cases without running anything: it follows
// the handle parameter of each entry point (and locals holding objects obtained from it, like
// `local headers = request_handle:headers()`) and reports method names Envoy does not have, and
// reads of foreign globals such as ngx. It only reports what it is sure of: a name whose type
// it cannot establish is never checked.

type staticChecker struct {
	// assigned holds every name the snippet assigns with '=' anywhere. A local in that set is
	// not trusted to keep its type; a global in it is the snippet's own (a user-defined "ngx"
	// shim is not OpenResty's).
	assigned map[string]bool
	found    *ValidationError
}

type staticEnv struct {
	parent *staticEnv
	vars   map[string]*class // nil class: a local of unknown type
}

func (e *staticEnv) child() *staticEnv { return &staticEnv{parent: e, vars: map[string]*class{}} }

func (e *staticEnv) lookup(name string) (*class, bool) {
	for ; e != nil; e = e.parent {
		if c, ok := e.vars[name]; ok {
			return c, true
		}
	}
	return nil, false
}

// staticCheck returns the first problem (lowest line) found in chunk, or nil.
func staticCheck(chunk []ast.Stmt) *ValidationError {
	c := &staticChecker{assigned: map[string]bool{}}
	collectAssigned(chunk, c.assigned)
	c.stmts(chunk, &staticEnv{vars: map[string]*class{}})
	return c.found
}

func (c *staticChecker) report(line int, msg string) {
	if c.found == nil || line < c.found.Line {
		c.found = &ValidationError{Line: line, Phase: PhaseAPI, Msg: msg}
	}
}

func (c *staticChecker) bind(env *staticEnv, name string, cls *class) {
	if c.assigned[name] {
		cls = nil
	}
	env.vars[name] = cls
}

// entryClass returns the handle class for a global entry point name, or nil.
func entryClass(name string, env *staticEnv) *class {
	if _, local := env.lookup(name); local {
		return nil
	}
	switch name {
	case "envoy_on_request":
		return requestHandleClass
	case "envoy_on_response":
		return responseHandleClass
	}
	return nil
}

func (c *staticChecker) stmts(list []ast.Stmt, env *staticEnv) {
	for _, st := range list {
		c.stmt(st, env)
	}
}

func (c *staticChecker) stmt(st ast.Stmt, env *staticEnv) {
	switch st := st.(type) {
	case *ast.LocalAssignStmt:
		types := make([]*class, len(st.Exprs))
		for i, e := range st.Exprs {
			types[i] = c.expr(e, env)
		}
		for i, name := range st.Names {
			var cls *class
			if i < len(types) {
				cls = types[i]
			}
			c.bind(env, name, cls)
		}
	case *ast.AssignStmt:
		for i, e := range st.Rhs {
			if fn, ok := e.(*ast.FunctionExpr); ok && i < len(st.Lhs) {
				if id, ok := st.Lhs[i].(*ast.IdentExpr); ok {
					c.function(fn, env, entryClass(id.Value, env))
					continue
				}
			}
			c.expr(e, env)
		}
		for _, e := range st.Lhs {
			if attr, ok := e.(*ast.AttrGetExpr); ok {
				c.expr(attr.Object, env)
				c.expr(attr.Key, env)
			}
		}
	case *ast.FuncCallStmt:
		c.expr(st.Expr, env)
	case *ast.DoBlockStmt:
		c.stmts(st.Stmts, env.child())
	case *ast.WhileStmt:
		c.expr(st.Condition, env)
		c.stmts(st.Stmts, env.child())
	case *ast.RepeatStmt:
		body := env.child()
		c.stmts(st.Stmts, body)
		c.expr(st.Condition, body) // "until" sees the body's locals
	case *ast.IfStmt:
		c.expr(st.Condition, env)
		c.stmts(st.Then, env.child())
		c.stmts(st.Else, env.child())
	case *ast.NumberForStmt:
		c.expr(st.Init, env)
		c.expr(st.Limit, env)
		if st.Step != nil {
			c.expr(st.Step, env)
		}
		body := env.child()
		c.bind(body, st.Name, nil)
		c.stmts(st.Stmts, body)
	case *ast.GenericForStmt:
		var first *class
		for _, e := range st.Exprs {
			c.expr(e, env)
			// `for chunk in handle:bodyChunks()` yields buffer objects.
			if call, ok := e.(*ast.FuncCallExpr); ok && len(st.Exprs) == 1 && call.Method == "bodyChunks" && c.isHandle(call.Receiver, env) {
				first = bufferClass
			}
		}
		body := env.child()
		for i, name := range st.Names {
			if i == 0 {
				c.bind(body, name, first)
			} else {
				c.bind(body, name, nil)
			}
		}
		c.stmts(st.Stmts, body)
	case *ast.FuncDefStmt:
		var param *class
		if id, ok := st.Name.Func.(*ast.IdentExpr); ok && st.Name.Receiver == nil {
			param = entryClass(id.Value, env)
		} else {
			if st.Name.Func != nil {
				c.expr(st.Name.Func, env)
			}
			if st.Name.Receiver != nil {
				c.expr(st.Name.Receiver, env)
			}
		}
		c.function(st.Func, env, param)
	case *ast.ReturnStmt:
		for _, e := range st.Exprs {
			c.expr(e, env)
		}
	}
}

// isHandle tells whether e is statically a stream handle.
func (c *staticChecker) isHandle(e ast.Expr, env *staticEnv) bool {
	id, ok := e.(*ast.IdentExpr)
	if !ok {
		return false
	}
	cls, _ := env.lookup(id.Value)
	return cls == requestHandleClass || cls == responseHandleClass
}

// function checks a function body; param, when set, is the class of its first parameter.
func (c *staticChecker) function(fn *ast.FunctionExpr, env *staticEnv, param *class) {
	body := env.child()
	if fn.ParList != nil {
		for i, name := range fn.ParList.Names {
			if i == 0 {
				c.bind(body, name, param)
			} else {
				c.bind(body, name, nil)
			}
		}
	}
	c.stmts(fn.Stmts, body)
}

// expr checks e and returns its class when statically known.
func (c *staticChecker) expr(e ast.Expr, env *staticEnv) *class {
	switch e := e.(type) {
	case *ast.IdentExpr:
		if cls, ok := env.lookup(e.Value); ok {
			return cls
		}
		if hint, ok := foreignGlobals[e.Value]; ok && !c.assigned[e.Value] {
			c.report(e.Line(), hint)
		}
	case *ast.AttrGetExpr:
		obj := c.expr(e.Object, env)
		c.expr(e.Key, env)
		if key, ok := e.Key.(*ast.StringExpr); ok && obj != nil && !obj.has(key.Value) {
			c.report(e.Line(), unknownMember(&object{cls: obj, label: obj.name}, lua.LString(key.Value)))
		}
	case *ast.FuncCallExpr:
		var recv *class
		if e.Receiver != nil {
			recv = c.expr(e.Receiver, env)
		} else {
			c.expr(e.Func, env)
		}
		for _, a := range e.Args {
			c.expr(a, env)
		}
		if recv != nil {
			if !recv.has(e.Method) {
				c.report(e.Line(), unknownMember(&object{cls: recv, label: recv.name}, lua.LString(e.Method)))
				return nil
			}
			return recv.returns[e.Method]
		}
	case *ast.TableExpr:
		for _, f := range e.Fields {
			if f.Key != nil {
				c.expr(f.Key, env)
			}
			c.expr(f.Value, env)
		}
	case *ast.LogicalOpExpr:
		c.expr(e.Lhs, env)
		c.expr(e.Rhs, env)
	case *ast.RelationalOpExpr:
		c.expr(e.Lhs, env)
		c.expr(e.Rhs, env)
	case *ast.StringConcatOpExpr:
		c.expr(e.Lhs, env)
		c.expr(e.Rhs, env)
	case *ast.ArithmeticOpExpr:
		c.expr(e.Lhs, env)
		c.expr(e.Rhs, env)
	case *ast.UnaryMinusOpExpr:
		c.expr(e.Expr, env)
	case *ast.UnaryNotOpExpr:
		c.expr(e.Expr, env)
	case *ast.UnaryLenOpExpr:
		c.expr(e.Expr, env)
	case *ast.FunctionExpr:
		c.function(e, env, nil)
	}
	return nil
}

// collectAssigned records every identifier assigned with '=' or defined with a global
// `function name()` anywhere in list.
func collectAssigned(list []ast.Stmt, out map[string]bool) {
	var exprs func(es ...ast.Expr)
	var stmts func(list []ast.Stmt)
	exprs = func(es ...ast.Expr) {
		for _, e := range es {
			switch e := e.(type) {
			case *ast.FunctionExpr:
				stmts(e.Stmts)
			case *ast.FuncCallExpr:
				exprs(e.Func, e.Receiver)
				exprs(e.Args...)
			case *ast.TableExpr:
				for _, f := range e.Fields {
					exprs(f.Key, f.Value)
				}
			case *ast.AttrGetExpr:
				exprs(e.Object, e.Key)
			case *ast.LogicalOpExpr:
				exprs(e.Lhs, e.Rhs)
			case *ast.RelationalOpExpr:
				exprs(e.Lhs, e.Rhs)
			case *ast.StringConcatOpExpr:
				exprs(e.Lhs, e.Rhs)
			case *ast.ArithmeticOpExpr:
				exprs(e.Lhs, e.Rhs)
			case *ast.UnaryMinusOpExpr:
				exprs(e.Expr)
			case *ast.UnaryNotOpExpr:
				exprs(e.Expr)
			case *ast.UnaryLenOpExpr:
				exprs(e.Expr)
			}
		}
	}
	stmts = func(list []ast.Stmt) {
		for _, st := range list {
			switch st := st.(type) {
			case *ast.AssignStmt:
				for _, l := range st.Lhs {
					if id, ok := l.(*ast.IdentExpr); ok {
						out[id.Value] = true
					}
				}
				exprs(st.Lhs...)
				exprs(st.Rhs...)
			case *ast.LocalAssignStmt:
				exprs(st.Exprs...)
			case *ast.FuncCallStmt:
				exprs(st.Expr)
			case *ast.DoBlockStmt:
				stmts(st.Stmts)
			case *ast.WhileStmt:
				exprs(st.Condition)
				stmts(st.Stmts)
			case *ast.RepeatStmt:
				exprs(st.Condition)
				stmts(st.Stmts)
			case *ast.IfStmt:
				exprs(st.Condition)
				stmts(st.Then)
				stmts(st.Else)
			case *ast.NumberForStmt:
				exprs(st.Init, st.Limit, st.Step)
				stmts(st.Stmts)
			case *ast.GenericForStmt:
				exprs(st.Exprs...)
				stmts(st.Stmts)
			case *ast.FuncDefStmt:
				if id, ok := st.Name.Func.(*ast.IdentExpr); ok && st.Name.Receiver == nil {
					out[id.Value] = true
				}
				stmts(st.Func.Stmts)
			case *ast.ReturnStmt:
				exprs(st.Exprs...)
			}
		}
	}
	stmts(list)
}
