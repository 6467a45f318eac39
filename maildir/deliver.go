package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// Begin starts one delivery to the given users (at least one; each must
// have a Maildir). The same content reaches every user; a user named more
// than once gets one copy. The message is written to the first user's
// tmp/ until Commit.
func (s *Store) Begin(users ...string) (*Delivery, error) {
	if len(users) == 0 {
		return nil, errors.New("maildir: delivery without recipients")
	}
	var dirs, uniq []string
	seen := make(map[string]bool, len(users))
	for _, u := range users {
		if seen[u] {
			continue
		}
		seen[u] = true
		dir, err := s.userDir(u)
		if err != nil {
			return nil, err
		}
		if fi, err := os.Stat(filepath.Join(dir, "new")); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("deliver to %s: %w", u, ErrNoMaildir)
		}
		dirs = append(dirs, dir)
		uniq = append(uniq, u)
	}
	unique := s.names.next(time.Now())
	tmp := filepath.Join(dirs[0], "tmp", unique)
	f, err := s.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("deliver to %s: %w", uniq[0], err)
	}
	d := &Delivery{s: s, users: uniq, dirs: dirs, unique: unique, tmp: tmp, f: f}
	d.buf = s.getBuf(f)
	d.conv.w = d.buf
	return d, nil
}

// Delivery is one message being written. Not safe for concurrent use.
type Delivery struct {
	s      *Store
	users  []string
	dirs   []string // Maildir of each user
	unique string
	tmp    string
	f      File
	buf    *bufio.Writer
	conv   lfConverter
	done   bool // committed or aborted
}

// Write streams message bytes (CRLF or LF line ends) to tmp/, converting
// CRLF to LF. Errors (a full disk: see IsDiskFull) wrap the cause.
func (d *Delivery) Write(p []byte) (int, error) {
	if d.done {
		return 0, errors.New("maildir: write after commit or abort")
	}
	n, err := d.conv.Write(p)
	if err != nil {
		return n, fmt.Errorf("deliver to %s: write: %w", d.users[0], err)
	}
	return n, nil
}

// Size is the size of the message in CRLF form so far (see Message.Size).
func (d *Delivery) Size() int64 { return d.conv.size() }

// Commit makes the message durable and visible in every user's new/: it
// flushes and fsyncs the file, renames it into the first user's new/, hard
// links it into each further user's new/ (copying through that user's tmp/
// where linking fails) and fsyncs every new/ it touched. It returns the
// file name given in each user's new/, in the order of Begin's distinct
// users.
//
// Guarantee: when Commit returns nil, every copy's content and directory
// entry are on stable storage (file fsync before rename, directory fsync
// after), so a crash loses nothing acknowledged. When it returns an error,
// everything it made is removed again: no partial or unacknowledged file
// is left in any new/ (a crash in the middle of Commit can at worst leave
// complete copies, never partial ones, because files are fsynced before
// they are renamed or linked into new/).
func (d *Delivery) Commit() ([]string, error) {
	if d.done {
		return nil, errors.New("maildir: commit after commit or abort")
	}
	d.done = true
	names, err := d.commit()
	d.s.putBuf(d.buf)
	d.buf, d.conv.w = nil, nil
	if err != nil {
		_ = d.s.fs.Remove(d.tmp)
		return nil, fmt.Errorf("deliver to %s: %w", d.users[0], err)
	}
	return names, nil
}

func (d *Delivery) commit() ([]string, error) {
	fs := d.s.fs
	err := d.conv.flush()
	if err == nil {
		err = d.buf.Flush()
	}
	if err != nil {
		_ = d.f.Close()
		return nil, fmt.Errorf("write: %w", err)
	}
	if err := d.f.Sync(); err != nil {
		_ = d.f.Close()
		return nil, fmt.Errorf("fsync: %w", err)
	}
	if err := d.f.Close(); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	name := withSizes(d.unique, d.conv.disk, d.conv.crlf.finish())
	var made []string // files now in some new/ (or a copy's tmp/)
	undo := func() {
		for _, p := range made {
			_ = fs.Remove(p)
		}
	}
	first := filepath.Join(d.dirs[0], "new", name)
	if err := fs.Rename(d.tmp, first); err != nil {
		return nil, fmt.Errorf("rename into new: %w", err)
	}
	made = append(made, first)
	names := make([]string, len(d.dirs))
	names[0] = name
	for i, dir := range d.dirs[1:] {
		dst := filepath.Join(dir, "new", name)
		if err := fs.Link(first, dst); err != nil {
			// Different file system or no hard links: copy through tmp/.
			if err := d.copyInto(first, dir, name, &made); err != nil {
				undo()
				return nil, fmt.Errorf("copy to %s: %w", d.users[i+1], err)
			}
		} else {
			made = append(made, dst)
		}
		names[i+1] = name
	}
	// Concurrent deliveries into the same new/ share its fsync: see
	// dirSyncer for why each still gets one that covers its own entry.
	for _, dir := range d.dirs {
		if err := d.s.syncs.sync(fs, filepath.Join(dir, "new")); err != nil {
			undo()
			return nil, fmt.Errorf("fsync new: %w", err)
		}
	}
	return names, nil
}

