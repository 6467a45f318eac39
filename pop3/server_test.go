package pop3

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/testcert"
)

// flakyListener fails Accept with err the first n times (n < 0: always).
type flakyListener struct {
	net.Listener
	mu    sync.Mutex
	n     int
	err   error
	fails int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.n != 0 {
		if l.n > 0 {
			l.n--
		}
		l.fails++
		l.mu.Unlock()
		return nil, l.err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func (l *flakyListener) failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fails
}

func emfile() error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
}

// A plain listener (no accounting wrapper) running out of file
// descriptors must not end Serve: it retries and serves the next client.
func TestServeSurvivesTemporaryAcceptErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: l, n: 3, err: emfile()}
	st := newFakeStore()
	st.add("alice", fixture...)
	srv := newTestServer(st)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(fl) }()
	c := dial(t, l.Addr().String())
	if r := c.cmd("NOOP"); !strings.HasPrefix(r, "-ERR") {
		t.Fatalf("NOOP before login %q", r)
	}
	if n := fl.failures(); n != 3 {
		t.Fatalf("accept failures %d, want 3", n)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
}

// Shutdown ends a Serve that is pausing between failing Accepts at once,
// and a permanent accept error ends Serve with that error.
func TestServeAcceptErrors(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fl := &flakyListener{Listener: l, n: -1, err: emfile()}
	srv := newTestServer(newFakeStore())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(fl) }()
	waitFor(t, "retries", func() bool { return fl.failures() >= 3 })
	start := time.Now()
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("Serve returned %v after Shutdown", d)
	}

	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bad := errors.New("listener broken")
	srv2 := newTestServer(newFakeStore())
	if err := srv2.Serve(&flakyListener{Listener: l2, n: -1, err: bad}); !errors.Is(err, bad) {
		t.Fatalf("Serve: %v, want %v", err, bad)
	}
}

// TestCAPAExact checks CAPA's exact contents in every TLS and plaintext
// situation of SPEC §5.
func TestCAPAExact(t *testing.T) {
	cert := testcert.New(t)
	base := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"}
	with := func(extra ...string) string {
		return strings.Join(append(append(append([]string{}, base...), extra...), "IMPLEMENTATION buzon"), "|")
	}
	cases := []struct {
		name     string
		tls      bool // TLS configured (STLS offered)
		trust    bool // loopback trusted
		insecure bool // auth.allow_insecure
		implicit bool // POP3S
		stls     bool // after STLS
		login    bool // after login
		want     string
	}{
		{"no tls, trusted loopback", false, true, false, false, false, false, with("USER", "SASL PLAIN LOGIN")},
		{"no tls, untrusted", false, false, false, false, false, false, with()},
		{"no tls, allow_insecure", false, false, true, false, false, false, with("USER", "SASL PLAIN LOGIN")},
		{"tls configured, untrusted", true, false, false, false, false, false, with("STLS")},
		{"tls configured, trusted loopback", true, true, false, false, false, false, with("STLS", "USER", "SASL PLAIN LOGIN")},
		{"tls configured, trusted, logged in", true, true, false, false, false, true, with("STLS", "USER", "SASL PLAIN LOGIN")},
		{"after STLS", true, false, false, false, true, false, with("USER", "SASL PLAIN LOGIN")},
		{"after STLS, logged in", true, false, false, false, true, true, with("USER", "SASL PLAIN LOGIN")},
		{"POP3S", true, false, false, true, false, false, with("USER", "SASL PLAIN LOGIN")},
		{"POP3S, logged in", true, false, false, true, false, true, with("USER", "SASL PLAIN LOGIN")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := newFakeStore()
			st.add("alice", fixture...)
			srv := newTestServer(st)
			srv.TrustLoopback, srv.AllowInsecure = tc.trust, tc.insecure
			if tc.tls {
				srv.TLSConfig = cert.Server
			}
			var c *client
			if tc.implicit {
				c = dialTLS(t, startTLSServer(t, srv, cert.Server), cert.Client)
			} else {
				c = dial(t, startServer(t, srv))
			}
			if tc.stls {
				c.startTLS(cert.Client)
			}
			if tc.login {
				c.login("alice", "secret")
			}
			if r := c.cmd("CAPA"); r != "+OK Capability list follows" {
				t.Fatalf("CAPA %q", r)
			}
			if got := strings.Join(c.multi(), "|"); got != tc.want {
				t.Fatalf("CAPA\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// writeCounter counts the writes made on the connections it accepts.
type writeCounter struct {
	net.Listener
	writes *atomic.Int64
}

func (l writeCounter) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// PIPELINING (RFC 2449 §6.6): commands sent in one write are answered in
// order, and the replies go out in a few large writes, not one per line.
func TestPipeliningFlushesInBatches(t *testing.T) {
	const n = 1000
	msgs := make([]fakeMsg, n)
	for i := range msgs {
		msgs[i] = fakeMsg{fmt.Sprintf("17000%05d.M%dP1.host", i, i), "Subject: x\n\nbody\n"}
	}
	st := newFakeStore()
	st.add("alice", msgs...)
	srv := newTestServer(st)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(writeCounter{l, &writes}) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-errc
	})
	c := dial(t, l.Addr().String())
	c.send("USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\nNOOP\r\nQUIT\r\n")
	lines := 0
	for {
		l := c.line()
		if l == "<EOF>" {
			break
		}
		lines++
	}
	if want := 7 + 2*(n+1); lines != want {
		t.Fatalf("%d reply lines, want %d", lines, want)
	}
	// Greeting, then the batch: a few 32 KiB buffers at most even if the
	// commands arrive in several reads.
	if w := writes.Load(); w > 12 {
		t.Fatalf("%d writes for %d reply lines", w, lines)
	}
	t.Logf("%d reply lines in %d writes", lines, writes.Load())
}
