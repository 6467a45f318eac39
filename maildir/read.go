package maildir

import (
	"cmp"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// entry is one message file found by a scan.
type entry struct {
	p   parsedName
	loc loc
}

// scan reads the names in new/ and cur/ (no stat, no read), ordered by
// delivery time, then unique name; an id seen twice (a file moved from
// new/ to cur/ during the scan) is kept once.
func (m *Maildir) scan() ([]entry, error) {
	var ents []entry
	// new/ first: another program moves files new/ → cur/, so a move
	// during the scan shows a message twice (deduplicated) rather than
	// not at all.
	for _, sub := range [...]string{"new", "cur"} {
		f, err := os.Open(filepath.Join(m.dir, sub))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, m.errorf("list", ErrNoMaildir)
			}
			return nil, m.errorf("list", err)
		}
		names, err := readNames(f)
		f.Close()
		if err != nil {
			return nil, m.errorf("list", err)
		}
		if ents == nil {
			ents = make([]entry, 0, len(names)+16)
		}
		for _, n := range names {
			p, ok := parseName(n)
			if !ok {
				continue
			}
			ents = append(ents, entry{p: p, loc: loc{sub, n}})
		}
	}
	// Sort 16-octet keys rather than the entries themselves (72 octets
	// each): on a 50,000-message maildrop the sort moves a fifth of the
	// memory. The id breaks ties of the delivery time.
	keys := make([]sortKey, len(ents))
	for i := range ents {
		keys[i] = sortKey{time: ents[i].p.time, idx: int32(i)}
	}
	slices.SortFunc(keys, func(a, b sortKey) int {
		if c := cmp.Compare(a.time, b.time); c != 0 {
			return c
		}
		return strings.Compare(ents[a.idx].p.id, ents[b.idx].p.id)
	})
	out := make([]entry, 0, len(ents))
	for _, k := range keys {
		e := ents[k.idx]
		if n := len(out); n > 0 && e.p.id == out[n-1].p.id {
			continue
		}
		out = append(out, e)
	}
	return out, nil
}

// sortKey orders scan's entries: delivery time, then index into them.
type sortKey struct {
	time int64
	idx  int32
}

// List returns the messages of new/ and cur/, oldest delivery first (by
// the time in the name, then by name), sizes taken from the file names'
// ,W= field; for names without it (other programs' files) the size is
// computed once from the content and cached by the Store. It never stats
// or reads a file whose name carries ,W=.
func (m *Maildir) List() ([]Message, error) {
	ents, err := m.scan()
	if err != nil {
		return nil, err
	}
	msgs := make([]Message, 0, len(ents))
	kept := ents[:0]
	for _, e := range ents {
		size := e.p.vsize
		if size < 0 {
			var ok bool
			size, ok = m.foreignSize(e)
			if !ok {
				continue // vanished since the scan
			}
		}
		kept = append(kept, e)
		msgs = append(msgs, Message{ID: e.p.id, Size: size})
	}
	// The id → file map for Open and Remove is built on first use.
	m.mu.Lock()
	m.listed, m.paths = kept, nil
	m.mu.Unlock()
	return msgs, nil
}

// foreignSize returns the CRLF size of a file named without ,W=.
func (m *Maildir) foreignSize(e entry) (int64, bool) {
	if v, ok := m.s.cachedSize(m.dir, e.p.id); ok {
		return v, true
	}
	f, err := os.Open(m.path(e.loc))
	if errors.Is(err, os.ErrNotExist) {
		// Moved since the scan (new/ → cur/, flags changed): find it again.
		if l, ok := m.find(e.p.id); ok {
			f, err = os.Open(m.path(l))
		}
	}
	if err != nil {
		m.s.log.Warn("maildir: cannot size message", "user", m.user, "id", e.p.id, "err", err)
		return 0, false
	}
	defer f.Close()
	v, err := CRLFSize(f)
	if err != nil {
		m.s.log.Warn("maildir: cannot size message", "user", m.user, "id", e.p.id, "err", err)
		return 0, false
	}
	m.s.cacheSize(m.dir, e.p.id, v)
	return v, true
}

