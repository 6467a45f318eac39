package accounting

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/buzon-mail/buzon/internal/pause"
	"github.com/buzon-mail/buzon/internal/testcert"
)

const greeting = "220 hello\r\n"

// refuse is a refusal in the style of the protocol servers.
func refuse(w io.Writer, why Reason) {
	switch why {
	case Paused:
		io.WriteString(w, "421 4.3.2 paused\r\n")
	default:
		io.WriteString(w, "421 4.7.0 busy\r\n")
	}
}

const (
	busyLine   = "421 4.7.0 busy\r\n"
	pausedLine = "421 4.3.2 paused\r\n"
)

// limits are the values the accountant reads at every accept.
type limits struct {
	mu           sync.Mutex
	total, perIP int
	gate         *pause.Gate
}

func (l *limits) maxConns() int { l.mu.Lock(); defer l.mu.Unlock(); return l.total }
func (l *limits) maxPerIP() int { l.mu.Lock(); defer l.mu.Unlock(); return l.perIP }
func (l *limits) set(total, perIP int) {
	l.mu.Lock()
	l.total, l.perIP = total, perIP
	l.mu.Unlock()
}

func newAccountant(t *testing.T, total, perIP int) (*Accountant, *limits) {
	t.Helper()
	l := &limits{total: total, perIP: perIP, gate: pause.New()}
	a, err := New(Options{
		MaxConnections: l.maxConns,
		MaxPerIP:       l.maxPerIP,
		Pause:          l.gate,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, l
}

// server is a minimal protocol server: it greets every admitted connection,
// reads until the client closes, then closes.
type server struct {
	ln    net.Listener
	addr  string
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// serve starts an accounted listener of proto on 127.0.0.1:0; with cert set
// it is an implicit-TLS listener.
func serve(t *testing.T, a *Accountant, proto Proto, cert *testcert.Cert, maxLive int) *server {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts := ListenerOptions{Proto: proto, Refuse: refuse, MaxLive: maxLive}
	if cert != nil {
		opts.TLS = cert.Server
	}
	ln := a.Listener(raw, opts)
	if cert != nil {
		ln = tls.NewListener(ln, cert.Server)
	}
	s := &server{ln: ln, addr: raw.Addr().String(), conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.conns, c)
					s.mu.Unlock()
					c.Close()
				}()
				if _, err := io.WriteString(c, greeting); err != nil {
					return
				}
				io.Copy(io.Discard, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// dial connects (from local when set, over TLS when cfg is set) and returns
// the connection and the first line it reads.
func dial(t *testing.T, addr string, cfg *tls.Config, local string) (net.Conn, string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	var c net.Conn
	var err error
	if cfg != nil {
		c, err = tls.DialWithDialer(&d, "tcp", addr, cfg)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("read first line: %v (got %q)", err, line)
	}
	return c, line
}

// expectRefused reads a refusal and then the end of the connection.
func expectRefused(t *testing.T, addr string, cfg *tls.Config, local, want string) {
	t.Helper()
	c, line := dial(t, addr, cfg, local)
	if line != want {
		t.Fatalf("refusal = %q, want %q", line, want)
	}
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("refused connection not closed")
	}
}

// eventually waits until cond holds, failing after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestLimitsAndPause(t *testing.T) {
	cert := testcert.New(t)
	for _, tc := range []struct {
		name  string
		proto Proto
		cert  *testcert.Cert
	}{
		{"smtp plain", SMTP, nil},
		{"pop3 plain", POP3, nil},
		{"smtp implicit tls", SMTP, cert},
		{"pop3 implicit tls", POP3, cert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, lim := newAccountant(t, 2, 100)
			s := serve(t, a, tc.proto, tc.cert, 0)
			var cfg *tls.Config
			if tc.cert != nil {
				cfg = tc.cert.Client
			}
			c1, l1 := dial(t, s.addr, cfg, "")
			_, l2 := dial(t, s.addr, cfg, "")
			if l1 != greeting || l2 != greeting {
				t.Fatalf("greetings %q %q", l1, l2)
			}
			// Over limits.max_connections.
			expectRefused(t, s.addr, cfg, "", busyLine)
			st := a.Snapshot()
			if st.Historic != 3 || st.Live != 2 || st.Rejected != 1 {
				t.Fatalf("after refusal: %+v", st)
			}
			perProto := [2]int64{st.SMTPHistoric, st.POP3Historic}
			if perProto[tc.proto] != 3 || perProto[1-tc.proto] != 0 {
				t.Fatalf("per-protocol historic: %+v", st)
			}
			// Closing one frees its place.
			c1.Close()
			eventually(t, "live 1", func() bool { return a.Snapshot().Live == 1 })
			_, l3 := dial(t, s.addr, cfg, "")
			if l3 != greeting {
				t.Fatalf("after close: %q", l3)
			}
			// A limit raised at run time applies to the next connection.
			lim.set(3, 100)
			_, l4 := dial(t, s.addr, cfg, "")
			if l4 != greeting {
				t.Fatalf("after raising the limit: %q", l4)
			}
			// The pause refuses even below the limits, with its own reply.
			lim.set(100, 100)
			lim.gate.Pause(time.Hour)
			expectRefused(t, s.addr, cfg, "", pausedLine)
			lim.gate.Resume()
			_, l5 := dial(t, s.addr, cfg, "")
			if l5 != greeting {
				t.Fatalf("after resume: %q", l5)
			}
			st = a.Snapshot()
			if st.Historic != 7 || st.Rejected != 2 || st.Live != 4 {
				t.Fatalf("final: %+v", st)
			}
			// Plain: greetings and refusals only (the clients send nothing).
			// TLS: the handshakes' records as well, both ways.
			wantSent := int64(5*len(greeting) + len(busyLine) + len(pausedLine))
			// A byte count is added once the server's Write has returned,
			// which may be just after the client has read the bytes.
			eventually(t, "bytes counted", func() bool { return a.Snapshot().BytesSent >= wantSent })
			st = a.Snapshot()
			if tc.cert == nil && (st.BytesSent != wantSent || st.BytesReceived != 0) ||
				tc.cert != nil && (st.BytesSent <= wantSent || st.BytesReceived == 0) {
				t.Fatalf("bytes: %+v", st)
			}
		})
	}
}

func TestPerIPLimit(t *testing.T) {
	a, _ := newAccountant(t, 100, 2)
	s := serve(t, a, SMTP, nil, 0)
	for range 2 {
		if _, l := dial(t, s.addr, nil, "127.0.0.1"); l != greeting {
			t.Fatalf("got %q", l)
		}
	}
	expectRefused(t, s.addr, nil, "127.0.0.1", busyLine)
	// Another address still gets in: the limit is per address.
	if _, l := dial(t, s.addr, nil, "127.0.0.2"); l != greeting {
		t.Fatalf("127.0.0.2: %q", l)
	}
	// SMTP and POP3 share the per-address count.
	p := serve(t, a, POP3, nil, 0)
	expectRefused(t, p.addr, nil, "127.0.0.1", busyLine)
	if st := a.Snapshot(); st.Live != 3 || st.Rejected != 2 || st.SMTPLive != 3 || st.POP3Live != 0 {
		t.Fatalf("%+v", st)
	}
}

// A client that sends a command right after connecting still reads the
// refusal (no reset destroys it), and sees the connection end.
func TestRefusalSurvivesPipelinedInput(t *testing.T) {
	a, lim := newAccountant(t, 100, 100)
	lim.gate.Pause(time.Hour)
	s := serve(t, a, POP3, nil, 0)
	for range 20 {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("CAPA\r\nUSER bob\r\n" + strings.Repeat("x", 4000) + "\r\n")); err != nil {
			t.Fatal(err)
		}
		// Let the refusal goroutine write and half-close before reading.
		eventually(t, "refusal written", func() bool { return a.Snapshot().BytesSent > 0 })
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != pausedLine {
			t.Fatalf("got %q, %v; want the refusal then EOF", b, err)
		}
		a.sent.Store(0)
	}
}

