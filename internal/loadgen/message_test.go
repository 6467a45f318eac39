package loadgen

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestMessageGenExactSize(t *testing.T) {
	block := newBodyBlock()
	date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g := newMessageGen(block, "bench@localhost", 0, "run1")
	min := g.minSize()
	sizes := []int{min, min + 1, min + 2, min + 3, 100, 150, 151, 152, 200, 229, 230, 231, 1000, 4096,
		65520, 65521, 65522, 65600, 200000, 1 << 20}
	for i := range 2 * lineOctets {
		sizes = append(sizes, min+i) // every remainder mod the line length
	}
	for _, size := range sizes {
		g.size = size
		for _, stuffed := range []bool{false, true} {
			var buf bytes.Buffer
			if err := g.write(&buf, 42, "user@example.test", date, stuffed); err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			msg := buf.Bytes()
			if stuffed {
				msg = unstuff(t, msg)
			}
			if len(msg) != size {
				t.Fatalf("size %d stuffed=%v: got %d octets", size, stuffed, len(msg))
			}
			checkMessage(t, size, msg)
		}
	}
	g.size = min - 1
	if err := g.write(&bytes.Buffer{}, 1, "u@x", date, true); err == nil {
		t.Errorf("size %d below the minimum %d: no error", min-1, min)
	}
}

func TestMessageGenHeader(t *testing.T) {
	g := newMessageGen(newBodyBlock(), "", 4096, "run1")
	var a, b bytes.Buffer
	date := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := g.write(&a, 1, "u@example.test", date, false); err != nil {
		t.Fatal(err)
	}
	if err := g.write(&b, 2, "u@example.test", date, false); err != nil {
		t.Fatal(err)
	}
	hdr, _, _ := strings.Cut(a.String(), "\r\n\r\n")
	for _, want := range []string{"From: bench@localhost\r\n", "Date: Fri, 02 Jan 2026 03:04:05 +0000\r\n", "To: u@example.test\r\n",
		"Subject: buzon-bench message 1\r\n", "Message-ID: <run1.1@buzon-bench>"} {
		if !strings.Contains(hdr+"\r\n", want) {
			t.Errorf("header lacks %q:\n%s", want, hdr)
		}
	}
	if !strings.Contains(b.String(), "Message-ID: <run1.2@buzon-bench>") {
		t.Error("second message does not have its own Message-ID")
	}
	if !strings.Contains(a.String(), "\r\n.") {
		t.Error("no body line begins with a dot")
	}
}

// checkMessage checks CRLF lines of at most 78 octets, a header with From
// and Date, and a blank line before the body.
func checkMessage(t *testing.T, size int, msg []byte) {
	t.Helper()
	if !bytes.HasSuffix(msg, crlf) {
		t.Fatalf("size %d: does not end in CRLF", size)
	}
	lines := bytes.SplitAfter(msg, crlf)
	for i, l := range lines[:len(lines)-1] {
		if !bytes.HasSuffix(l, crlf) || bytes.ContainsAny(l[:len(l)-2], "\r\n") || len(l) > lineOctets {
			t.Fatalf("size %d: bad line %d %q", size, i, l)
		}
	}
	hdr, _, ok := bytes.Cut(msg, []byte("\r\n\r\n"))
	if !ok || !bytes.HasPrefix(hdr, []byte("From: ")) || !bytes.Contains(hdr, []byte("\r\nDate: ")) {
		t.Fatalf("size %d: bad header %q", size, hdr)
	}
}

// unstuff reverses dot-stuffing and checks that every line beginning with
// a dot was stuffed.
func unstuff(t *testing.T, msg []byte) []byte {
	t.Helper()
	var out []byte
	for _, l := range bytes.SplitAfter(msg, crlf) {
		if len(l) > 0 && l[0] == '.' {
			if len(l) < 2 || l[1] != '.' {
				t.Fatalf("line %q not dot-stuffed", l)
			}
			l = l[1:]
		}
		out = append(out, l...)
	}
	return out
}
