//go:build interop

package interop

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/maildir"
)

// muttMessages are delivered as SMTP hands them over (CRLF line ends); the
// Maildir holds them with LF, and mutt must read exactly those bytes.
// Each subject is a unique word so mutt's ~s patterns pick one message.
var muttMessages = []struct{ subject, body string }{
	{"buzon-plain", "Hello Alice.\r\n"},
	{"buzon-eightbit", "Caf\xc3\xa9 cr\xc3\xa8me, \xe2\x82\xac 5.\r\nLatin-1 octets: \xe9\xe8\xff.\r\n"},
	{"buzon-dotlines", ".\r\n..two dots\r\n.leading dot\r\nnot first.\r\n.\r\n"},
	{"buzon-multiline", muttMultiLineBody()},
}

func muttMultiLineBody() string {
	var b strings.Builder
	for i := range 200 {
		fmt.Fprintf(&b, "line %03d of a longer message, with some text to fill it up\r\n", i)
		if i%50 == 0 {
			b.WriteString("\r\n\r\n") // empty lines inside the body
		}
	}
	return b.String()
}

func muttMessage(i int) []byte {
	m := muttMessages[i]
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <bob@example.org>\r\nFrom: Bob <bob@example.org>\r\nTo: alice@example.org\r\n")
	fmt.Fprintf(&b, "Subject: %s\r\nMessage-ID: <mutt.%d@example.org>\r\nDate: Sun, 22 Nov 2026 08:00:0%d +0000\r\n", m.subject, i, i)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	b.WriteString(m.body)
	return b.Bytes()
}

