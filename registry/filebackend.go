package registry

import (
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

func (f *FileBackend) Save(_ context.Context, next Config, c Change) error {
	b, err := json.MarshalIndent(fileDoc{Revision: c.Revision, Config: next}, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".dynup-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(append(b, '\n')); err != nil {
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
