package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// journalEntry is one accepted write in dynup.journal: the upstreams and snippets it changed, as they are
// after it (null: deleted).
type journalEntry struct {
	Revision  uint64               `json:"revision"`
	Upstreams map[string]*Upstream `json:"upstreams,omitempty"`
	Snippets  map[string]*Snippet  `json:"snippets,omitempty"`
}

func newJournalEntry(next Config, c Change) journalEntry {
	return journalEntry{Revision: c.Revision, Upstreams: entriesOf(next.Upstreams, c.Upstreams),
		Snippets: entriesOf(next.Snippets, c.Snippets)}
}

// entriesOf returns the named entries of m, nil for a name m does not hold (deleted).
func entriesOf[V any](m map[string]V, names []string) map[string]*V {
	if len(names) == 0 {
		return nil
	}
	out := make(map[string]*V, len(names))
	for _, name := range names {
		var p *V
		if v, ok := m[name]; ok {
			p = &v
		}
		out[name] = p
	}
	return out
}

func (e journalEntry) applyTo(cfg *Config) {
	cfg.Upstreams = applyEntries(cfg.Upstreams, e.Upstreams)
	cfg.Snippets = applyEntries(cfg.Snippets, e.Snippets)
}

// applyEntries sets or deletes (nil) each entry in m, making m if it needs one.
func applyEntries[V any](m map[string]V, entries map[string]*V) map[string]V {
	for name, v := range entries {
		if v == nil {
			delete(m, name)
			continue
		}
		if m == nil {
			m = map[string]V{}
		}
		m[name] = *v
	}
	return m
}

// readJournal returns the journal's entries. A last line without its newline is a write that was cut off
// before it was acknowledged (the append and fsync had not returned): it is left out and reported as torn.
// Any other line that does not decode, or entries out of revision order, are an error: the journal is
// damaged and guessing would lose or resurrect writes.
func readJournal(path string) (entries []journalEntry, torn bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	for n := 1; len(b) > 0; n++ {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return entries, true, nil
		}
		var e journalEntry
		if err := json.Unmarshal(b[:i], &e); err != nil {
			return nil, false, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		if len(entries) > 0 && e.Revision <= entries[len(entries)-1].Revision {
			return nil, false, fmt.Errorf("%s line %d: revision %d after %d", path, n, e.Revision, entries[len(entries)-1].Revision)
		}
		entries = append(entries, e)
		b = b[i+1:]
	}
	return entries, false, nil
}

// append writes line to the end of the journal and waits until it is on disk.
func (f *FileBackend) append(line []byte) error {
	if f.journal == nil {
		j, err := os.OpenFile(f.journalFile(), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		// A journal created now exists after a crash only once its directory entry is on disk.
		syncDir(filepath.Dir(f.journalFile()))
		st, err := j.Stat()
		if err != nil {
			j.Close()
			return err
		}
		f.journal, f.journalSize = j, st.Size()
	}
	if _, err := f.journal.Write(line); err != nil {
		return err
	}
	if err := f.journal.Sync(); err != nil {
		return err
	}
	f.journalSize += int64(len(line))
	return nil
}
