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
	e := journalEntry{Revision: c.Revision}
	if len(c.Upstreams) > 0 {
		e.Upstreams = make(map[string]*Upstream, len(c.Upstreams))
		for _, name := range c.Upstreams {
			var u *Upstream
			if v, ok := next.Upstreams[name]; ok {
				u = &v
			}
			e.Upstreams[name] = u
		}
	}
	if len(c.Snippets) > 0 {
		e.Snippets = make(map[string]*Snippet, len(c.Snippets))
		for _, name := range c.Snippets {
			var sn *Snippet
			if v, ok := next.Snippets[name]; ok {
				sn = &v
			}
			e.Snippets[name] = sn
		}
	}
	return e
}

func (e journalEntry) applyTo(cfg *Config) {
	for name, u := range e.Upstreams {
		if u == nil {
			delete(cfg.Upstreams, name)
		} else {
			cfg.Upstreams[name] = *u
		}
	}
	for name, sn := range e.Snippets {
		if sn == nil {
			delete(cfg.Snippets, name)
			continue
		}
		if cfg.Snippets == nil {
			cfg.Snippets = map[string]Snippet{}
		}
		cfg.Snippets[name] = *sn
	}
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
