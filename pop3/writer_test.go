package pop3

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/buzon-mail/buzon/maildir"
)

// crlfForm is the reference CRLF form: LF, CR LF and lone CR each become
// CR LF (maildir's definition of Message.Size).
func crlfForm(in string) string {
	var b strings.Builder
	for i := 0; i < len(in); i++ {
		switch in[i] {
		case '\r':
			b.WriteString("\r\n")
			if i+1 < len(in) && in[i+1] == '\n' {
				i++
			}
		case '\n':
			b.WriteString("\r\n")
		default:
			b.WriteByte(in[i])
		}
	}
	return b.String()
}

// unstuff undoes the multi-line framing: checks the terminator, removes
// it (and the CRLF added before it for an unterminated last line when
// addedCRLF) and the stuffed dots.
func unstuff(t testing.TB, out string, addedCRLF bool) string {
	t.Helper()
	body, ok := strings.CutSuffix(out, ".\r\n")
	if !ok {
		t.Fatalf("no terminator: %q", out)
	}
	if body != "" && !strings.HasSuffix(body, "\r\n") {
		t.Fatalf("terminator not at a line start: %q", out)
	}
	lines := strings.SplitAfter(body, "\r\n")
	for i, l := range lines {
		if strings.HasPrefix(l, ".") {
			if !strings.HasPrefix(l, "..") {
				t.Fatalf("unstuffed dot line %q in %q", l, out)
			}
			lines[i] = l[1:]
		}
		if strings.Count(l, "\n") > 1 || strings.Contains(strings.TrimSuffix(l, "\r\n"), "\n") || strings.Contains(strings.TrimSuffix(l, "\r\n"), "\r") {
			t.Fatalf("bare CR or LF in output line %q", l)
		}
	}
	body = strings.Join(lines, "")
	if addedCRLF {
		body = strings.TrimSuffix(body, "\r\n")
	}
	return body
}

func writeAll(t testing.TB, in string, chunk int) (string, int64) {
	t.Helper()
	var out bytes.Buffer
	d := newDotWriter(&out)
	var r io.Reader = strings.NewReader(in)
	if chunk > 0 {
		r = iotest.OneByteReader(r)
	}
	if _, err := io.Copy(d, r); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	return out.String(), d.n
}

func TestDotWriter(t *testing.T) {
	cases := []struct{ in, out string }{
		{"", ".\r\n"},
		{"a\n", "a\r\n.\r\n"},
		{"a", "a\r\n.\r\n"},
		{"a\r", "a\r\n.\r\n"},
		{"a\r\n", "a\r\n.\r\n"},
		{".\n", "..\r\n.\r\n"},
		{".", "..\r\n.\r\n"},
		{"a\n.b\n", "a\r\n..b\r\n.\r\n"},
		{"a\n..b\n", "a\r\n...b\r\n.\r\n"},
		{"a\r.b", "a\r\n..b\r\n.\r\n"},
		{"a\r\n.b\r\n", "a\r\n..b\r\n.\r\n"},
		{"a.b\n", "a.b\r\n.\r\n"},
		{"\n\n", "\r\n\r\n.\r\n"},
		{"\r\r\n", "\r\n\r\n.\r\n"},
		{"x\x00y\n", "x\x00y\r\n.\r\n"},
		{"\n.", "\r\n..\r\n.\r\n"},
	}
	for _, tc := range cases {
		for _, chunk := range []int{0, 1} {
			got, n := writeAll(t, tc.in, chunk)
			if got != tc.out {
				t.Errorf("%q (chunk %d): got %q, want %q", tc.in, chunk, got, tc.out)
			}
			size, _ := maildir.CRLFSize(strings.NewReader(tc.in))
			if n != size {
				t.Errorf("%q: counted %d, maildir size %d", tc.in, n, size)
			}
		}
	}
}

