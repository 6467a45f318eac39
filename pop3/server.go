// Package pop3 is buzon's POP3 server (RFC 1939 with RFC 2449 CAPA, RFC 2595
// STLS, RFC 5034 AUTH and RFC 3206 response codes), written on net and
// bufio. Each connection is a session with an explicit state machine:
// AUTHORIZATION → TRANSACTION → UPDATE. A maildrop is locked for the whole
// session; messages marked with DELE are removed only when QUIT ends the
// TRANSACTION state.
package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/buzon-mail/buzon/internal/accounting"
)

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("pop3: server closed")

// Defaults for zero timeouts.
const (
	DefaultIdleTimeout  = 10 * time.Minute // RFC 1939 §3 asks at least 10 minutes
	DefaultLoginTimeout = 60 * time.Second
)

// Server serves POP3. Set the exported fields before Serve; change the
// timeouts of a running server with SetTimeouts.
type Server struct {
	// Hostname appears in the greeting.
	Hostname     string
	Authenticate AuthFunc
	Mail         Mailboxes
	// Throttle delays and cuts off failing logins; nil disables it.
	Throttle Throttler
	// Counters receives retrieved/deleted counts; may be nil.
	Counters Counters
	// TLSConfig enables STLS; nil means TLS is not configured.
	TLSConfig *tls.Config
	// AllowInsecure permits plaintext login without TLS from anywhere;
	// TrustLoopback from loopback clients only (SPEC §6).
	AllowInsecure bool
	TrustLoopback bool
	// LoginTimeout bounds the time to log in (an absolute deadline);
	// IdleTimeout applies to every read and write after login.
	LoginTimeout time.Duration
	IdleTimeout  time.Duration
	Logger       *slog.Logger

	bufs bufPool // output and file buffers lent to busy sessions

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	closing   bool
	closed    chan struct{} // closed when Shutdown starts
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

func (srv *Server) init() {
	if srv.ctx == nil {
		srv.ctx, srv.cancel = context.WithCancel(context.Background())
		srv.listeners = map[net.Listener]struct{}{}
		srv.sessions = map[*session]struct{}{}
		srv.closed = make(chan struct{})
	}
}

// SetTimeouts changes the login and idle timeouts for sessions that start
// (login) or log in (idle) from now on (SIGHUP reload of limits.*).
func (srv *Server) SetTimeouts(login, idle time.Duration) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	srv.LoginTimeout, srv.IdleTimeout = login, idle
}

func (srv *Server) timeouts() (login, idle time.Duration) {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	login, idle = srv.LoginTimeout, srv.IdleTimeout
	if login <= 0 {
		login = DefaultLoginTimeout
	}
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	return login, idle
}

func (srv *Server) logger() *slog.Logger {
	if srv.Logger != nil {
		return srv.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Serve accepts connections on l until Shutdown; it always returns a
// non-nil error (ErrServerClosed after Shutdown). A listener that yields
// *tls.Conn (implicit TLS, POP3S) gets the handshake done per session.
//
// Temporary accept errors (those whose Temporary method says so, such as
// running out of file descriptors) are retried after a growing pause, as
// net/http does, so Serve survives them on any listener. Under buzon serve
// the accounting listener retries the common ones before they get here.
func (srv *Server) Serve(l net.Listener) error {
	srv.mu.Lock()
	srv.init()
	if srv.closing {
		srv.mu.Unlock()
		l.Close()
		return ErrServerClosed
	}
	srv.listeners[l] = struct{}{}
	srv.mu.Unlock()
	defer func() {
		srv.mu.Lock()
		delete(srv.listeners, l)
		srv.mu.Unlock()
		l.Close()
	}()

	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			srv.mu.Lock()
			closing := srv.closing
			srv.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			if !isTemporary(err) {
				return err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			srv.logger().Warn("pop3 accept failed, retrying", "addr", l.Addr().String(), "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-srv.closed:
				t.Stop()
				return ErrServerClosed
			}
			continue
		}
		backoff = 0
		sess := srv.newSession(c)
		srv.mu.Lock()
		if srv.closing {
			srv.mu.Unlock()
			c.Close()
			continue
		}
		srv.sessions[sess] = struct{}{}
		srv.wg.Add(1)
		srv.mu.Unlock()
		go func() {
			defer srv.wg.Done()
			defer func() {
				srv.mu.Lock()
				delete(srv.sessions, sess)
				srv.mu.Unlock()
			}()
			sess.serve(srv.ctx)
		}()
	}
}

// isTemporary reports accept errors worth retrying, such as running out of
// file descriptors.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// Shutdown stops accepting, lets sessions finish until ctx ends, then
// closes the rest. A session cut off this way applies no deletion (it never
// reached UPDATE). It returns ctx.Err() if sessions had to be cut off.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.mu.Lock()
	srv.init()
	if !srv.closing {
		close(srv.closed)
	}
	srv.closing = true
	for l := range srv.listeners {
		l.Close()
	}
	srv.mu.Unlock()

	done := make(chan struct{})
	go func() {
		srv.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		srv.cancel()
		return nil
	case <-ctx.Done():
	}
	srv.mu.Lock()
	for s := range srv.sessions {
		s.kill()
	}
	srv.mu.Unlock()
	srv.cancel() // ends throttle waits and password checks
	<-done
	return ctx.Err()
}

// Refuse is the accounting.Refuser for POP3 listeners: RFC 3206 SYS/TEMP
// says the condition is temporary and the client may try again later.
func Refuse(w io.Writer, why accounting.Reason) {
	msg := "-ERR [SYS/TEMP] Too many connections, try again later\r\n"
	if why == accounting.Paused {
		msg = "-ERR [SYS/TEMP] Service paused, try again later\r\n"
	}
	_, _ = io.WriteString(w, msg)
}