// copyInto copies src into dir/tmp, fsyncs it and renames it into dir/new.
func (d *Delivery) copyInto(src, dir, name string, made *[]string) (err error) {
	fs := d.s.fs
	in, err := fs.OpenFile(src, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := filepath.Join(dir, "tmp", name)
	out, err := fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = fs.Remove(tmp)
		}
	}()
	if _, err = io.Copy(out, in); err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	dst := filepath.Join(dir, "new", name)
	if err = fs.Rename(tmp, dst); err != nil {
		return err
	}
	*made = append(*made, dst)
	return nil
}

// Abort removes the temporary file. Safe after Commit (no-op) and twice.
func (d *Delivery) Abort() error {
	if d.done {
		return nil
	}
	d.done = true
	d.s.putBuf(d.buf)
	d.buf, d.conv.w = nil, nil
	_ = d.f.Close()
	if err := d.s.fs.Remove(d.tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("abort delivery to %s: %w", d.users[0], err)
	}
	return nil
}

// Batch delivers many messages to one user with a single file-system
// flush and directory fsync at Close (imports and benchmarks). Add writes
// each message to tmp/; Close flushes the file system (syncfs), renames
// every file into new/ and fsyncs new/. Guarantee: after Close returns nil
// every message is durable in new/; before Close nothing of the batch is in
// new/ (a crash then leaves only tmp/ files, which CleanTmp removes), and a
// crash during Close can only leave complete, already flushed files there.
// Not safe for concurrent use.
type Batch struct {
	s       *Store
	user    string
	dir     string
	pending [][2]string // tmp path, new path
	buf     *bufio.Writer
	closed  bool
}

// Batch starts a bulk delivery to user, who must have a Maildir.
func (s *Store) Batch(user string) (*Batch, error) {
	dir, err := s.userDir(user)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(filepath.Join(dir, "new")); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("batch to %s: %w", user, ErrNoMaildir)
	}
	return &Batch{s: s, user: user, dir: dir, buf: bufio.NewWriterSize(nil, 64<<10)}, nil
}

// Add writes one message (CRLF or LF line ends) and returns the file name
// it will have in new/ after Close.
func (b *Batch) Add(r io.Reader) (string, error) {
	if b.closed {
		return "", errors.New("maildir: add to a closed batch")
	}
	fs := b.s.fs
	unique := b.s.names.next(time.Now())
	tmp := filepath.Join(b.dir, "tmp", unique)
	f, err := fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("batch to %s: %w", b.user, err)
	}
	b.buf.Reset(f)
	conv := lfConverter{w: b.buf}
	_, err = io.Copy(&conv, r)
	if err == nil {
		err = conv.flush()
	}
	if err == nil {
		err = b.buf.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = fs.Remove(tmp)
		return "", fmt.Errorf("batch to %s: %w", b.user, err)
	}
	name := withSizes(unique, conv.disk, conv.crlf.finish())
	b.pending = append(b.pending, [2]string{tmp, filepath.Join(b.dir, "new", name)})
	return name, nil
}

// Close makes every added message durable and visible in new/. On error
// every file of the batch is removed again (from tmp/ and from new/), so
// nothing unsynced stays visible.
func (b *Batch) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if len(b.pending) == 0 {
		return nil
	}
	fs := b.s.fs
	err := fs.SyncFS(b.dir)
	for _, p := range b.pending {
		if err != nil {
			break
		}
		err = fs.Rename(p[0], p[1])
	}
	if err == nil {
		err = fs.SyncDir(filepath.Join(b.dir, "new"))
	}
	if err != nil {
		for _, p := range b.pending {
			_ = fs.Remove(p[0])
			_ = fs.Remove(p[1])
		}
		return fmt.Errorf("batch to %s: %d messages not delivered: %w", b.user, len(b.pending), err)
	}
	return nil
}

// getBuf returns a 64 KiB write buffer from the store's pool.
func (s *Store) getBuf(w io.Writer) *bufio.Writer {
	if b, ok := s.bufs.Get().(*bufio.Writer); ok {
		b.Reset(w)
		return b
	}
	return bufio.NewWriterSize(w, 64<<10)
}

func (s *Store) putBuf(b *bufio.Writer) {
	b.Reset(nil)
	s.bufs.Put(b)
}