// muttLF is the stored form of a message: CRLF → LF.
func muttLF(b []byte) []byte { return bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")) }

// deliverMutt delivers message i to alice through Begin/Write/Commit,
// written in small odd-sized chunks so a CR and its LF arrive in different
// writes.
func deliverMutt(t *testing.T, store *maildir.Store, msg []byte) {
	t.Helper()
	d, err := store.Begin("alice")
	if err != nil {
		t.Fatal(err)
	}
	for rest := msg; len(rest) > 0; {
		n := min(len(rest), 7)
		if _, err := d.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if _, err := d.Commit(); err != nil {
		t.Fatal(err)
	}
}

// muttSafe: paths put into mutt's push string and the shell command line
// must need no quoting (t.TempDir names are like this).
var muttSafe = regexp.MustCompile(`^[A-Za-z0-9/._-]+$`)

// mutt runs Debian's mutt non-interactively on one Maildir: a muttrc made
// for the test pushes the keys, and script(1) gives mutt the terminal it
// insists on.
type mutt struct {
	bin, script string
	dir         string // everything of mutt's: HOME, muttrc, saved messages
	maildir     string
	saver       string // shell script storing stdin as a new file in $1
	runs        int
}

func newMutt(t *testing.T, md string) *mutt {
	bin, err := exec.LookPath("mutt")
	if err != nil {
		t.Skip("mutt not installed (Debian package mutt)")
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script not installed (Debian package util-linux)")
	}
	m := &mutt{bin: bin, script: script, dir: t.TempDir(), maildir: md}
	for _, p := range []string{m.dir, md} {
		if !muttSafe.MatchString(p) {
			t.Skipf("temporary path %q needs quoting for mutt", p)
		}
	}
	// ~/Mail must exist: otherwise mutt asks whether to create it, and
	// that prompt eats the pushed keys.
	if err := os.MkdirAll(filepath.Join(m.dir, "Mail"), 0o700); err != nil {
		t.Fatal(err)
	}
	m.saver = filepath.Join(m.dir, "save.sh")
	saver := "f=$(mktemp \"$1/msg.XXXXXX\") && exec cat >\"$f\"\n"
	if err := os.WriteFile(m.saver, []byte(saver), 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

// pipeTo is mutt key input that pipes every message matching pattern, one
// by one and undecoded, into its own file under a new directory, which it
// returns.
func (m *mutt) pipeTo(t *testing.T, pattern string) (keys, dir string) {
	dir, err := os.MkdirTemp(m.dir, "out")
	if err != nil {
		t.Fatal(err)
	}
	return "<untag-pattern>~A<enter><tag-pattern>" + pattern + "<enter>" +
		"<tag-prefix><pipe-message>sh " + m.saver + " " + dir + "<enter>", dir
}

// run starts mutt on the Maildir with the pushed keys (which should end in
// <quit>) and waits at most 20 s. It returns mutt's screen output.
func (m *mutt) run(t *testing.T, keys string) string {
	t.Helper()
	m.runs++
	rc := filepath.Join(m.dir, fmt.Sprintf("muttrc%d", m.runs))
	conf := strings.Join([]string{
		"set folder=" + filepath.Join(m.dir, "Mail"),
		"set wait_key=no",    // no "press any key" after a pipe
		"set pipe_split=yes", // one pipe command per tagged message
		"set pipe_decode=no", // the message as stored, headers and all
		`set pipe_sep=""`,    // nothing between split messages
		"set mark_old=no",    // unread stays new (in new/) on exit
		"set move=no",
		"set quit=yes",
		"set beep=no",
		`push "` + keys + `"`,
	}, "\n") + "\n"
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	line := "exec " + m.bin + " -n -F " + rc + " -f " + m.maildir
	cmd := exec.CommandContext(ctx, m.script, "-qec", line, "/dev/null")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + m.dir, "TERM=vt100", "LANG=C.UTF-8",
		"COLUMNS=100", "LINES=30"}
	// A terminal input that stays open and silent: an EOF from /dev/null
	// could reach mutt as a key.
	in, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer inW.Close()
	defer in.Close()
	cmd.Stdin = in
	var screen bytes.Buffer
	cmd.Stdout, cmd.Stderr = &screen, &screen
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	if err != nil || ctx.Err() != nil {
		t.Fatalf("mutt: %v (%v)\nscreen: %q", err, ctx.Err(), muttTail(screen.String(), 2000))
	}
	return screen.String()
}

func muttTail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// muttReadDir returns the contents of the files in dir, sorted.
func muttReadDir(t *testing.T, dir string) []string {
	t.Helper()
	out := fileContents(t, dir)
	slices.Sort(out)
	return out
}

func muttNames(t *testing.T, dir string) []string {
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

// muttSameSet fails unless got holds exactly the wanted contents (any order).
func muttSameSet(t *testing.T, what string, got []string, want ...[]byte) {
	t.Helper()
	var w []string
	for _, b := range want {
		w = append(w, string(b))
	}
	slices.Sort(w)
	if !slices.Equal(got, w) {
		t.Errorf("%s: mutt gave %d messages, want %d", what, len(got), len(w))
		for i := range max(len(got), len(w)) {
			var g, x string
			if i < len(got) {
				g = got[i]
			}
			if i < len(w) {
				x = w[i]
			}
			if g != x {
				t.Errorf("%s: message %d differs:\n got: %q\nwant: %q", what, i, muttTail(g, 300), muttTail(x, 300))
			}
		}
	}
}

// muttBuzonView lists alice's Maildir through buzon and checks every message
// opens to the wanted content; it returns the listing.
func muttBuzonView(t *testing.T, store *maildir.Store, want map[string][]byte) []maildir.Message {
	t.Helper()
	md, err := store.Maildir("alice")
	if err != nil {
		t.Fatal(err)
	}
	list, err := md.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(want) {
		t.Fatalf("buzon lists %d messages, want %d", len(list), len(want))
	}
	for _, m := range list {
		w, ok := want[m.ID]
		if !ok {
			t.Fatalf("buzon lists unknown id %q", m.ID)
		}
		r, err := md.Open(m.ID)
		if err != nil {
			t.Fatalf("open %s: %v", m.ID, err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, w) {
			t.Errorf("buzon reads %s as %q, want %q", m.ID, muttTail(string(got), 200), muttTail(string(w), 200))
		}
		size, _ := maildir.CRLFSize(bytes.NewReader(w))
		if m.Size != size {
			t.Errorf("buzon lists %s with size %d, want %d", m.ID, m.Size, size)
		}
	}
	return list
}

// TestMuttReadsBuzonMaildir: Debian's mutt reads a Maildir written by buzon
// byte for byte (8-bit bodies, lines starting with '.', long multi-line
// messages); when mutt marks a message read and moves it from new/ to
// cur/ with ":2,S", buzon still lists and opens it by the same id, mutt
// sees buzon's later deliveries and removals, and both keep the same view.
func TestMuttReadsBuzonMaildir(t *testing.T) {
	dir := t.TempDir()
	store, err := maildir.New(filepath.Join(dir, "mail"), maildir.Options{Hostname: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Create("alice"); err != nil {
		t.Fatal(err)
	}
	md, err := store.Maildir("alice")
	if err != nil {
		t.Fatal(err)
	}
	mt := newMutt(t, md.Dir())

	var stored [][]byte // LF form, by index in muttMessages
	for i := range muttMessages {
		msg := muttMessage(i)
		deliverMutt(t, store, msg)
		stored = append(stored, muttLF(msg))
	}
	// buzon's own view, and the id of each message (by content).
	want := map[string][]byte{}
	ids := make([]string, len(stored))
	{
		list, err := md.List()
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != len(stored) {
			t.Fatalf("buzon lists %d messages, delivered %d", len(list), len(stored))
		}
		for i, m := range list {
			// Deliveries in one second are ordered by unique name only,
			// so find each message by content.
			r, err := md.Open(m.ID)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			r.Close()
			j := slices.IndexFunc(stored, func(s []byte) bool { return bytes.Equal(s, got) })
			if j < 0 {
				t.Fatalf("message %d (%s) is none of the delivered ones: %q", i, m.ID, muttTail(string(got), 200))
			}
			ids[j] = m.ID
			want[m.ID] = stored[j]
		}
		muttBuzonView(t, store, want)
	}
	newBefore := muttNames(t, filepath.Join(md.Dir(), "new"))

	// 1. mutt pipes every message, undecoded: exactly the stored bytes.
	keys, all := mt.pipeTo(t, "~A")
	mt.run(t, keys+"<quit>")
	muttSameSet(t, "all messages", muttReadDir(t, all), stored...)
	if got := muttNames(t, filepath.Join(md.Dir(), "new")); !slices.Equal(got, newBefore) {
		t.Errorf("reading with mutt changed new/: %q, was %q", got, newBefore)
	}
	if got := muttNames(t, filepath.Join(md.Dir(), "cur")); len(got) != 0 {
		t.Errorf("reading with mutt put files in cur/: %q", got)
	}

	// 2. mutt marks the dot-lines message read (found by its subject, so
	// mutt parsed the headers) and syncs: it moves the file to cur/ with
	// the flag S, keeping buzon's name.
	const dotIdx = 2
	mt.run(t, "<tag-pattern>~s "+muttMessages[dotIdx].subject+"<enter><tag-prefix><clear-flag>N"+
		"<untag-pattern>~A<enter><sync-mailbox><quit>")
	cur := muttNames(t, filepath.Join(md.Dir(), "cur"))
	newAfter := muttNames(t, filepath.Join(md.Dir(), "new"))
	if len(cur) != 1 || len(newAfter) != len(newBefore)-1 {
		t.Fatalf("after mutt marked one message read: cur/ %q, new/ %q (was %q)", cur, newAfter, newBefore)
	}
	moved, ok := strings.CutSuffix(cur[0], ":2,S")
	if !ok || !slices.Contains(newBefore, moved) || slices.Contains(newAfter, moved) {
		t.Fatalf("mutt moved %q to cur/ as %q; want the same name with :2,S", moved, cur[0])
	}
	if !strings.HasPrefix(moved, ids[dotIdx]) {
		t.Fatalf("mutt moved %q, want the message with id %s", moved, ids[dotIdx])
	}
	// buzon still lists the moved message under the same id and size, and
	// opens it, alongside the rest.
	muttBuzonView(t, store, want)

	// 3. buzon delivers another message next to mutt's change; mutt sees
	// the read one as read, the others as new, and all of them intact.
	extra := []byte("From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: buzon-extra\r\n\r\nafter mutt\r\n.\r\n")
	deliverMutt(t, store, extra)
	list, err := md.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		if _, ok := want[m.ID]; !ok {
			want[m.ID] = muttLF(extra)
		}
	}
	muttBuzonView(t, store, want)
	readKeys, readDirPath := mt.pipeTo(t, "~R")
	newKeys, newDirPath := mt.pipeTo(t, "~N")
	allKeys, allPath := mt.pipeTo(t, "~A")
	mt.run(t, readKeys+newKeys+allKeys+"<quit>")
	muttSameSet(t, "read messages", muttReadDir(t, readDirPath), stored[dotIdx])
	var unread [][]byte
	for i, s := range stored {
		if i != dotIdx {
			unread = append(unread, s)
		}
	}
	muttSameSet(t, "new messages", muttReadDir(t, newDirPath), append(unread, muttLF(extra))...)
	muttSameSet(t, "all messages after a new delivery", muttReadDir(t, allPath), append(slices.Clone(stored), muttLF(extra))...)

	// 4. buzon removes the message mutt moved (as POP3 DELE does); mutt no
	// longer sees it.
	if err := md.Remove(ids[dotIdx]); err != nil {
		t.Fatalf("buzon removes the message mutt moved: %v", err)
	}
	if err := md.Sync(); err != nil {
		t.Fatal(err)
	}
	delete(want, ids[dotIdx])
	muttBuzonView(t, store, want)
	keys, all = mt.pipeTo(t, "~A")
	mt.run(t, keys+"<quit>")
	muttSameSet(t, "all messages after a removal", muttReadDir(t, all), append(unread, muttLF(extra))...)
	if got := muttNames(t, filepath.Join(md.Dir(), "cur")); len(got) != 0 {
		t.Errorf("cur/ after removal: %q", got)
	}
}
