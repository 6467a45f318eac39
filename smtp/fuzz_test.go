package smtp

import (
	"io"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func FuzzAddressRendering(f *testing.F) {
	for _, s := range []string{"alice@example.org", "\"odd local\"@x", "a\"b\\c@d", "", "@", "x@", "jos\u00e9@ex.test", "a\r\nb@c", "..@..", "user+tag@Example.ORG"} {
		f.Add(s)
	}
	f.Add(strings.Repeat("\xff", 300) + "@x")
	f.Fuzz(func(t *testing.T, s string) {
		if l := logAddr(s); len(l) > maxPath+3 || (utf8.ValidString(s) && !utf8.ValidString(l)) {
			t.Fatalf("logAddr(%q) = %q", s, l)
		}
		h := sanitizeHelo(s)
		if h == "" || len(h) > 255 || strings.ContainsAny(h, " \r\n\t()<>;\x00") {
			t.Fatalf("sanitizeHelo(%q) = %q", s, h)
		}
		if !validAddressText(s) {
			return
		}
		q := quotePath(s)
		if !strings.HasPrefix(q, "<") || !strings.HasSuffix(q, ">") || strings.ContainsAny(q, "\r\n\x00") {
			t.Fatalf("quotePath(%q) = %q", s, q)
		}
		if local, dom, ok := splitAddress(s); ok {
			if local+"@"+dom != s || strings.Contains(dom, "@") {
				t.Fatalf("splitAddress(%q) = %q, %q", s, local, dom)
			}
			if b := baseLocal(local); strings.Contains(b, "+") && !strings.HasPrefix(local, "+") {
				t.Fatalf("baseLocal(%q) = %q", local, b)
			}
		}
	})
}

// FuzzSession throws arbitrary client input at a running server: it must
// never hit an internal error, and it must keep serving.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO x\r\nAUTH PLAIN AGFsaWNlAGFsaWNlcHc=\r\nMAIL FROM:<alice@example.org>\r\n",
		"EHLO x\r\nAUTH LOGIN\r\n*\r\nBDAT 5 LAST\r\nhello",
		"HELO \x00\xff\r\nMAIL FROM:<\xff@x> SMTPUTF8\r\nRSET\r\n",
		"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice@example.org>\r\nBDAT 3\r\nabcBDAT 0 LAST\r\n",
		"EHLO x\r\nMAIL FROM:<" + strings.Repeat("a", 300) + "@b>\r\nRCPT TO:<alice+" + strings.Repeat("t", 300) + "@example.org>\r\n",
	} {
		f.Add([]byte(s))
	}
	h := start(f, nil)
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.DialTimeout("tcp", h.mx, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		go func() {
			c.Write(in)
			// End of input: the server sees EOF wherever it is.
			c.(*net.TCPConn).CloseWrite()
		}()
		out, _ := io.ReadAll(c)
		if strings.Contains(string(out), "Internal server error") {
			t.Fatalf("internal error for %q:\n%s", in, out)
		}
	})
}
