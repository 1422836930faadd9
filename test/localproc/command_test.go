package localproc

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

func TestParseRefusesArguments(t *testing.T) {
	var stderr bytes.Buffer
	fs := NewFlagSet("prog", &stderr)
	v := fs.Int("n", 1, "a number")
	if err := Parse(fs, []string{"-n", "2"}); err != nil || *v != 2 {
		t.Fatalf("err %v, n %d", err, *v)
	}
	err := Parse(NewFlagSet("prog", &stderr), []string{"extra"})
	if err == nil || err.Error() != `unexpected argument "extra"` {
		t.Errorf("err = %v", err)
	}
}

func TestArgsStatus(t *testing.T) {
	var stderr bytes.Buffer
	if code := ArgsStatus("prog", flag.ErrHelp, &stderr); code != 0 || stderr.Len() != 0 {
		t.Errorf("-help: exit %d, stderr %q", code, stderr.String())
	}
	err := Parse(NewFlagSet("prog", &stderr), []string{"--bogus"})
	stderr.Reset()
	if code := ArgsStatus("prog", err, &stderr); code != 2 || !strings.HasPrefix(stderr.String(), "prog: flag provided but not defined") {
		t.Errorf("bad flag: exit %d, stderr %q", code, stderr.String())
	}
}