func TestMaxConnectionsSpansProtocols(t *testing.T) {
	a, _ := newAccountant(t, 2, 100)
	s := serve(t, a, SMTP, nil, 0)
	p := serve(t, a, POP3, nil, 0)
	dial(t, s.addr, nil, "")
	dial(t, p.addr, nil, "")
	expectRefused(t, s.addr, nil, "", busyLine)
	expectRefused(t, p.addr, nil, "", busyLine)
	if st := a.Snapshot(); st.SMTPLive != 1 || st.POP3Live != 1 || st.Rejected != 2 || st.Historic != 4 {
		t.Fatalf("%+v", st)
	}
}

// N goroutines × M connections: every figure exact, and live back to 0.
func TestCountersExactUnderConcurrency(t *testing.T) {
	const (
		N       = 8
		M       = 25
		payload = 100
	)
	a, lim := newAccountant(t, 1000, 1000)
	s := serve(t, a, SMTP, nil, 0)
	p := serve(t, a, POP3, nil, 0)
	run := func(wantGreeting bool) {
		var wg sync.WaitGroup
		errs := make(chan error, N*M)
		for g := range N {
			wg.Add(1)
			go func() {
				defer wg.Done()
				addr := s.addr
				if g%2 == 1 {
					addr = p.addr
				}
				for range M {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						errs <- err
						return
					}
					c.SetDeadline(time.Now().Add(10 * time.Second))
					r := bufio.NewReader(c)
					line, err := r.ReadString('\n')
					if err != nil {
						errs <- fmt.Errorf("read: %w", err)
					} else if wantGreeting && line != greeting || !wantGreeting && line != pausedLine {
						errs <- fmt.Errorf("line %q", line)
					}
					if wantGreeting {
						if _, err := c.Write(make([]byte, payload)); err != nil {
							errs <- err
						}
					}
					c.Close()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	run(true)
	eventually(t, "live back to 0", func() bool { return a.Snapshot().Live == 0 })
	st := a.Snapshot()
	want := Stats{
		Historic: N * M, SMTPHistoric: N / 2 * M, POP3Historic: N / 2 * M,
		BytesSent: N * M * int64(len(greeting)), BytesReceived: N * M * payload,
		Started: st.Started,
	}
	if st != want {
		t.Fatalf("admitted:\n got %+v\nwant %+v", st, want)
	}

	// The same flood while paused: all refused, none ever live.
	lim.gate.Pause(time.Hour)
	run(false)
	want.Historic *= 2
	want.SMTPHistoric *= 2
	want.POP3Historic *= 2
	want.Rejected = N * M
	want.BytesSent += N * M * int64(len(pausedLine))
	eventually(t, "refusal bytes counted", func() bool { return a.Snapshot().BytesSent == want.BytesSent })
	if st := a.Snapshot(); st != want {
		t.Fatalf("refused:\n got %+v\nwant %+v", st, want)
	}
}

func TestMGMT(t *testing.T) {
	a, lim := newAccountant(t, 1, 1)
	lim.gate.Pause(time.Hour) // MGMT keeps answering during a pause
	m := serve(t, a, MGMT, nil, 2)
	c1, l1 := dial(t, m.addr, nil, "")
	_, l2 := dial(t, m.addr, nil, "")
	if l1 != greeting || l2 != greeting {
		t.Fatalf("%q %q", l1, l2)
	}
	expectRefused(t, m.addr, nil, "", busyLine)
	st := a.Snapshot()
	if st.MGMTLive != 2 || st.Historic != 0 || st.Live != 0 || st.Rejected != 0 || st.BytesSent != 0 || st.BytesReceived != 0 {
		t.Fatalf("%+v", st)
	}
	c1.Close()
	eventually(t, "mgmt live 1", func() bool { return a.Snapshot().MGMTLive == 1 })
}

func TestCloseTwiceReleasesOnce(t *testing.T) {
	a, _ := newAccountant(t, 10, 10)
	fl := newFakeListener()
	l := a.Listener(fl, ListenerOptions{Proto: POP3, Refuse: refuse})
	defer l.Close()
	fl.conns <- fakeConn("192.0.2.1:1")
	fl.conns <- fakeConn("192.0.2.1:2")
	c1, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c1.Close()
	c1.Close()
	if st := a.Snapshot(); st.Live != 1 || st.POP3Live != 1 {
		t.Fatalf("after double close: %+v", st)
	}
	c2.Close()
	if st := a.Snapshot(); st.Live != 0 {
		t.Fatalf("%+v", st)
	}
	a.mu.Lock()
	n := len(a.perIP)
	a.mu.Unlock()
	if n != 0 {
		t.Fatalf("per-address map keeps %d entries after all closed", n)
	}
}

// Temporary accept errors are retried inside Accept; the server's loop never
// sees them. Other errors pass through.
func TestAcceptErrors(t *testing.T) {
	a, _ := newAccountant(t, 10, 10)
	fl := newFakeListener()
	l := a.Listener(fl, ListenerOptions{Proto: SMTP, Refuse: refuse})
	fl.errs <- &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	fl.errs <- &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.ECONNABORTED)}
	fl.conns <- fakeConn("192.0.2.1:1")
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("temporary error surfaced: %v", err)
	}
	c.Close()
	permanent := errors.New("boom")
	fl.errs <- permanent
	if _, err := l.Accept(); !errors.Is(err, permanent) {
		t.Fatalf("err = %v, want the permanent error", err)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

// pausedTLSListener is an implicit-TLS listener of a paused accountant
// with one Accept waiting on it, which never returns a connection (all are
// refused); acceptDone gets its error once the listener is closed.
func pausedTLSListener(t *testing.T, proto Proto) (a *Accountant, raw, l net.Listener, acceptDone <-chan error) {
	t.Helper()
	cert := testcert.New(t)
	a, lim := newAccountant(t, 10, 10)
	lim.gate.Pause(time.Hour)
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l = a.Listener(raw, ListenerOptions{Proto: proto, Refuse: refuse, TLS: cert.Server})
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	return a, raw, l, done
}

// Close ends refusals still in progress (a client that never completes the
// TLS handshake) instead of waiting for their timeouts.
func TestCloseCutsPendingRefusals(t *testing.T) {
	a, raw, l, acceptDone := pausedTLSListener(t, SMTP)
	c, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "refusal started", func() bool { return a.Snapshot().Rejected == 1 })
	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > refuseHandshakeTimeout/2 {
		t.Fatalf("Close waited %v for a pending refusal", el)
	}
	if err := <-acceptDone; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("pending refused conn not closed: %v", err)
	}
	if st := a.Snapshot(); st.Live != 0 || st.Historic != 1 {
		t.Fatalf("%+v", st)
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "counters.json")
	a, err := New(Options{StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	s := serve(t, a, SMTP, nil, 0)
	c, _ := dial(t, s.addr, nil, "")
	c.Write([]byte("abc"))
	c.Close()
	eventually(t, "closed", func() bool { st := a.Snapshot(); return st.Live == 0 && st.BytesReceived == 3 })
	a.AddAccepted(1)
	a.AddDelivered(2)
	a.AddRetrieved(3)
	a.AddDeleted(4)
	if err := a.Save(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("stat: %v %v", fi, err)
	}
	b, err := New(Options{StatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	got, want := b.Snapshot(), a.Snapshot()
	got.Started, want.Started = time.Time{}, time.Time{}
	if got != want || got.Historic != 1 || got.MessagesDeleted != 4 {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}

	// Run saves periodically and once more at the end.
	b.opts.SaveInterval = 5 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	b.AddAccepted(10)
	eventually(t, "periodic save", func() bool {
		c, err := loadCounters(path)
		return err == nil && c.MessagesAccepted == 11
	})
	b.AddDeleted(100)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if c, err := loadCounters(path); err != nil || c.MessagesDeleted != 104 {
		t.Fatalf("final save: %+v %v", c, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Fatalf("temp file left: %s", e.Name())
		}
	}

	// A damaged file is reported, not silently reset.
	for _, bad := range []string{"{", `{"rejected": -1}`, "null x"} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := New(Options{StatePath: path}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	// A missing file is zero.
	if a, err := New(Options{StatePath: filepath.Join(dir, "none.json")}); err != nil || a.Snapshot().Historic != 0 {
		t.Fatal(err)
	}
}

// Admitting and closing a connection allocates only the wrapper.
func TestAcceptAllocations(t *testing.T) {
	a, _ := newAccountant(t, 10, 10)
	fl := newFakeListener()
	l := a.Listener(fl, ListenerOptions{Proto: SMTP, Refuse: refuse}).(*listener)
	fc := fakeConn("192.0.2.1:1")
	allocs := testing.AllocsPerRun(1000, func() {
		c := l.accept(fc)
		c.Close()
	})
	if allocs > 1 {
		t.Fatalf("%.1f allocations per admitted connection, want at most 1", allocs)
	}
	// No goroutine per connection: 100 admitted connections held open
	// leave the goroutine count as it was.
	a, _ = newAccountant(t, 1000, 1000)
	l = a.Listener(fl, ListenerOptions{Proto: POP3, Refuse: refuse}).(*listener)
	before := runtime.NumGoroutine()
	conns := make([]net.Conn, 0, 100)
	for i := range 100 {
		c := l.accept(fakeConn(fmt.Sprintf("192.0.2.%d:1", i%10)))
		if c == nil {
			t.Fatalf("connection %d refused", i)
		}
		conns = append(conns, c)
	}
	if after := runtime.NumGoroutine(); after > before {
		t.Fatalf("%d goroutines with 100 connections open, %d before", after, before)
	}
	if st := a.Snapshot(); st.Live != 100 {
		t.Fatalf("live %d", st.Live)
	}
	for _, c := range conns {
		c.Close()
	}
}

func BenchmarkAcceptClose(b *testing.B) {
	a, err := New(Options{MaxConnections: func() int { return 1 << 30 }, MaxPerIP: func() int { return 1 << 30 }, Pause: pause.New()})
	if err != nil {
		b.Fatal(err)
	}
	l := a.Listener(newFakeListener(), ListenerOptions{Proto: SMTP, Refuse: refuse}).(*listener)
	fc := fakeConn("192.0.2.1:1")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := l.accept(fc)
			c.Write([]byte("x"))
			c.Close()
		}
	})
}

// fakeListener hands out queued conns and errors.
type fakeListener struct {
	conns  chan net.Conn
	errs   chan error
	closed chan struct{}
	once   sync.Once
}

func newFakeListener() *fakeListener {
	return &fakeListener{conns: make(chan net.Conn, 16), errs: make(chan error, 16), closed: make(chan struct{})}
}

func (f *fakeListener) Accept() (net.Conn, error) {
	select {
	case err := <-f.errs:
		return nil, err
	default:
	}
	select {
	case c := <-f.conns:
		return c, nil
	case err := <-f.errs:
		return nil, err
	case <-f.closed:
		return nil, net.ErrClosed
	}
}

func (f *fakeListener) Close() error   { f.once.Do(func() { close(f.closed) }); return nil }
func (f *fakeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

// fakeConn is a connection that does nothing, from a fixed address.
type fakeConnT struct {
	net.Conn
	remote net.Addr
}

func fakeConn(remote string) net.Conn {
	a, err := net.ResolveTCPAddr("tcp", remote)
	if err != nil {
		panic(err)
	}
	return &fakeConnT{remote: a}
}

func (f *fakeConnT) RemoteAddr() net.Addr        { return f.remote }
func (f *fakeConnT) Close() error                { return nil }
func (f *fakeConnT) Write(b []byte) (int, error) { return len(b), nil }
func (f *fakeConnT) Read([]byte) (int, error)    { return 0, io.EOF }

func FuzzLoadCounters(f *testing.F) {
	f.Add([]byte(`{"historic": 3, "smtp_historic": 2, "pop3_historic": 1, "bytes_sent": 9}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"rejected": -5}`))
	f.Add([]byte(`{"messages_deleted": 1e30}`))
	f.Add([]byte("\x00\xff"))
	f.Add([]byte(`{"smtp_historic": 9223372036854775807, "pop3_historic": 1}`))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "counters.json")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := New(Options{StatePath: p})
		if err != nil {
			return
		}
		before := a.Snapshot()
		if before.Historic < 0 || before.Rejected < 0 || before.BytesSent < 0 {
			t.Fatalf("negative figure loaded: %+v", before)
		}
		if err := a.Save(); err != nil {
			t.Fatal(err)
		}
		b2, err := New(Options{StatePath: p})
		if err != nil {
			t.Fatalf("reload of a saved file: %v", err)
		}
		after := b2.Snapshot()
		before.Started, after.Started = time.Time{}, time.Time{}
		if before != after {
			t.Fatalf("round trip: %+v != %+v", before, after)
		}
	})
}

