package smtp

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// listener wraps every accepted connection in a conn (and, for implicit
// TLS, a TLS server on top of it) and tracks it for Shutdown.
type listener struct {
	net.Listener
	s    *Server
	mode Mode
}

func (l *listener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := raw.(*tls.Conn); ok && l.mode == SubmissionTLS {
		// A TLS listener's conn has not shaken hands yet: put our conn
		// under a fresh TLS server so the handshake and every TLS record
		// get the per-operation deadline.
		raw = tc.NetConn()
	}
	c := &conn{Conn: raw, s: l.s}
	l.s.mu.Lock()
	if l.s.shutdown {
		l.s.mu.Unlock()
		raw.Close()
		return nil, net.ErrClosed
	}
	l.s.conns[c] = struct{}{}
	l.s.wg.Add(1)
	l.s.mu.Unlock()
	if l.mode == SubmissionTLS {
		// go-smtp recognises the *tls.Conn and handshakes before greeting.
		return tls.Server(c, l.s.opts.TLS), nil
	}
	return c, nil
}

// conn gives every Read and Write its own deadline (limits.idle_timeout),
// so an idle client is cut off but a slow, active one never is (RFC 5321
// §4.5.3.2). It lies under any TLS layer, so STARTTLS keeps it.
type conn struct {
	net.Conn
	s *Server

	// eof makes further reads end the session, after a final reply (421)
	// has been written.
	eof atomic.Bool

	// greet is the first HELO/EHLO verb seen in clear text, for the
	// Received header's protocol name.
	mu       sync.Mutex
	greet    string
	lineHead []byte
	sniffed  int // bytes looked at; sniffing stops after 4 KiB

	closeOnce sync.Once
}

func (c *conn) timeout() time.Duration { return c.s.dyn.Load().idle }

func (c *conn) Read(p []byte) (int, error) {
	if c.eof.Load() {
		return 0, io.EOF
	}
	if d := c.timeout(); d > 0 {
		c.Conn.SetReadDeadline(time.Now().Add(d))
	}
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.sniff(p[:n])
	}
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	if d := c.timeout(); d > 0 {
		c.Conn.SetWriteDeadline(time.Now().Add(d))
	}
	return c.Conn.Write(p)
}

// Deadlines are ours alone: go-smtp's own calls (none with its timeouts
// off, but tls.Conn may set some) must not clear the per-operation ones.
func (c *conn) SetDeadline(t time.Time) error      { return nil }
func (c *conn) SetReadDeadline(t time.Time) error  { return nil }
func (c *conn) SetWriteDeadline(t time.Time) error { return nil }

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.wg.Done()
	})
	return err
}

// sniff records whether the client greeted with HELO or EHLO: go-smtp does
// not tell the backend, and the Received header names SMTP for HELO
// (RFC 5321 §4.4, RFC 3848). Only the first greeting in clear text is
// looked at; after STARTTLS the client must have used EHLO.
func (c *conn) sniff(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.greet != "" || c.sniffed > 4096 {
		return
	}
	c.sniffed += len(p)
	for _, b := range p {
		if b == '\n' {
			c.checkHead()
			c.lineHead = c.lineHead[:0]
			if c.greet != "" {
				return
			}
			continue
		}
		if len(c.lineHead) < 5 {
			c.lineHead = append(c.lineHead, b)
		}
	}
}

func (c *conn) checkHead() {
	h := bytes.ToUpper(bytes.TrimRight(c.lineHead, "\r"))
	if len(h) >= 4 && (string(h[:4]) == "HELO" || string(h[:4]) == "EHLO") && (len(h) == 4 || h[4] == ' ') {
		c.greet = string(h[:4])
	}
}

// greeting returns "HELO", "EHLO" or "" if not seen.
func (c *conn) greeting() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.greet
}

// baseConn finds our conn under a go-smtp connection (possibly TLS).
func baseConn(nc net.Conn) *conn {
	switch v := nc.(type) {
	case *conn:
		return v
	case *tls.Conn:
		if c, ok := v.NetConn().(*conn); ok {
			return c
		}
	}
	return nil
}
