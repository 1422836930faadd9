package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// FileBackend keeps the configuration in one JSON file, replaced atomically (write, fsync, rename), so a
// crash leaves either the old or the new file and a restart loses nothing that was acknowledged.
type FileBackend struct {
	path string
	// written is each upstream's encoding in the file as last written, by name. A write re-encodes only
	// the upstreams its change names: encoding 10,000 upstreams on every write took ~80 ms, most of a
	// one-endpoint write. (Saves are serialised by the store.)
	written map[string][]byte
	size    int // of the file as last written
}

// NewFileBackend keeps state in dir/dynup.json, creating dir if needed.
func NewFileBackend(dir string) (*FileBackend, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	return &FileBackend{path: filepath.Join(dir, "dynup.json")}, nil
}

type fileDoc struct {
	Revision uint64 `json:"revision"`
	Config
}

func (f *FileBackend) Name() string { return "file:" + f.path }

func (f *FileBackend) Load(context.Context) (Config, uint64, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{Upstreams: map[string]Upstream{}}, 0, nil
	}
	if err != nil {
		return Config{}, 0, err
	}
	var doc fileDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		return Config{}, 0, fmt.Errorf("%s: %w", f.path, err)
	}
	return doc.Config, doc.Revision, nil
}

// Save writes next as the whole file. The result is byte for byte what json.MarshalIndent gives for the
// document; only the upstreams c names (and any the last write did not have) are encoded again, so c must
// name every upstream the write changed, as every change record does.
func (f *FileBackend) Save(_ context.Context, next Config, c Change) error {
	b, written, err := f.encode(next, c)
	if err != nil {
		return err
	}
	if err := f.replace(b); err != nil {
		return err
	}
	f.written, f.size = written, len(b) // only once the file holds them: a failed write must not leak into the next
	return nil
}

// writeJSONString writes s as a JSON string. Upstream names need no escaping (they are validated); any
// other string goes through encoding/json.
func writeJSONString(buf *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			buf.Write(b)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
}

// encode returns the file's content for next, and the encodings of its upstreams.
func (f *FileBackend) encode(next Config, c Change) ([]byte, map[string][]byte, error) {
	written := make(map[string][]byte, len(next.Upstreams))
	stale := make(map[string]bool, len(c.Upstreams))
	for _, name := range c.Upstreams {
		stale[name] = true
	}
	names := sortedKeys(next.Upstreams)
	var buf bytes.Buffer
	buf.Grow(f.size + f.size/8 + 4096) // growing a 2 MiB buffer step by step cost more than the encoding
	fmt.Fprintf(&buf, "{\n  \"revision\": %d,\n  \"upstreams\": ", c.Revision)
	switch {
	case next.Upstreams == nil:
		buf.WriteString("null")
	case len(names) == 0:
		buf.WriteString("{}")
	default:
		buf.WriteString("{\n")
		for i, name := range names {
			e, ok := f.written[name]
			if !ok || stale[name] {
				u := next.Upstreams[name]
				var err error
				if e, err = json.MarshalIndent(&u, "    ", "  "); err != nil {
					return nil, nil, err
				}
			}
			written[name] = e
			buf.WriteString("    ")
			writeJSONString(&buf, name)
			buf.WriteString(": ")
			buf.Write(e)
			if i < len(names)-1 {
				buf.WriteByte(',')
			}
			buf.WriteByte('\n')
		}
		buf.WriteString("  }")
	}
	if len(next.Snippets) > 0 {
		sb, err := json.MarshalIndent(next.Snippets, "  ", "  ")
		if err != nil {
			return nil, nil, err
		}
		buf.WriteString(",\n  \"snippets\": ")
		buf.Write(sb)
	}
	buf.WriteString("\n}\n")
	return buf.Bytes(), written, nil
}

// replace puts b in the file atomically: write a temporary file, fsync, rename, fsync the directory.
func (f *FileBackend) replace(b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".dynup-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return err
	}
	// The rename is durable only once the directory entry is.
	if d, err := os.Open(filepath.Dir(f.path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
