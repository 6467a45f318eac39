package maildir

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func newStore(t testing.TB, fs FS, users ...string) *Store {
	t.Helper()
	s, err := New(filepath.Join(t.TempDir(), "mail"), Options{Hostname: "mx.example.org", FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if err := s.Create(u); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func deliver(t testing.TB, s *Store, content string, users ...string) []string {
	t.Helper()
	d, err := s.Begin(users...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(d, content); err != nil {
		t.Fatal(err)
	}
	names, err := d.Commit()
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// dirNames lists a directory's entries.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// storedForm is the reference conversion of input to the stored form.
func storedForm(in string) string { return strings.ReplaceAll(in, "\r\n", "\n") }

// crlfForm is the reference CRLF form of stored content (Message.Size
// rules), written the slow obvious way.
func crlfForm(stored string) string {
	var b strings.Builder
	for i := 0; i < len(stored); i++ {
		switch c := stored[i]; c {
		case '\r':
			b.WriteString("\r\n")
			if i+1 < len(stored) && stored[i+1] == '\n' {
				i++
			}
		case '\n':
			b.WriteString("\r\n")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func readAll(t testing.TB, m *Maildir, id string) string {
	t.Helper()
	rc, err := m.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestDeliverListOpenRemove(t *testing.T) {
	s := newStore(t, nil, "alice", "bob")
	msg := "Subject: hi\r\n\r\nline one\r\n.dot\r\n"
	names := deliver(t, s, msg, "alice", "bob", "alice")
	if len(names) != 2 || names[0] != names[1] {
		t.Fatalf("names %q", names)
	}
	for _, u := range []string{"alice", "bob"} {
		m, err := s.Maildir(u)
		if err != nil {
			t.Fatal(err)
		}
		list, err := m.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Size != int64(len(msg)) {
			t.Fatalf("%s: list %+v, want one of size %d", u, list, len(msg))
		}
		if !strings.HasPrefix(names[0], list[0].ID+",S=") {
			t.Fatalf("id %q not the unique part of %q", list[0].ID, names[0])
		}
		if got := readAll(t, m, list[0].ID); got != storedForm(msg) {
			t.Fatalf("stored %q", got)
		}
		fi, err := os.Stat(filepath.Join(m.Dir(), "new", names[0]))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v", fi.Mode())
		}
		if want := fmt.Sprintf(",S=%d,W=%d", len(storedForm(msg)), len(msg)); !strings.HasSuffix(names[0], want) {
			t.Fatalf("name %q lacks %q", names[0], want)
		}
		if err := m.Remove(list[0].ID); err != nil {
			t.Fatal(err)
		}
		if err := m.Remove(list[0].ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second remove: %v", err)
		}
		if err := m.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"alice", "bob"} {
		for _, sub := range []string{"tmp", "new", "cur"} {
			dir := filepath.Join(s.Root(), d, sub)
			if n := dirNames(t, dir); len(n) != 0 {
				t.Fatalf("%s not empty: %q", dir, n)
			}
			fi, _ := os.Stat(dir)
			if fi.Mode().Perm() != 0o700 {
				t.Fatalf("%s mode %v", dir, fi.Mode())
			}
		}
	}
}

var sizeCases = []struct {
	name, in string
	w        int64 // CRLF size
}{
	{"empty", "", 0},
	{"crlf", "a\r\nb\r\n", 6},
	{"bare lf", "a\nb\n", 6},
	{"mixed", "a\r\nb\nc\r\n", 9},
	{"no final newline", "a\r\nb", 4},
	{"only lf", "\n", 2},
	{"lone cr inside", "a\rb\r\n", 6},
	{"lone cr at end", "abc\r", 5},
	{"cr cr lf", "a\r\r\nb", 4}, // stored "a\r\nb": one CRLF
	{"crlf lf", "\r\n\n", 4},
	{"nul and 8bit", "\x00\xff\r\n", 4},
	{"dot lines", ".\r\n..\n", 7},
}

func TestSizes(t *testing.T) {
	for _, tc := range sizeCases {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t, nil, "u")
			m, _ := s.Maildir("u")
			// Every split point, so a CR at a write boundary is covered.
			for split := 0; split <= len(tc.in); split++ {
				d, err := s.Begin("u")
				if err != nil {
					t.Fatal(err)
				}
				io.WriteString(d, tc.in[:split])
				io.WriteString(d, tc.in[split:])
				if _, err := d.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			list, err := m.List()
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != len(tc.in)+1 {
				t.Fatalf("%d messages", len(list))
			}
			for _, msg := range list {
				stored := readAll(t, m, msg.ID)
				if stored != storedForm(tc.in) {
					t.Errorf("stored %q, want %q", stored, storedForm(tc.in))
				}
				if msg.Size != tc.w || int64(len(crlfForm(stored))) != tc.w {
					t.Errorf("size %d, reference %d, want %d", msg.Size, len(crlfForm(stored)), tc.w)
				}
				if n, _ := CRLFSize(strings.NewReader(stored)); n != tc.w {
					t.Errorf("CRLFSize %d", n)
				}
			}
		})
	}
}

func FuzzSizes(f *testing.F) {
	for _, tc := range sizeCases {
		f.Add([]byte(tc.in), uint16(1))
	}
	f.Add([]byte("\r\r\r\n\n\r"), uint16(2))
	s := newStore(f, nil, "u")
	m, _ := s.Maildir("u")
	f.Fuzz(func(t *testing.T, in []byte, chunk uint16) {
		if len(in) > 1<<16 {
			return
		}
		c := int(chunk%64) + 1
		d, err := s.Begin("u")
		if err != nil {
			t.Fatal(err)
		}
		for p := in; len(p) > 0; {
			n := min(c, len(p))
			if _, err := d.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		names, err := d.Commit()
		if err != nil {
			t.Fatal(err)
		}
		p, ok := parseName(names[0])
		if !ok {
			t.Fatalf("unparsable %q", names[0])
		}
		stored := readAll(t, m, p.id)
		if stored != storedForm(string(in)) {
			t.Fatalf("stored %q, want %q", stored, storedForm(string(in)))
		}
		if p.size != int64(len(stored)) || p.vsize != int64(len(crlfForm(stored))) {
			t.Fatalf("S=%d W=%d, want %d %d", p.size, p.vsize, len(stored), len(crlfForm(stored)))
		}
		if n, _ := CRLFSize(bytes.NewReader([]byte(stored))); n != p.vsize {
			t.Fatalf("CRLFSize %d, W %d", n, p.vsize)
		}
		if err := m.Remove(p.id); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConcurrentDeliveries(t *testing.T) {
	s := newStore(t, nil, "u")
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Go(func() {
			d, err := s.Begin("u")
			if err != nil {
				errs <- err
				return
			}
			fmt.Fprintf(d, "Subject: %d\r\n\r\nbody\r\n", i)
			_, err = d.Commit()
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := dirNames(t, filepath.Join(s.Root(), "u", "new")); len(n) != 100 {
		t.Fatalf("%d files in new/", len(n))
	}
	m, _ := s.Maildir("u")
	list, _ := m.List()
	seen := map[string]bool{}
	for _, msg := range list {
		seen[readAll(t, m, msg.ID)] = true
	}
	if len(list) != 100 || len(seen) != 100 {
		t.Fatalf("%d listed, %d distinct contents", len(list), len(seen))
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, errors.New("client vanished")
	}
	n := min(len(p), r.n)
	for i := range n {
		p[i] = 'x'
	}
	r.n -= n
	return n, nil
}

func TestReaderFailsMidway(t *testing.T) {
	s := newStore(t, nil, "u")
	d, err := s.Begin("u")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(d, &failingReader{n: 200 << 10}); err == nil {
		t.Fatal("copy succeeded")
	}
	if d.Size() != 200<<10 {
		t.Fatalf("size %d", d.Size())
	}
	if err := d.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := d.Abort(); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if n := dirNames(t, filepath.Join(s.Root(), "u", sub)); len(n) != 0 {
			t.Fatalf("%s: %q", sub, n)
		}
	}
	if _, err := d.Commit(); err == nil {
		t.Fatal("commit after abort succeeded")
	}
}

// faultFS injects failures into delivery's file operations.
type faultFS struct {
	osFS
	mu         sync.Mutex
	writeLimit int64 // fail writes with ENOSPC beyond this many octets (<0: never)
	written    int64
	sync       error // File.Sync
	rename     error // every Rename
	link       error // every Link
	syncDir    func(dir string) error
	syncFS     error
	openFail   func(name string, flag int) error
}

func newFaultFS() *faultFS { return &faultFS{writeLimit: -1} }

type faultFile struct {
	File
	fs *faultFS
}

func (f faultFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	lim := f.fs.writeLimit
	if lim >= 0 && f.fs.written+int64(len(p)) > lim {
		n := int(max(lim-f.fs.written, 0))
		f.fs.written += int64(n)
		f.fs.mu.Unlock()
		f.File.Write(p[:n])
		return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
	}
	f.fs.written += int64(len(p))
	f.fs.mu.Unlock()
	return f.File.Write(p)
}

func (f faultFile) Sync() error {
	if f.fs.sync != nil {
		return f.fs.sync
	}
	return f.File.Sync()
}

func (fs *faultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if fs.openFail != nil {
		if err := fs.openFail(name, flag); err != nil {
			return nil, err
		}
	}
	f, err := fs.osFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return faultFile{f, fs}, nil
}

func (fs *faultFS) Rename(o, n string) error {
	if fs.rename != nil {
		return fs.rename
	}
	return fs.osFS.Rename(o, n)
}

func (fs *faultFS) Link(o, n string) error {
	if fs.link != nil {
		return fs.link
	}
	return fs.osFS.Link(o, n)
}

func (fs *faultFS) SyncDir(dir string) error {
	if fs.syncDir != nil {
		if err := fs.syncDir(dir); err != nil {
			return err
		}
	}
	return fs.osFS.SyncDir(dir)
}

func (fs *faultFS) SyncFS(path string) error {
	if fs.syncFS != nil {
		return fs.syncFS
	}
	return fs.osFS.SyncFS(path)
}

func TestInjectedFailures(t *testing.T) {
	eio := errors.New("injected I/O error")
	cases := []struct {
		name   string
		setup  func(fs *faultFS)
		cause  error
		onDisk bool // IsDiskFull
	}{
		{"enospc on write", func(fs *faultFS) { fs.writeLimit = 1000 }, syscall.ENOSPC, true},
		{"enospc at flush", func(fs *faultFS) { fs.writeLimit = 70 << 10 }, syscall.ENOSPC, true},
		{"fsync", func(fs *faultFS) { fs.sync = eio }, eio, false},
		{"rename", func(fs *faultFS) { fs.rename = syscall.EXDEV }, syscall.EXDEV, false},
		{"link and copy", func(fs *faultFS) {
			fs.link = syscall.EPERM
			fs.openFail = func(name string, flag int) error {
				if strings.Contains(name, "/carol/tmp/") {
					return syscall.EDQUOT
				}
				return nil
			}
		}, syscall.EDQUOT, true},
		{"fsync of a later new/", func(fs *faultFS) {
			fs.syncDir = func(dir string) error {
				if strings.HasSuffix(dir, "carol/new") {
					return eio
				}
				return nil
			}
		}, eio, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := newFaultFS()
			s := newStore(t, fs, "alice", "bob", "carol")
			tc.setup(fs)
			d, err := s.Begin("alice", "bob", "carol")
			if err != nil {
				t.Fatal(err)
			}
			line := strings.Repeat("y", 78) + "\r\n"
			_, err = io.Copy(d, strings.NewReader(strings.Repeat(line, 1000)))
			if err == nil {
				_, err = d.Commit()
			} else {
				d.Abort()
			}
			if err == nil {
				t.Fatal("delivery succeeded")
			}
			if !errors.Is(err, tc.cause) {
				t.Fatalf("error %v does not wrap %v", err, tc.cause)
			}
			if IsDiskFull(err) != tc.onDisk {
				t.Fatalf("IsDiskFull(%v) = %v", err, !tc.onDisk)
			}
			for _, u := range []string{"alice", "bob", "carol"} {
				for _, sub := range []string{"tmp", "new", "cur"} {
					if n := dirNames(t, filepath.Join(s.Root(), u, sub)); len(n) != 0 {
						t.Fatalf("%s/%s: %q", u, sub, n)
					}
				}
			}
		})
	}
}

func TestLinkFailureCopies(t *testing.T) {
	fs := newFaultFS()
	s := newStore(t, fs, "alice", "bob")
	fs.link = syscall.EXDEV
	msg := "Subject: copy\r\n\r\nx\r\n"
	deliver(t, s, msg, "alice", "bob")
	for _, u := range []string{"alice", "bob"} {
		m, _ := s.Maildir(u)
		list, _ := m.List()
		if len(list) != 1 || readAll(t, m, list[0].ID) != storedForm(msg) {
			t.Fatalf("%s: %+v", u, list)
		}
		if n := dirNames(t, filepath.Join(m.Dir(), "tmp")); len(n) != 0 {
			t.Fatalf("tmp: %q", n)
		}
	}
}

func TestMovedMessage(t *testing.T) {
	s := newStore(t, nil, "u")
	names := deliver(t, s, "one\r\n", "u")
	deliver(t, s, "two\r\n", "u")
	m, _ := s.Maildir("u")
	list, err := m.List()
	if err != nil || len(list) != 2 {
		t.Fatal(list, err)
	}
	// Another program (Dovecot, mutt) marks the first message seen.
	if err := os.Rename(filepath.Join(m.Dir(), "new", names[0]), filepath.Join(m.Dir(), "cur", names[0]+":2,S")); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, m, list[0].ID); got != "one\n" {
		t.Fatalf("open after move: %q", got)
	}
	// And moves it back with other flags.
	os.Rename(filepath.Join(m.Dir(), "cur", names[0]+":2,S"), filepath.Join(m.Dir(), "new", names[0]+":2,RS"))
	again, _ := m.List()
	if len(again) != 2 || again[0] != list[0] {
		t.Fatalf("list after moves: %+v vs %+v", again, list)
	}
	os.Rename(filepath.Join(m.Dir(), "new", names[0]+":2,RS"), filepath.Join(m.Dir(), "cur", names[0]+":2,"))
	if err := m.Remove(list[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Open(list[0].ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("open removed: %v", err)
	}
	for _, id := range []string{"", "../new", "x\x00", list[1].ID + "/"} {
		if _, err := m.Open(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("open %q: %v", id, err)
		}
	}
}

func TestForeignNames(t *testing.T) {
	s := newStore(t, nil, "u")
	m, _ := s.Maildir("u")
	files := []struct{ dir, name, content string }{
		{"cur", "1700000002.M5P77.host,S=4:2,S", "b\nc\n"},     // Dovecot, S= only
		{"new", "1700000001.V803I12M999999.mx", "a\r\nlong\n"}, // Postfix
		{"cur", "1700000002.M40P77.host,S=2,W=3:2,", "zz"},     // W= wrong on purpose: trusted
		{"new", "plain-name", "x"},                             // no time at all
		{".hidden", "", ""},                                    // skipped below
		{"new", "1700000001.V803I12M5.mx:2,T", ""},             // empty message
	}
	for _, f := range files {
		if f.name == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(m.Dir(), f.dir, f.name), []byte(f.content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(m.Dir(), "new", ".hidden"), nil, 0o600)
	list, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	want := []Message{
		{"plain-name", 1},
		{"1700000001.V803I12M5.mx", 0},
		{"1700000001.V803I12M999999.mx", 9},
		{"1700000002.M5P77.host", 6},
		{"1700000002.M40P77.host", 3},
	}
	if fmt.Sprint(list) != fmt.Sprint(want) {
		t.Fatalf("list %v\nwant %v", list, want)
	}
	// Sizes are cached: a second List does not read the files again.
	os.WriteFile(filepath.Join(m.Dir(), "new", "plain-name"), []byte("changed"), 0o600)
	again, _ := m.List()
	if again[0].Size != 1 {
		t.Fatalf("size recomputed: %v", again[0])
	}
}

func TestLock(t *testing.T) {
	s := newStore(t, nil, "u")
	m, _ := s.Maildir("u")
	if m.Locked() {
		t.Fatal("locked before any Lock")
	}
	l, err := m.Lock()
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := s.Maildir("u")
	if _, err := m2.Lock(); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v", err)
	}
	if !m2.Locked() {
		t.Fatal("Locked() false while held")
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if m.Locked() {
		t.Fatal("still locked after Release")
	}
	l2, err := m2.Lock()
	if err != nil {
		t.Fatal(err)
	}
	l2.Release()
}

func TestInvalidUsers(t *testing.T) {
	s := newStore(t, nil, "ok")
	for _, u := range []string{"", ".", "..", "../ok", "ok/..", "a/b", "/etc", "x\x00y", ".hidden", "a\\b", "tab\t", strings.Repeat("a", 256)} {
		if err := s.Create(u); !errors.Is(err, ErrInvalidUser) {
			t.Errorf("Create(%q): %v", u, err)
		}
		if _, err := s.Maildir(u); !errors.Is(err, ErrInvalidUser) {
			t.Errorf("Maildir(%q): %v", u, err)
		}
		if _, err := s.Begin("ok", u); !errors.Is(err, ErrInvalidUser) {
			t.Errorf("Begin(%q): %v", u, err)
		}
		if _, err := s.Batch(u); !errors.Is(err, ErrInvalidUser) {
			t.Errorf("Batch(%q): %v", u, err)
		}
		if _, err := s.Archive(u, t.TempDir()); !errors.Is(err, ErrInvalidUser) {
			t.Errorf("Archive(%q): %v", u, err)
		}
		if s.Exists(u) {
			t.Errorf("Exists(%q)", u)
		}
	}
	if _, err := s.Maildir("nobody"); !errors.Is(err, ErrNoMaildir) {
		t.Errorf("Maildir(nobody): %v", err)
	}
	if _, err := s.Begin("ok", "nobody"); !errors.Is(err, ErrNoMaildir) {
		t.Errorf("Begin(nobody): %v", err)
	}
	if n := dirNames(t, filepath.Join(s.Root(), "ok", "tmp")); len(n) != 0 {
		t.Fatalf("tmp: %q", n)
	}
}

func TestBatch(t *testing.T) {
	s := newStore(t, nil, "u")
	b, err := s.Batch("u")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if _, err := b.Add(strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("z", i)))); err != nil {
			t.Fatal(err)
		}
	}
	m, _ := s.Maildir("u")
	if list, _ := m.List(); len(list) != 0 {
		t.Fatalf("visible before Close: %d", len(list))
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	list, _ := m.List()
	if len(list) != 20 {
		t.Fatalf("%d messages", len(list))
	}
	for i, msg := range list {
		want := fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("z", i))
		if got := readAll(t, m, msg.ID); got != storedForm(want) || msg.Size != int64(len(want)) {
			t.Fatalf("message %d: %q size %d (delivery order kept?)", i, got, msg.Size)
		}
	}
	if _, err := b.Add(strings.NewReader("x")); err == nil {
		t.Fatal("add after close")
	}

	// A reader failing midway: nothing of that message stays anywhere.
	b3, _ := s.Batch("u")
	if _, err := b3.Add(&failingReader{n: 100 << 10}); err == nil {
		t.Fatal("failing reader accepted")
	}
	if err := b3.Close(); err != nil {
		t.Fatal(err)
	}
	if n := dirNames(t, filepath.Join(s.Root(), "u", "tmp")); len(n) != 0 {
		t.Fatalf("tmp: %q", n)
	}
	if list, _ := m.List(); len(list) != 20 {
		t.Fatalf("%d messages after failed add", len(list))
	}

	fs := newFaultFS()
	s2 := newStore(t, fs, "u")
	b2, _ := s2.Batch("u")
	b2.Add(strings.NewReader("a\r\n"))
	fs.syncFS = syscall.EIO
	if err := b2.Close(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("close: %v", err)
	}
	for _, sub := range []string{"tmp", "new"} {
		if n := dirNames(t, filepath.Join(s2.Root(), "u", sub)); len(n) != 0 {
			t.Fatalf("%s: %q", sub, n)
		}
	}
}

func TestCleanTmpArchiveFree(t *testing.T) {
	s := newStore(t, nil, "u", "v")
	tmp := filepath.Join(s.Root(), "u", "tmp")
	os.WriteFile(filepath.Join(tmp, "old"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(tmp, "fresh"), []byte("x"), 0o600)
	old := time.Now().Add(-37 * time.Hour)
	os.Chtimes(filepath.Join(tmp, "old"), old, old)
	if err := s.CleanTmp(36 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := dirNames(t, tmp); len(n) != 1 || n[0] != "fresh" {
		t.Fatalf("tmp after clean: %q", n)
	}

	deliver(t, s, "keep me\r\n", "v")
	deleted := filepath.Join(filepath.Dir(s.Root()), "deleted")
	dst, err := s.Archive("v", deleted)
	if err != nil {
		t.Fatal(err)
	}
	if s.Exists("v") || !strings.HasPrefix(filepath.Base(dst), "v.") {
		t.Fatalf("archive to %s", dst)
	}
	if n := dirNames(t, filepath.Join(dst, "new")); len(n) != 1 {
		t.Fatalf("archived mail: %q", n)
	}
	if _, err := s.Archive("v", deleted); !errors.Is(err, ErrNoMaildir) {
		t.Fatalf("second archive: %v", err)
	}
	if free, err := s.FreeBytes(); err != nil || free == 0 {
		t.Fatalf("FreeBytes %d %v", free, err)
	}
}

func TestUniqueNames(t *testing.T) {
	for in, want := range map[string]string{
		"mx.example.org":                      "mx.example.org",
		"a/b:c,d\x00e":                        "abcde",
		"":                                    "localhost",
		"...":                                 "localhost",
		"very-long-host-name.sub.example.org": "very-long-host-name",
		"ünïcode.example":                     "ncode.example",
	} {
		if got := sanitizeHost(in); got != want {
			t.Errorf("sanitizeHost(%q) = %q, want %q", in, got, want)
		}
	}
	n := &namer{seed: 42, pid: "4194304", host: sanitizeHost(strings.Repeat("h", 100))}
	seen := map[string]bool{}
	now := time.Unix(9999999999, 999999000)
	for range 10000 {
		name := n.next(now)
		if seen[name] {
			t.Fatalf("duplicate %q", name)
		}
		seen[name] = true
		if len(name) > 64 {
			t.Fatalf("%q is %d octets", name, len(name))
		}
		for i := 0; i < len(name); i++ {
			if name[i] < 0x21 || name[i] > 0x7e || name[i] == '/' || name[i] == ':' || name[i] == ',' {
				t.Fatalf("bad octet in %q", name)
			}
		}
		p, ok := parseName(withSizes(name, 1, 2) + ":2,S")
		if !ok || p.id != name || p.size != 1 || p.vsize != 2 || p.time != now.UnixMicro() {
			t.Fatalf("parse %q: %+v", name, p)
		}
	}
}

func TestNamesSortByTime(t *testing.T) {
	n := &namer{seed: 1, pid: "1", host: "h"}
	a := n.next(time.Unix(1700000000, 5000))
	b := n.next(time.Unix(1700000000, 123456000))
	if !strings.HasPrefix(a, "1700000000.M000005P1R") || a > b {
		t.Fatalf("%q !< %q", a, b)
	}
	if pa, _ := parseName(a); pa.time != 1700000000000005 {
		t.Fatalf("time %d", pa.time)
	}
}

// snapshotFS records, for every fsync of a new/ directory, the entries the
// directory held when the fsync started; an fsync's entries count as
// durable once it has completed. gate, when set, is called at the start of
// every directory fsync (to hold it), fail decides its result.
type snapshotFS struct {
	osFS
	mu      sync.Mutex
	durable map[string]bool // names covered by a completed fsync
	calls   int
	gate    func(call int)
	fail    func(call int) error
}

func (fs *snapshotFS) SyncDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	fs.mu.Lock()
	fs.calls++
	call, gate, fail := fs.calls, fs.gate, fs.fail
	fs.mu.Unlock()
	if gate != nil {
		gate(call)
	}
	if fail != nil {
		if err := fail(call); err != nil {
			return err
		}
	}
	if err := fs.osFS.SyncDir(dir); err != nil {
		return err
	}
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.durable == nil {
		fs.durable = make(map[string]bool)
	}
	for _, e := range ents {
		fs.durable[e.Name()] = true
	}
	return nil
}

func (fs *snapshotFS) covered(name string) bool {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.durable[name]
}

// TestSharedDirSync: concurrent deliveries share fsyncs of new/, yet each
// Commit returns only after an fsync that started after its own rename.
func TestSharedDirSync(t *testing.T) {
	fs := &snapshotFS{}
	s := newStore(t, fs, "u")
	const workers, each = 20, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for range each {
				d, err := s.Begin("u")
				if err == nil {
					_, err = io.WriteString(d, "Subject: x\r\n\r\nbody\r\n")
				}
				var names []string
				if err == nil {
					names, err = d.Commit()
				}
				if err != nil {
					errs <- err
					return
				}
				if !fs.covered(names[0]) {
					errs <- fmt.Errorf("%s acknowledged before an fsync of new/ covered it", names[0])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d deliveries, %d fsyncs of new/", workers*each, fs.calls)
}

// TestSharedDirSyncWaitsForNext: a delivery that renames while an fsync
// of new/ is in progress is not acknowledged by that fsync but by the next
// one; when that shared fsync fails, every delivery it served fails and
// leaves nothing in new/.
func TestSharedDirSyncWaitsForNext(t *testing.T) {
	for _, failSecond := range []bool{false, true} {
		t.Run(fmt.Sprintf("fail=%v", failSecond), func(t *testing.T) {
			entered, release := make(chan struct{}), make(chan struct{})
			eio := errors.New("injected fsync failure")
			fs := &snapshotFS{}
			s := newStore(t, fs, "u")
			fs.mu.Lock()
			fs.calls = 0 // Create's fsyncs
			fs.gate = func(call int) {
				if call == 1 {
					close(entered)
					<-release
				}
			}
			fs.fail = func(call int) error {
				if failSecond && call == 2 {
					return eio
				}
				return nil
			}
			fs.mu.Unlock()
			type result struct {
				names []string
				err   error
			}
			send := func(out chan<- result) {
				d, err := s.Begin("u")
				if err != nil {
					out <- result{nil, err}
					return
				}
				io.WriteString(d, "Subject: x\r\n\r\nbody\r\n")
				names, err := d.Commit()
				out <- result{names, err}
			}
			first := make(chan result, 1)
			go send(first)
			<-entered // the first fsync is in progress (and held)
			later := make(chan result, 2)
			go send(later)
			go send(later)
			newDir := filepath.Join(s.Root(), "u", "new")
			deadline := time.Now().Add(10 * time.Second)
			for {
				s.syncs.mu.Lock()
				n := 0
				if ds := s.syncs.dirs[newDir]; ds != nil && ds.next != nil {
					n = ds.next.waiters
				}
				s.syncs.mu.Unlock()
				if n == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d deliveries waiting for the next fsync, want 2", n)
				}
				time.Sleep(time.Millisecond)
			}
			close(release)
			if r := <-first; r.err != nil {
				t.Fatal(r.err)
			}
			for range 2 {
				r := <-later
				switch {
				case failSecond && !errors.Is(r.err, eio):
					t.Fatalf("delivery after a failed shared fsync: %v", r.err)
				case !failSecond && r.err != nil:
					t.Fatal(r.err)
				case !failSecond && !fs.covered(r.names[0]):
					t.Fatalf("%s acknowledged by an fsync that started before its rename", r.names[0])
				}
			}
			if fs.calls != 2 {
				t.Fatalf("%d fsyncs of new/, want 2 (the held one and one shared)", fs.calls)
			}
			want := 3
			if failSecond {
				want = 1
			}
			if n := dirNames(t, newDir); len(n) != want {
				t.Fatalf("new/ holds %d messages, want %d", len(n), want)
			}
		})
	}
}
