//go:build interop

package interop

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/maildir"
)

// dovecotPOP3 finds Debian's pre-authenticated POP3 binary (dovecot-pop3d).
func dovecotPOP3(t *testing.T) string {
	for _, p := range []string{"/usr/lib/dovecot/pop3", "/usr/libexec/dovecot/pop3"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("dovecot pop3 binary not installed (Debian packages dovecot-core dovecot-pop3d)")
	return ""
}

// dovecot runs Dovecot's pop3 binary without a daemon: started from a
// shell it treats stdin/stdout as a session already logged in as $USER,
// reading mail from mail_location.
type dovecot struct {
	bin, conf, user string
	testDir         string // t.TempDir holding everything
	uid, gid        int    // owner for the Maildirs (-1: keep)
}

func newDovecot(t *testing.T, dir string) *dovecot {
	d := &dovecot{bin: dovecotPOP3(t), uid: -1, gid: -1, testDir: dir}
	conf := []string{
		"mail_location = maildir:~/Maildir",
		"log_path = /dev/stderr",
		"ssl = no",
		"protocols = pop3",
		"base_dir = " + filepath.Join(dir, "run"),
		"state_dir = " + filepath.Join(dir, "state"),
	}
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	d.user = u.Username
	if os.Getuid() == 0 {
		// Dovecot refuses mail access as root: drop to nobody.
		nb, err := user.Lookup("nobody")
		if err != nil {
			t.Skip("running as root and no user nobody to run dovecot as")
		}
		d.uid, _ = strconv.Atoi(nb.Uid)
		d.gid, _ = strconv.Atoi(nb.Gid)
		d.user = "nobody"
		conf = append(conf, "mail_uid = "+nb.Uid, "mail_gid = "+nb.Gid,
			"first_valid_uid = 1", "first_valid_gid = 1")
	}
	for _, sub := range []string{"run", "state"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o755)
	}
	d.conf = filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(d.conf, []byte(strings.Join(conf, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

// prepare makes home (holding Maildir/) usable by the Dovecot user.
func (d *dovecot) prepare(t *testing.T, home string) {
	if d.uid < 0 {
		return
	}
	// t.TempDir and its per-test parent are 0700: open them for the
	// Dovecot user (only those two, never the system's temp dir).
	for p := home; p != d.testDir && len(p) > len(d.testDir); p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	os.Chmod(d.testDir, 0o755)
	if parent := filepath.Dir(d.testDir); parent != filepath.Clean(os.TempDir()) && parent != "/" {
		os.Chmod(parent, 0o755)
	}
	err := filepath.Walk(home, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, d.uid, d.gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// session runs one POP3 session on home/Maildir with the given commands
// and returns the output and the wall time from start to exit.
func (d *dovecot) session(t *testing.T, home string, cmds ...string) ([]byte, time.Duration) {
	t.Helper()
	cmd := exec.Command(d.bin, "-c", d.conf)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + home, "USER=" + d.user}
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\r\n") + "\r\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	el := time.Since(start)
	if err != nil || !bytes.HasPrefix(out.Bytes(), []byte("+OK")) {
		t.Fatalf("dovecot pop3: %v\nstdout: %.500s\nstderr: %s", err, out.Bytes(), errb.Bytes())
	}
	if bytes.Contains(errb.Bytes(), []byte("Error")) || bytes.Contains(errb.Bytes(), []byte("Warning")) {
		t.Errorf("dovecot complained: %s", errb.Bytes())
	}
	return out.Bytes(), el
}

// testMessage is message i. Every message has the same size (as in a
// benchmark fill, and the hard case for Dovecot's name hash: the ,S= and
// ,W= fields then never vary) but different content: lines starting with
// dots, 8-bit octets, bare-LF and CRLF line ends.
func testMessage(i int) []byte {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	const chars = "abcdefghijklmnopqrstuvwxyz0123456789 .\xc3\xa9"
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: sender@example.org\r\nTo: user@example.org\r\nSubject: message %08d\r\nMessage-ID: <%08d@example.org>\r\n\r\n", i, i)
	for l := 0; l < 12; l++ {
		if r.IntN(3) == 0 {
			b.WriteByte('.') // dot-stuffed by POP3
		} else {
			b.WriteByte('x')
		}
		for range 70 {
			b.WriteByte(chars[r.IntN(len(chars))])
		}
		if l%4 == 1 {
			b.WriteString("\n") // bare LF
		} else {
			b.WriteString("\r\n")
		}
	}
	return b.Bytes()
}

// unstuff turns a RETR body (CRLF, dot-stuffed) back into stored form.
func unstuff(body []string) string {
	var b strings.Builder
	for _, l := range body {
		l = strings.TrimPrefix(l, ".")
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

// retrBodies splits the output of a session of RETR commands into the
// message bodies, in order.
func retrBodies(t *testing.T, out []byte) []string {
	var bodies []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur []string
	in := false
	for sc.Scan() {
		l := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case !in && strings.HasPrefix(l, "+OK") && strings.Contains(l, "octets"):
			in, cur = true, nil
		case in && l == ".":
			bodies = append(bodies, unstuff(cur))
			in = false
		case in:
			cur = append(cur, l)
		}
	}
	return bodies
}

// postfixStyle gives the files of src new names in dst, the way Postfix's
// local(8) names them: <sec>.V<dev>I<ino>M<usec>.<host>, plus the same
// ,S= and ,W= fields, so only the naming scheme differs. Hard links: same
// content, same inodes.
func postfixStyle(t *testing.T, src, dst string) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dst, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(src, "new"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		name := e.Name()
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		sec, rest, _ := strings.Cut(name, ".")
		usec := "0"
		if strings.HasPrefix(rest, "M") {
			if p := strings.IndexByte(rest, 'P'); p > 1 {
				usec = strings.TrimLeft(rest[1:p], "0")
			}
		}
		sizes := name[strings.Index(name, ",S="):]
		pf := fmt.Sprintf("%s.V%xI%xM%s.mx.example.org%s", sec, st.Dev, st.Ino, usec, sizes)
		if err := os.Link(filepath.Join(src, "new", name), filepath.Join(dst, "new", pf)); err != nil {
			t.Fatal(err)
		}
	}
}

// correlatedStyle links src's messages into dst under names that differ
// only in a sequential counter written twice: <t>.M<i>P<pid>Q<i>.<host>.
func correlatedStyle(t *testing.T, src, dst string) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dst, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	ents, err := os.ReadDir(filepath.Join(src, "new"))
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	sec, _, _ := strings.Cut(names[0], ".")
	for i, name := range names {
		sizes := name[strings.Index(name, ",S="):]
		if os.Getenv("BUZON_DOVECOT_CONTROL") == "nosizes" {
			sizes = ""
		}
		c := fmt.Sprintf("%s.M%dP4242Q%d.mx.example.org%s", sec, i, i, sizes)
		if err := os.Link(filepath.Join(src, "new", name), filepath.Join(dst, "new", c)); err != nil {
			t.Fatal(err)
		}
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestDovecotReadsBuzonMaildir: Dovecot's POP3 on a 50,000-message Maildir
// written by buzon (Batch) is within 2× its time on the same messages
// under Postfix-style names, and reads the messages byte-exact.
func TestDovecotReadsBuzonMaildir(t *testing.T) {
	n := 50000
	if s := os.Getenv("BUZON_DOVECOT_MESSAGES"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := t.TempDir()
	dv := newDovecot(t, dir)

	// buzon's Maildir is home/Maildir for the user "buzon".
	store, err := maildir.New(filepath.Join(dir, "b"), maildir.Options{Hostname: "mx.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Create("Maildir"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	bt, err := store.Batch("Maildir")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if _, err := bt.Add(bytes.NewReader(testMessage(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := bt.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("buzon Batch wrote %d messages in %v", n, time.Since(start).Round(time.Millisecond))
	buzonHome := filepath.Join(dir, "b")
	postfixHome := filepath.Join(dir, "p")
	postfixStyle(t, filepath.Join(buzonHome, "Maildir"), filepath.Join(postfixHome, "Maildir"))
	dv.prepare(t, buzonHome)
	dv.prepare(t, postfixHome)
	if os.Getenv("BUZON_DOVECOT_CONTROL") != "" {
		// Control (opt-in): the correlated naming reported to make Dovecot
		// slow, <t>.M<i>P<pid>Q<i>.<host> with one t, with the size fields
		// or, with BUZON_DOVECOT_CONTROL=nosizes, without them.
		controlHome := filepath.Join(dir, "c")
		correlatedStyle(t, filepath.Join(buzonHome, "Maildir"), filepath.Join(controlHome, "Maildir"))
		dv.prepare(t, controlHome)
		dv.session(t, controlHome, "STAT", "LIST", "UIDL", "QUIT")
		_, d := dv.session(t, controlHome, "STAT", "LIST", "UIDL", "QUIT")
		t.Logf("control: dovecot login+STAT+LIST+UIDL+QUIT with names <t>.M<i>P<pid>Q<i>.<host>: %v", d.Round(time.Millisecond))
	}

	md, err := store.Maildir("Maildir")
	if err != nil {
		t.Fatal(err)
	}
	list, err := md.List()
	if err != nil || len(list) != n {
		t.Fatalf("buzon lists %d of %d: %v", len(list), n, err)
	}

	// First session of each builds Dovecot's index and uidlist (cold).
	list1 := []string{"STAT", "LIST", "UIDL", "QUIT"}
	outB, coldB := dv.session(t, buzonHome, list1...)
	_, coldP := dv.session(t, postfixHome, list1...)
	t.Logf("dovecot first session (index build), %d messages: buzon names %v, postfix-style names %v",
		n, coldB.Round(time.Millisecond), coldP.Round(time.Millisecond))

	// Dovecot's sizes and order agree with buzon's List.
	checkList(t, outB, list)

	// Warm: the cost every POP3 login pays. Interleaved, median of 5.
	var tb, tp []time.Duration
	for range 5 {
		_, d := dv.session(t, buzonHome, list1...)
		tb = append(tb, d)
		_, d = dv.session(t, postfixHome, list1...)
		tp = append(tp, d)
	}
	mb, mp := median(tb), median(tp)
	t.Logf("dovecot POP3 login+STAT+LIST+UIDL+QUIT on %d messages (median of 5): buzon names %v, postfix-style names %v (ratio %.2f)",
		n, mb.Round(time.Millisecond), mp.Round(time.Millisecond), float64(mb)/float64(mp))
	if mb > 2*mp {
		t.Errorf("Dovecot is %.1f× slower on buzon's names than on Postfix-style names (limit 2×)", float64(mb)/float64(mp))
	}

	// Byte-exact: RETR a sample spread over the maildrop.
	var cmds []string
	var want []int
	for i := 0; i < n; i += max(1, n/250) {
		cmds = append(cmds, "RETR "+strconv.Itoa(i+1))
		want = append(want, i)
	}
	cmds = append(cmds, "QUIT")
	out, _ := dv.session(t, buzonHome, cmds...)
	bodies := retrBodies(t, out)
	if len(bodies) != len(want) {
		t.Fatalf("got %d RETR bodies, want %d", len(bodies), len(want))
	}
	for k, i := range want {
		// Batch keeps delivery order, so message i+1 is testMessage(i).
		exp := strings.ReplaceAll(string(testMessage(i)), "\r\n", "\n")
		if bodies[k] != exp {
			t.Fatalf("message %d differs through Dovecot:\n got %q\nwant %q", i+1, bodies[k], exp)
		}
	}
}

// checkList compares Dovecot's LIST with buzon's List.
func checkList(t *testing.T, out []byte, list []maildir.Message) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(out))
	inList := false
	i := 0
	for sc.Scan() {
		l := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case strings.HasSuffix(l, "messages:"):
			inList = true
		case inList && l == ".":
			inList = false
		case inList:
			f := strings.Fields(l)
			if len(f) != 2 || i >= len(list) {
				t.Fatalf("LIST line %q", l)
			}
			if f[0] != strconv.Itoa(i+1) || f[1] != strconv.FormatInt(list[i].Size, 10) {
				t.Fatalf("Dovecot LIST %q, buzon message %d size %d", l, i+1, list[i].Size)
			}
			i++
		}
	}
	if i != len(list) {
		t.Fatalf("Dovecot listed %d messages, buzon %d", i, len(list))
	}
}