// TestRefusalFloodIsBounded floods a paused implicit-TLS listener with
// clients that never start the handshake. At most maxRefusing of them hold a
// refusal goroutine; the rest are closed at once, the counts stay exact, and
// closing the listener ends every refusal.
func TestRefusalFloodIsBounded(t *testing.T) {
	a, raw, l, acceptDone := pausedTLSListener(t, POP3)
	const extra = 24
	n := maxRefusing + extra
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	eventually(t, "all refused", func() bool { return a.Snapshot().Rejected == int64(n) })
	lm := l.(*listener)
	lm.mu.Lock()
	pending := len(lm.refusing)
	lm.mu.Unlock()
	if pending > maxRefusing {
		t.Fatalf("%d refusals in progress, bound %d", pending, maxRefusing)
	}
	// The clients beyond the bound were closed without waiting for them.
	var closed atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() {
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				closed.Add(1)
			}
		})
	}
	wg.Wait()
	if got := int(closed.Load()); got < n-maxRefusing {
		t.Fatalf("%d of %d flooding clients closed, want at least %d", got, n, n-maxRefusing)
	}
	if st := a.Snapshot(); st.Live != 0 || st.POP3Historic != int64(n) || st.POP3Live != 0 {
		t.Fatalf("%+v", st)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-acceptDone; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v", err)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("client %d still open after Close: %v", i, err)
		}
	}
}
