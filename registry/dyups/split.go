package dyups

import (
	"fmt"
	"strings"

	"github.com/dynup/dynup/registry"
)

// directive is one ';'-terminated statement; args[0] is its name.
type directive struct {
	pos  int // 1-based, counting only non-empty directives, as users count them
	args []string
}

// errorf prefixes a message with the directive's position and text, so a long body points at its culprit.
func (d directive) errorf(format string, args ...any) *registry.FieldError {
	text := strings.Join(d.args, " ")
	if r := []rune(text); len(r) > 60 {
		text = string(r[:57]) + "..."
	}
	return &registry.FieldError{Msg: fmt.Sprintf("directive %d (%q): ", d.pos, text) + fmt.Sprintf(format, args...)}
}

// split tokenizes a body the way nginx's configuration reader does, which is what dyups hands it to:
// whitespace separates words, ';' ends a directive, '#' starts a comment, and quoted words may hold
// spaces, ';' and the escapes \" \' \\ \t \r \n (check_http_send needs "\r\n"). A missing final ';' is
// forgiven, because curl users often leave it out.
func split(body string) ([]directive, error) {
	var out []directive
	var args []string
	var word strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			args = append(args, word.String())
			word.Reset()
			inWord = false
		}
	}
	endDirective := func() {
		endWord()
		if len(args) > 0 {
			out = append(out, directive{pos: len(out) + 1, args: args})
			args = nil
		}
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		switch {
		case c == ';':
			endDirective()
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			endWord()
		case c == '#' && !inWord:
			for i < len(body) && body[i] != '\n' {
				i++
			}
		case (c == '"' || c == '\'') && !inWord:
			end, text, ok := quoted(body, i)
			if !ok {
				return nil, &registry.FieldError{Msg: fmt.Sprintf("directive %d: unterminated quoted string", len(out)+1)}
			}
			word.WriteString(text)
			inWord = true
			i = end
		case c == '{' || c == '}':
			return nil, &registry.FieldError{Msg: fmt.Sprintf("directive %d: blocks are not allowed in an upstream body", len(out)+1)}
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	endDirective()
	return out, nil
}

// quoted reads the quoted word starting at body[start] and returns the index of its closing quote.
func quoted(body string, start int) (int, string, bool) {
	q := body[start]
	var b strings.Builder
	for i := start + 1; i < len(body); i++ {
		c := body[i]
		switch {
		case c == q:
			return i, b.String(), true
		case c == '\\' && i+1 < len(body):
			i++
			switch e := body[i]; e {
			case '"', '\'', '\\':
				b.WriteByte(e)
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'n':
				b.WriteByte('\n')
			default: // nginx keeps unknown escapes as written
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return 0, "", false
}
