package luafilters

import (
	"math"
	"sort"

	lua "github.com/yuin/gopher-lua"
)

// dynamicMetadataClass is streamInfo():dynamicMetadata(). It is shared by both entry points of a
// stream, which is how a snippet passes data from envoy_on_request to envoy_on_response.
var dynamicMetadataClass = func() *class {
	c := newClass("dynamicMetadata", map[string]method{
		"get": dynMetaGet,
		"set": dynMetaSet,
	}, nil)
	c.pairs = dynMetaPairs
	return c
}()

func dynMetaGet(s *sandbox, o *object) int {
	entry, ok := s.stream.dynMeta[s.argString("get", 1)]
	if !ok {
		return 0
	}
	s.L.Push(s.toLua(map[string]any(entry)))
	return 1
}

// dynMetaSet stores value under filterName.key, converting it as Envoy converts Lua values to a
// protobuf Struct (which rejects functions, userdata and the like).
func dynMetaSet(s *sandbox, o *object) int {
	if s.stream.metaIterating {
		s.apiErrorf("dynamic metadata map cannot be modified while iterating")
	}
	filter, key := s.argString("set", 1), s.argString("set", 2)
	v := s.fromLua("set", s.argAt(3), 0)
	entry := s.stream.dynMeta[filter]
	if entry == nil {
		entry = map[string]any{}
		s.stream.dynMeta[filter] = entry
	}
	entry[key] = v
	s.res.DynamicMetadata = s.stream.dynMeta
	return 0
}

func dynMetaPairs(s *sandbox, o *object) int {
	if s.stream.metaIterating {
		s.apiErrorf("cannot create a second iterator over dynamicMetadata before completing the first")
	}
	s.stream.metaIterating = true
	names := make([]string, 0, len(s.stream.dynMeta))
	for n := range s.stream.dynMeta {
		names = append(names, n)
	}
	sort.Strings(names)
	i := 0
	s.L.Push(s.L.NewFunction(func(L *lua.LState) int {
		if i >= len(names) {
			s.stream.metaIterating = false
			return 0
		}
		n := names[i]
		i++
		L.Push(lua.LString(n))
		L.Push(s.toLua(map[string]any(s.stream.dynMeta[n])))
		return 2
	}))
	return 1
}

// maxMetadataDepth bounds nesting; it also stops self-referencing tables.
const maxMetadataDepth = 16

// fromLua converts a Lua value to metadata: nil, bool, float64, string, []any or map[string]any.
func (s *sandbox) fromLua(fn string, v lua.LValue, depth int) any {
	s.charge(valueCost)
	switch v := v.(type) {
	case *lua.LNilType:
		return nil
	case lua.LBool:
		return bool(v)
	case lua.LNumber:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			s.apiErrorf("%s(): metadata numbers must be finite", fn)
		}
		return f
	case lua.LString:
		return string(v)
	case *lua.LTable:
		if depth >= maxMetadataDepth {
			s.apiErrorf("%s(): table nested more than %d levels deep (or it contains itself)", fn, maxMetadataDepth)
		}
		if n := v.Len(); n > 0 && countKeys(v) == n {
			list := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				list = append(list, s.fromLua(fn, v.RawGetInt(i), depth+1))
			}
			return list
		}
		m := map[string]any{}
		v.ForEach(func(k, val lua.LValue) {
			switch k.(type) {
			case lua.LString, lua.LNumber:
				m[k.String()] = s.fromLua(fn, val, depth+1)
			default:
				s.apiErrorf("%s(): metadata table keys must be strings or numbers, got a %s", fn, k.Type())
			}
		})
		return m
	}
	s.apiErrorf("%s(): unexpected type '%s' in dynamic metadata (use nil, boolean, number, string or table)", fn, v.Type())
	return nil
}

func countKeys(t *lua.LTable) int {
	n := 0
	t.ForEach(func(lua.LValue, lua.LValue) { n++ })
	return n
}

// toLua converts metadata back to a fresh Lua value.
func (s *sandbox) toLua(v any) lua.LValue {
	s.charge(valueCost)
	L := s.L
	switch v := v.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		t := L.NewTable()
		for _, e := range v {
			t.Append(s.toLua(e))
		}
		return t
	case map[string]any:
		t := L.NewTable()
		for k, e := range v {
			t.RawSetString(k, s.toLua(e))
		}
		return t
	}
	return lua.LNil
}
