package luafilters

import (
	"strings"

	lua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
)

// gopher-lua's ".." operator is a VM instruction with no size check, and a single instruction
// can double a string. To bring it under Limits.MaxAllocBytes, every `a .. b .. c` in the
// snippet is rewritten, before compilation, into a call __dynup_concat(a, b, c) of a Go
// function that charges the result's size first. The snippet cannot name the function itself
// (the identifier is reserved), so there is no unguarded concatenation left.

const concatFunc = "__dynup_concat"

// rewriteConcat replaces every concatenation in list, recursively.
func rewriteConcat(list []ast.Stmt) {
	for _, st := range list {
		rewriteStmt(st)
	}
}

func rewriteList(es []ast.Expr) {
	for i, e := range es {
		es[i] = rewriteExpr(e)
	}
}

func rewriteStmt(st ast.Stmt) {
	switch st := st.(type) {
	case *ast.AssignStmt:
		rewriteList(st.Lhs)
		rewriteList(st.Rhs)
	case *ast.LocalAssignStmt:
		rewriteList(st.Exprs)
	case *ast.FuncCallStmt:
		st.Expr = rewriteExpr(st.Expr)
	case *ast.DoBlockStmt:
		rewriteConcat(st.Stmts)
	case *ast.WhileStmt:
		st.Condition = rewriteExpr(st.Condition)
		rewriteConcat(st.Stmts)
	case *ast.RepeatStmt:
		st.Condition = rewriteExpr(st.Condition)
		rewriteConcat(st.Stmts)
	case *ast.IfStmt:
		st.Condition = rewriteExpr(st.Condition)
		rewriteConcat(st.Then)
		rewriteConcat(st.Else)
	case *ast.NumberForStmt:
		st.Init, st.Limit = rewriteExpr(st.Init), rewriteExpr(st.Limit)
		if st.Step != nil {
			st.Step = rewriteExpr(st.Step)
		}
		rewriteConcat(st.Stmts)
	case *ast.GenericForStmt:
		rewriteList(st.Exprs)
		rewriteConcat(st.Stmts)
	case *ast.FuncDefStmt:
		rewriteConcat(st.Func.Stmts)
	case *ast.ReturnStmt:
		rewriteList(st.Exprs)
	}
}

func rewriteExpr(e ast.Expr) ast.Expr {
	switch e := e.(type) {
	case *ast.StringConcatOpExpr:
		// ".." is right-associative: a .. (b .. c) is one operation over three operands.
		var operands []ast.Expr
		var cur ast.Expr = e
		for {
			c, ok := cur.(*ast.StringConcatOpExpr)
			if !ok {
				break
			}
			operands = append(operands, rewriteExpr(c.Lhs))
			cur = c.Rhs
		}
		operands = append(operands, rewriteExpr(cur))
		return concatCall(e, operands)
	case *ast.AttrGetExpr:
		e.Object, e.Key = rewriteExpr(e.Object), rewriteExpr(e.Key)
	case *ast.FuncCallExpr:
		if e.Func != nil {
			e.Func = rewriteExpr(e.Func)
		}
		if e.Receiver != nil {
			e.Receiver = rewriteExpr(e.Receiver)
		}
		rewriteList(e.Args)
	case *ast.TableExpr:
		for _, f := range e.Fields {
			if f.Key != nil {
				f.Key = rewriteExpr(f.Key)
			}
			f.Value = rewriteExpr(f.Value)
		}
	case *ast.LogicalOpExpr:
		e.Lhs, e.Rhs = rewriteExpr(e.Lhs), rewriteExpr(e.Rhs)
	case *ast.RelationalOpExpr:
		e.Lhs, e.Rhs = rewriteExpr(e.Lhs), rewriteExpr(e.Rhs)
	case *ast.ArithmeticOpExpr:
		e.Lhs, e.Rhs = rewriteExpr(e.Lhs), rewriteExpr(e.Rhs)
	case *ast.UnaryMinusOpExpr:
		e.Expr = rewriteExpr(e.Expr)
	case *ast.UnaryNotOpExpr:
		e.Expr = rewriteExpr(e.Expr)
	case *ast.UnaryLenOpExpr:
		e.Expr = rewriteExpr(e.Expr)
	case *ast.FunctionExpr:
		rewriteConcat(e.Stmts)
	}
	return e
}

// maxConcatArgs bounds the operands of one generated call: each operand occupies a register
// while the call is built, and a function has at most 255. Longer chains are split into calls
// grouped from the left, which only differs from Lua's right-to-left order for tables with
// __concat metamethods in chains longer than this.
const maxConcatArgs = 50

func concatCall(at ast.Expr, operands []ast.Expr) ast.Expr {
	call := func(args []ast.Expr) *ast.FuncCallExpr {
		fn := &ast.IdentExpr{Value: concatFunc}
		fn.SetLine(at.Line())
		fn.SetLastLine(at.LastLine())
		c := &ast.FuncCallExpr{Func: fn, Args: args}
		c.SetLine(at.Line())
		c.SetLastLine(at.LastLine())
		return c
	}
	n := min(len(operands), maxConcatArgs)
	acc := call(operands[:n])
	for rest := operands[n:]; len(rest) > 0; {
		k := min(len(rest), maxConcatArgs-1)
		acc = call(append([]ast.Expr{acc}, rest[:k]...))
		rest = rest[k:]
	}
	return acc
}

func isStringy(v lua.LValue) bool {
	switch v.(type) {
	case lua.LString, lua.LNumber:
		return true
	}
	return false
}

// concat implements "..": strings and numbers are joined after charging the result; other
// operands go through __concat metamethods right to left, as Lua does.
func (s *sandbox) concat(L *lua.LState) int {
	n := L.GetTop()
	if n < 2 { // only reachable by calling the function through a computed global name
		L.RaiseError("%s needs at least two operands", concatFunc)
	}
	var total int64
	plain := true
	for i := 1; i <= n && plain; i++ {
		v := L.Get(i)
		plain = isStringy(v)
		total += int64(len(lua.LVAsString(v)))
	}
	if plain {
		s.charge(total)
		var b strings.Builder
		b.Grow(int(total))
		for i := 1; i <= n; i++ {
			b.WriteString(lua.LVAsString(L.Get(i)))
		}
		L.Push(lua.LString(b.String()))
		return 1
	}
	acc := L.Get(n)
	for i := n - 1; i >= 1; i-- {
		acc = s.concatPair(L, L.Get(i), acc)
	}
	L.Push(acc)
	return 1
}

func (s *sandbox) concatPair(L *lua.LState, a, b lua.LValue) lua.LValue {
	if isStringy(a) && isStringy(b) {
		as, bs := lua.LVAsString(a), lua.LVAsString(b)
		s.charge(int64(len(as) + len(bs)))
		return lua.LString(as + bs)
	}
	mm := L.GetMetaField(a, "__concat")
	if mm == lua.LNil {
		mm = L.GetMetaField(b, "__concat")
	}
	if mm == lua.LNil {
		bad := a
		if isStringy(a) {
			bad = b
		}
		L.RaiseError("attempt to concatenate a %s value", bad.Type())
	}
	L.Push(mm)
	L.Push(a)
	L.Push(b)
	L.Call(2, 1)
	v := L.Get(-1)
	L.Pop(1)
	return v
}
