package pop3

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/maildir"
)

// lfText returns size octets of stored (LF-ended) text in lines of 76
// octets; with dots, every fifth line starts with "." (to be stuffed).
func lfText(size int, dots bool) []byte {
	var b bytes.Buffer
	b.Grow(size)
	for i := 0; b.Len() < size; i++ {
		line := strings.Repeat("x", 75) + "\n"
		if dots && i%5 == 0 {
			line = "." + line[1:]
		}
		b.WriteString(line)
	}
	return b.Bytes()[:size]
}

// BenchmarkDotWriter runs the RETR transformation (CRLF line ends and
// dot-stuffing) over stored text fed in 32 KiB reads, as a file read does,
// into io.Discard.
func BenchmarkDotWriter(b *testing.B) { benchDotWriter(b, false) }

// BenchmarkDotWriterOutput is the same into a session's output buffer
// (lines appended in place, 64 KiB writes to io.Discard): RETR's path.
func BenchmarkDotWriterOutput(b *testing.B) { benchDotWriter(b, true) }

func benchDotWriter(b *testing.B, session bool) {
	for _, size := range []int{4 << 10, 25_000_000} {
		for _, dots := range []bool{false, true} {
			name := fmt.Sprintf("%s/dots=%v", sizeName(size), dots)
			b.Run(name, func(b *testing.B) {
				in := lfText(size, dots)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				var w io.Writer = io.Discard
				o := &output{w: io.Discard, pool: &bufPool{}}
				if session {
					w = o
				}
				for b.Loop() {
					d := newDotWriter(w)
					for p := in; len(p) > 0; {
						n := min(len(p), 32<<10)
						if _, err := d.Write(p[:n]); err != nil {
							b.Fatal(err)
						}
						p = p[n:]
					}
					if err := d.Close(); err != nil {
						b.Fatal(err)
					}
					if err := o.Flush(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func sizeName(n int) string {
	if n >= 1_000_000 {
		return strconv.Itoa(n/1_000_000) + "MB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}

// BenchmarkParseCommand parses a table of typical command lines.
func BenchmarkParseCommand(b *testing.B) {
	lines := []string{"USER alice", "PASS correct horse battery", "STAT", "LIST", "UIDL",
		"RETR 1234", "DELE 1234", "TOP 17 10", "NOOP", "QUIT", "CAPA", "AUTH PLAIN AGFsaWNlAHNlY3JldA=="}
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range lines {
			if _, err := parseCommand(l); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(lines)), "ns/cmd")
}

// retrClient reads RETR replies as fast as a client can: whole lines
// without copying, up to the terminating "." line.
type retrClient struct {
	conn net.Conn
	r    *bufio.Reader
}

func (c *retrClient) readRetr(b *testing.B) int64 {
	first, err := c.r.ReadSlice('\n')
	if err != nil || !bytes.HasPrefix(first, []byte("+OK")) {
		b.Fatalf("RETR: %q %v", first, err)
	}
	var n int64
	atLineStart := true
	for {
		l, err := c.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			n += int64(len(l))
			atLineStart = false
			continue
		}
		if err != nil {
			b.Fatalf("RETR body: %v", err)
		}
		if atLineStart && len(l) == 3 && l[0] == '.' {
			return n
		}
		n += int64(len(l))
		atLineStart = true
	}
}

// retrEnv is a logged-in session on a maildrop holding msg once.
func retrEnv(b *testing.B, msg []byte) *retrClient {
	store, err := maildir.New(b.TempDir(), maildir.Options{Hostname: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Create("alice"); err != nil {
		b.Fatal(err)
	}
	bt, err := store.Batch("alice")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bt.Add(bytes.NewReader(msg)); err != nil {
		b.Fatal(err)
	}
	if err := bt.Close(); err != nil {
		b.Fatal(err)
	}
	c := dial(b, startServer(b, newTestServer(MaildirStore(store))))
	c.login("alice", "secret")
	_ = c.conn.SetDeadline(time.Time{})
	b.Cleanup(func() { c.cmd("QUIT") })
	return &retrClient{conn: c.conn, r: bufio.NewReaderSize(c.conn, 64<<10)}
}

// BenchmarkRetr4K is the per-message cost of RETR of a 4 KiB message
// through a real session on loopback (client included): one command at a
// time, and 50 pipelined (RFC 2449 PIPELINING) as a bulk client sends them.
func BenchmarkRetr4K(b *testing.B) {
	msg := lfText(4096, false)
	b.Run("serial", func(b *testing.B) {
		c := retrEnv(b, msg)
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := io.WriteString(c.conn, "RETR 1\r\n"); err != nil {
				b.Fatal(err)
			}
			c.readRetr(b)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("pipelined50", func(b *testing.B) {
		c := retrEnv(b, msg)
		batch := []byte(strings.Repeat("RETR 1\r\n", 50))
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for i := 0; i < b.N; i += 50 {
			k := min(50, b.N-i)
			if _, err := c.conn.Write(batch[:8*k]); err != nil {
				b.Fatal(err)
			}
			for range k {
				c.readRetr(b)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}

// BenchmarkRetr25MB is RETR of one 25,000,000-octet message on loopback;
// MB/s is the figure.
func BenchmarkRetr25MB(b *testing.B) {
	msg := lfText(25_000_000, false)
	c := retrEnv(b, msg)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := io.WriteString(c.conn, "RETR 1\r\n"); err != nil {
			b.Fatal(err)
		}
		if n := c.readRetr(b); n < int64(len(msg)) {
			b.Fatalf("RETR sent %d octets", n)
		}
	}
}

// BenchmarkListSession50k is the pop3-list scenario without the password
// check: connect, log in (lock and list the maildrop), STAT, LIST, UIDL,
// QUIT on a 50,000-message maildrop; time per session.
func BenchmarkListSession50k(b *testing.B) {
	store, err := maildir.New(b.TempDir(), maildir.Options{Hostname: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	if err := store.Create("alice"); err != nil {
		b.Fatal(err)
	}
	bt, err := store.Batch("alice")
	if err != nil {
		b.Fatal(err)
	}
	for i := range 50000 {
		if _, err := bt.Add(strings.NewReader("Subject: " + strconv.Itoa(i) + "\n\nbody\n")); err != nil {
			b.Fatal(err)
		}
	}
	if err := bt.Close(); err != nil {
		b.Fatal(err)
	}
	addr := startServer(b, newTestServer(MaildirStore(store)))
	b.ReportAllocs()
	for b.Loop() {
		c := dial(b, addr)
		c.login("alice", "secret")
		c.cmd("STAT")
		for _, cmd := range []string{"LIST", "UIDL"} {
			c.cmd(cmd)
			if n := len(c.multi()); n != 50000 {
				b.Fatalf("%s: %d lines", cmd, n)
			}
		}
		c.cmd("QUIT")
		c.conn.Close()
	}
}