// find rescans new/ and cur/ for the file holding id.
func (m *Maildir) find(id string) (loc, bool) {
	ents, err := m.scan()
	if err != nil {
		return loc{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.buildPaths()
	var l loc
	ok := false
	for _, e := range ents {
		if e.p.id == id {
			l, ok = e.loc, true
		}
		if _, known := m.paths[e.p.id]; known {
			m.paths[e.p.id] = e.loc
		}
	}
	if ok {
		m.paths[id] = l
	}
	return l, ok
}

// locate calls op on the file of id: the path seen by the last List
// first, then, if that is gone (another program moved or renamed it), the
// path a fresh scan finds.
func (m *Maildir) locate(id string, op func(path string) error) error {
	if id == "" || strings.ContainsAny(id, "/\x00") {
		return ErrNotFound
	}
	m.mu.Lock()
	m.buildPaths()
	l, ok := m.paths[id]
	m.mu.Unlock()
	if ok {
		err := op(m.path(l))
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	l, ok = m.find(id)
	if !ok {
		return ErrNotFound
	}
	err := op(m.path(l))
	if errors.Is(err, os.ErrNotExist) {
		return ErrNotFound
	}
	return err
}

// Open returns the stored content (LF line ends) of the message with that
// id, found in new/ or cur/ whatever its flags (ErrNotFound). The caller
// must Close it.
func (m *Maildir) Open(id string) (io.ReadCloser, error) {
	f := &msgFile{fd: -1}
	err := m.locate(id, func(path string) error {
		fd, err := openRead(path)
		if err != nil {
			return err
		}
		f.fd, f.path = fd, path
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, err
		}
		return nil, m.errorf("open", err)
	}
	return f, nil
}

func openRead(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return fd, nil
	}
}

// msgFile is an open message file read with plain system calls. An
// os.File would also try to register the descriptor with the network
// poller and make it non-blocking: two more system calls per POP3 RETR,
// of no use for a regular file, whose reads block anyway.
type msgFile struct {
	fd   int
	path string
}

func (f *msgFile) Read(p []byte) (int, error) {
	if f.fd < 0 {
		return 0, os.ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(f.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: f.path, Err: err}
		}
		if n == 0 {
			return 0, io.EOF
		}
		return n, nil
	}
}

func (f *msgFile) Close() error {
	if f.fd < 0 {
		return os.ErrClosed
	}
	// Not retried on EINTR: on Linux the descriptor is released anyway.
	err := unix.Close(f.fd)
	f.fd = -1
	if err != nil {
		return &os.PathError{Op: "close", Path: f.path, Err: err}
	}
	return nil
}

// Remove deletes the message with that id from new/ or cur/
// (ErrNotFound). The removal is made durable by Sync, not here, so a
// session deleting many messages pays for one directory fsync.
func (m *Maildir) Remove(id string) error {
	err := m.locate(id, m.s.fs.Remove)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return err
		}
		return m.errorf("remove", err)
	}
	m.mu.Lock()
	delete(m.paths, id)
	m.mu.Unlock()
	m.s.mu.Lock()
	delete(m.s.sizes, m.dir+"\x00"+id)
	m.s.mu.Unlock()
	return nil
}

// Sync makes removals durable (fsyncs new/ and cur/).
func (m *Maildir) Sync() error {
	for _, sub := range [...]string{"new", "cur"} {
		if err := m.s.fs.SyncDir(filepath.Join(m.dir, sub)); err != nil {
			return m.errorf("sync", err)
		}
	}
	return nil
}

// buildPaths makes the id → file map from the last listing; m.mu held.
func (m *Maildir) buildPaths() {
	if m.paths != nil {
		return
	}
	m.paths = make(map[string]loc, len(m.listed))
	for _, e := range m.listed {
		m.paths[e.p.id] = e.loc
	}
	m.listed = nil
}

// readNames returns the names in an open directory, reading entries in
// large blocks (fewer getdents calls than os.File.Readdirnames on big
// maildrops). "." and ".." are left out.
func readNames(f *os.File) ([]string, error) {
	buf := make([]byte, 256<<10)
	var names []string
	fd := int(f.Fd())
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "getdents", Path: f.Name(), Err: err}
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

// loc is where a message file was seen: "new" or "cur", and its name.
type loc struct{ sub, name string }

func (m *Maildir) path(l loc) string { return m.dir + "/" + l.sub + "/" + l.name }