func FuzzDotWriter(f *testing.F) {
	for _, s := range []string{"", "a", ".", "a\n.b\r\n..c\r.d", "\r\n\r", "x\n\n.\n", "\x00\xff.\r"} {
		f.Add(s, uint8(3))
	}
	f.Fuzz(func(t *testing.T, in string, split uint8) {
		var out bytes.Buffer
		d := newDotWriter(&out)
		// Feed in pieces so line-end state crosses Write calls.
		step := int(split%16) + 1
		for i := 0; i < len(in); i += step {
			if _, err := d.Write([]byte(in[i:min(i+step, len(in))])); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		want := crlfForm(in)
		added := want != "" && !strings.HasSuffix(want, "\r\n")
		if got := unstuff(t, out.String(), added); got != want {
			t.Fatalf("unstuffed %q, want %q", got, want)
		}
		size, err := maildir.CRLFSize(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		if d.n != size || d.n != int64(len(want)) {
			t.Fatalf("count %d, maildir size %d, CRLF form %d", d.n, size, len(want))
		}
		// The session's path (lines appended to the output buffer) gives
		// the same octets.
		if got := throughOutput(t, []byte(in), step); got != out.String() {
			t.Fatalf("through output %q, plain %q", got, out.String())
		}
	})
}

// throughOutput runs in through a dotWriter on a session output (pooled
// buffer, in-place lines), in Writes of step octets.
func throughOutput(t testing.TB, in []byte, step int) string {
	t.Helper()
	var sink bytes.Buffer
	o := &output{w: &sink, pool: &bufPool{}}
	d := newDotWriter(o)
	if d.out != o {
		t.Fatal("dotWriter does not use the output's line path")
	}
	for p := in; len(p) > 0; {
		k := min(step, len(p))
		if _, err := d.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Flush(); err != nil {
		t.Fatal(err)
	}
	if o.buf != nil {
		t.Fatal("buffer kept after Flush")
	}
	return sink.String()
}

// TestDotWriterLargeThroughOutput crosses the 64 KiB output buffer many
// times, with lines of every length around it, lone CRs, CR LF split
// between Writes and leading dots, and compares with the plain path.
func TestDotWriterLargeThroughOutput(t *testing.T) {
	var in bytes.Buffer
	ends := []string{"\n", "\r\n", "\r", ""}
	for i := 0; in.Len() < 400<<10; i++ {
		if i%3 == 0 {
			in.WriteByte('.')
		}
		n := (i * 7919) % 300
		if i%50 == 0 {
			n = ioBufSize - 1 + i%4 // a line about the buffer's size
		}
		in.WriteString(strings.Repeat("y", n))
		in.WriteString(ends[i%len(ends)])
	}
	var plain bytes.Buffer
	d := newDotWriter(&plain)
	if _, err := d.Write(in.Bytes()); err != nil {
		t.Fatal(err)
	}
	d.Close()
	for _, step := range []int{1 << 20, 32 << 10, 4093, 1, 2} {
		if step < 4 && testing.Short() {
			continue
		}
		if got := throughOutput(t, in.Bytes(), step); got != plain.String() {
			t.Fatalf("step %d: output path differs from the plain one", step)
		}
	}
	want := crlfForm(in.String())
	if got := unstuff(t, plain.String(), !strings.HasSuffix(want, "\r\n")); got != want {
		t.Fatal("plain path differs from the reference")
	}
}

// errWriter fails every write.
type errWriter struct{ n int }

func (w *errWriter) Write(p []byte) (int, error) { w.n++; return 0, io.ErrClosedPipe }

func TestOutputStickyError(t *testing.T) {
	w := &errWriter{}
	o := &output{w: w, pool: &bufPool{}}
	o.WriteString("+OK\r\n")
	if err := o.Flush(); err != io.ErrClosedPipe {
		t.Fatalf("Flush: %v", err)
	}
	if _, err := o.Write([]byte("x")); err != io.ErrClosedPipe {
		t.Fatalf("Write after failure: %v", err)
	}
	if err := o.writeLine([]byte("x")); err != io.ErrClosedPipe {
		t.Fatalf("writeLine after failure: %v", err)
	}
	if err := o.Flush(); err != io.ErrClosedPipe || w.n != 1 || o.buf != nil {
		t.Fatalf("Flush again: %v, %d writes, buffer kept %v", err, w.n, o.buf != nil)
	}
	var sink bytes.Buffer
	o.Reset(&sink)
	o.WriteString("after reset")
	if err := o.Flush(); err != nil || sink.String() != "after reset" {
		t.Fatalf("after Reset: %v %q", err, sink.String())
	}
}

func TestTopWriter(t *testing.T) {
	msg := "H: 1\nH: 2\n\nb1\nb2\n.b3\n"
	cases := []struct {
		in    string
		lines int
		out   string
	}{
		{msg, 0, "H: 1\r\nH: 2\r\n\r\n.\r\n"},
		{msg, 1, "H: 1\r\nH: 2\r\n\r\nb1\r\n.\r\n"},
		{msg, 3, "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\n..b3\r\n.\r\n"},
		{msg, 100, "H: 1\r\nH: 2\r\n\r\nb1\r\nb2\r\n..b3\r\n.\r\n"},
		{"H: 1\r\n\r\nb1\r\nb2\r\n", 1, "H: 1\r\n\r\nb1\r\n.\r\n"},
		{"H: only header", 0, "H: only header\r\n.\r\n"},
		// No blank line: the whole message is header (RFC 5322 §3.5), so
		// TOP sends all of it whatever n is.
		{"H: 1\nH: 2\n.H3\n", 0, "H: 1\r\nH: 2\r\n..H3\r\n.\r\n"},
		{"H: 1\nH: 2\nH: 3", 1, "H: 1\r\nH: 2\r\nH: 3\r\n.\r\n"},
		{"H: 1\r\nH: 2\r", 5, "H: 1\r\nH: 2\r\n.\r\n"},
		{"\nbody\n", 0, "\r\n.\r\n"},
		{"H\r\rb1\rb2", 1, "H\r\n\r\nb1\r\n.\r\n"},
	}
	for _, tc := range cases {
		for _, chunk := range []int{0, 1} {
			var out bytes.Buffer
			d := newDotWriter(&out)
			var r io.Reader = strings.NewReader(tc.in)
			if chunk > 0 {
				r = iotest.OneByteReader(r)
			}
			_, err := io.Copy(&topWriter{w: d, lines: tc.lines}, r)
			if err != nil && err != errTopDone {
				t.Fatal(err)
			}
			d.Close()
			if out.String() != tc.out {
				t.Errorf("TOP %q %d (chunk %d): got %q, want %q", tc.in, tc.lines, chunk, out.String(), tc.out)
			}
		}
	}
}

func TestUIDL(t *testing.T) {
	long := strings.Repeat("a", 71)
	cases := []struct {
		id   string
		keep bool
	}{
		{"1700000000.M1P1.host", true},
		{strings.Repeat("a", 70), true},
		{long, false},
		{"with space", false},
		{"tab\there", false},
		{"caf\xc3\xa9", false},
		{"", false},
		{"a\x7f", false},
	}
	for _, tc := range cases {
		u := UIDL(tc.id)
		if (u == tc.id) != tc.keep {
			t.Errorf("UIDL(%q) = %q, keep %v", tc.id, u, tc.keep)
		}
		if !validUIDL(u) {
			t.Errorf("UIDL(%q) = %q is not a valid RFC 1939 unique-id", tc.id, u)
		}
		if UIDL(tc.id) != u {
			t.Errorf("UIDL(%q) not stable", tc.id)
		}
	}
	// Pinned: the hash must never change between versions (RFC 1939 §7).
	if got, want := UIDL(long), "eefa4cfbea79400c2f4239e1f702e02e"; got != want {
		t.Errorf("UIDL(71×a) = %q, want %q", got, want)
	}
}

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{"USER alice", "PASS a b c", "list 1", "TOP 1 10", "", "\x00", "RETR 99999999999", "AUTH PLAIN =", "uidl  2 ", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := parseCommand(line)
		if err != nil {
			return
		}
		if c.verb != strings.ToUpper(c.verb) || len(c.verb) < 3 || len(c.verb) > 4 {
			t.Fatalf("verb %q", c.verb)
		}
		for _, a := range c.args {
			if a == "" || strings.Contains(a, " ") {
				t.Fatalf("arg %q", a)
			}
		}
		if strings.ContainsAny(line, "\x00\r\n") {
			t.Fatalf("control characters accepted: %q", line)
		}
		if n, ok := parseMsgNum(strings.Join(c.args, "")); ok && n < 0 {
			t.Fatalf("negative %d", n)
		}
	})
}
