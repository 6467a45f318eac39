package smtp

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/throttle"
	"github.com/buzon-mail/buzon/maildir"
)

// failFS is the real file system with one operation failing on demand.
type failFS struct {
	op  string // "write", "sync", "rename", "syncdir"
	err error
}

type failFile struct {
	*os.File
	fs *failFS
}

func (f failFile) Write(p []byte) (int, error) {
	if f.fs.op == "write" {
		return 0, f.fs.err
	}
	return f.File.Write(p)
}

func (f failFile) Sync() error {
	if f.fs.op == "sync" {
		return f.fs.err
	}
	return f.File.Sync()
}

func (f *failFS) OpenFile(name string, flag int, perm os.FileMode) (maildir.File, error) {
	fh, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return failFile{fh, f}, nil
}

func (f *failFS) Rename(o, n string) error {
	if f.op == "rename" {
		return &os.LinkError{Op: "rename", Old: o, New: n, Err: f.err}
	}
	return os.Rename(o, n)
}
func (f *failFS) Link(o, n string) error                    { return os.Link(o, n) }
func (f *failFS) Remove(name string) error                  { return os.Remove(name) }
func (f *failFS) Mkdir(name string, perm os.FileMode) error { return os.Mkdir(name, perm) }
func (f *failFS) SyncDir(dir string) error {
	if f.op == "syncdir" {
		return &os.PathError{Op: "fsync", Path: dir, Err: f.err}
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
func (f *failFS) SyncFS(string) error { return nil }

// TestRealMaildir delivers through the maildir package, including with an
// injected failing file system: every failure is a 451/452 with no detail,
// and nothing appears in new/.
func TestRealMaildir(t *testing.T) {
	for _, tc := range []struct {
		op   string
		err  error
		want string
	}{
		{"", nil, "250 "},
		{"write", syscall.ENOSPC, "452 4.3.1"},
		{"sync", syscall.EIO, "451 4.3.0"},
		{"rename", syscall.EXDEV, "451 4.3.0"},
		{"syncdir", syscall.EIO, "451 4.3.0"},
	} {
		t.Run(tc.op, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "mail")
			fs := &failFS{}
			ms, err := maildir.New(root, maildir.Options{Hostname: "mx.test", FS: fs})
			if err != nil {
				t.Fatal(err)
			}
			h := start(t, func(o *Options) { o.Store = MaildirStore(ms) })
			fs.op, fs.err = tc.op, tc.err
			// A large body so that writes reach the file before Commit.
			body := "Subject: real\r\n\r\n" + strings.Repeat("0123456789\r\n", 20000)
			r := sendOne(t, h.mx, "alice@example.org", body)
			if !strings.HasPrefix(r, tc.want) {
				t.Fatalf("got %q, want %q", r, tc.want)
			}
			if strings.Contains(r, root) || strings.Contains(r, "/") {
				t.Fatalf("reply leaks a path: %q", r)
			}
			md, err := ms.Maildir("alice")
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := md.List()
			if err != nil {
				t.Fatal(err)
			}
			if tc.op != "" {
				if len(msgs) != 0 {
					t.Fatalf("%d messages after a failure", len(msgs))
				}
				return
			}
			if len(msgs) != 1 {
				t.Fatalf("%d messages", len(msgs))
			}
			rc, err := md.Open(msgs[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, _ := io.ReadAll(rc)
			if !strings.HasPrefix(string(b), "Return-Path: <sender@remote.test>\nReceived: from c ([127.0.0.1])") ||
				!strings.HasSuffix(string(b), strings.ReplaceAll(body, "\r\n", "\n")) {
				t.Fatalf("stored message wrong: %.200q", b)
			}
		})
	}
}

// TestAuthRealThrottle uses the shared throttle: the delay before 535 grows
// with the failures from one address, across sessions; past the threshold
// the session is closed with 421 4.7.0 and a new session from the address
// gets 421 4.7.0 at its next AUTH.
func TestAuthRealThrottle(t *testing.T) {
	const base = 50 * time.Millisecond
	h := start(t, func(o *Options) {
		o.Throttle = throttle.New(throttle.Options{BaseDelay: base, MaxDelay: time.Second, CloseAfter: 4})
	})
	fail := func(d *dialog, want string) time.Duration {
		t.Helper()
		start := time.Now()
		d.cmd("AUTH PLAIN "+b64("\x00alice\x00wrong"), want)
		return time.Since(start)
	}
	d1 := dial(t, h.mx)
	d1.cmd("EHLO c", "250 ")
	if got := fail(d1, "535 5.7.8"); got < base {
		t.Errorf("first failure answered after %v, want ≥ %v", got, base)
	}
	d2 := dial(t, h.sub)
	d2.cmd("EHLO c", "250 ")
	if got := fail(d2, "535 5.7.8"); got < 2*base {
		t.Errorf("second failure (another session) answered after %v, want ≥ %v", got, 2*base)
	}
	if got := fail(d1, "535 5.7.8"); got < 4*base {
		t.Errorf("third failure answered after %v, want ≥ %v", got, 4*base)
	}
	fail(d2, "421 4.7.0")
	if !d2.closed() {
		t.Fatal("session not closed past the threshold")
	}
	d3 := dial(t, h.mx)
	d3.cmd("EHLO c", "250 ")
	d3.cmd("AUTH PLAIN "+b64("\x00alice\x00alicepw"), "421 4.7.0")
	if !d3.closed() {
		t.Fatal("blocked address's session not closed")
	}
	if n := strings.Count(h.logs.String(), `msg="smtp auth failed" ip=127.0.0.1 mech=PLAIN`); n != 4 {
		t.Errorf("%d fail2ban lines, want 4", n)
	}
}
